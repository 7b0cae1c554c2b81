"""``nbauth.Session``: a requests-oauthlib ``OAuth2Session`` whose token stays valid.

Before each request the token is checked against the refresh leeway and renewed first when
due (so no request goes out with an expired token); renewal is single-flight among threads
(the holder's lock) and processes (the cache entry's file lock), and re-reads the cache
under the lock so a refresh token another kernel already rotated is never sent (RFC 9700
§4.14.2: reuse of a rotated refresh token revokes the grant). A 401 ``invalid_token``
(RFC 6750 §3.1) gets exactly one forced refresh and one retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import requests
from requests_oauthlib import OAuth2Session

from . import _clock
from ._cache import CacheKey, Entry, Holder, drop_holder, read_entry
from ._errors import AuthError, ConfigurationError, LoginRequired, OAuthError, ProviderError
from ._grants import ClientCredentials
from ._providers import Provider
from ._store import current_store
from ._tokens import Token, TokenState, parse_token_response
from ._transport import require_secure

__all__ = ["Session", "ensure_token", "save_entry"]

log = logging.getLogger("nbauth")
#: Set by the ui layer: renders ``Session.status()`` (a widget in a notebook, text elsewhere).
status_renderer: Callable[[Session], Any] | None = None
_RELOGIN = {
    "device_login": "run the cell with .device_login() again",
    "password": "run the cell with .login_form() or .get_token_by_password() again",
    "browser_login": "run the cell with .browser_login() again",
    "client_credentials": "run the cell with .get_token_by_client_credentials() again",
}
_checked_origins: dict[str, bool] = {}


def relogin_hint(entry: Entry) -> str:
    return _RELOGIN.get(entry.login, "log in again")


def save_entry(holder: Holder, token: Token, *, store_generation: int | None = None) -> None:
    """Make ``token`` the holder's current token and write it to the cache (caller holds the locks)."""
    base = max(holder.entry.generation, store_generation or 0)
    holder.entry = holder.entry.replace(token=token, generation=base + 1, updated_at=_clock.now())
    current_store().write(holder.key.digest, holder.entry.to_json())


def _usable(token: Token, leeway: float | None, *, force: bool, seen: str | None) -> bool:
    if force:
        return seen is not None and token.access_token != seen
    return token.state(leeway) is TokenState.FRESH


def _renew(holder: Holder) -> Token:
    """Get a new token: refresh grant, or a new client_credentials token (RFC 6749 §4.4.3)."""
    provider: Provider = holder.provider
    token = holder.token
    if holder.entry.provider.get("has_client_secret") and not (provider.client_secret or holder.client_secret):
        raise LoginRequired(
            f"the session {holder.entry.name!r} belongs to a confidential client whose secret is not in this "
            "kernel (nbauth never stores it): re-run the cell that creates the provider with its client_secret, "
            "set NBAUTH_CLIENT_SECRET, or store it with keyring (see docs/cache-and-security.md)"
        )
    if token.refreshable:
        return provider.refresh(token)
    if holder.entry.login == "client_credentials":
        client_id = holder.key.client_id or None
        secret = holder.client_secret if holder.client_secret else None
        if client_id == provider.client_id:
            client_id, secret = None, None
        grant = ClientCredentials(client_id, secret, holder.key.scope.split() or None)
        return provider.fetch_token(grant.request(provider.scope_separator))
    raise LoginRequired(f"the session {holder.entry.name!r} has expired and cannot be refreshed: "
                        f"{relogin_hint(holder.entry)}")


def ensure_token(holder: Holder, *, force: bool = False, seen: str | None = None) -> Token:
    """A token fit to send now; renews it first when due. Single flight across threads and processes.

    ``force`` renews even a fresh token (after a 401); ``seen`` is the token the caller
    used, so a caller that lost the race takes the winner's token instead of refreshing again.
    """
    leeway = holder.provider.refresh_leeway if holder.provider is not None else None
    token = holder.token
    if not force and token.state(leeway) is TokenState.FRESH:
        return token
    if holder.logged_out:
        raise LoginRequired(f"the session {holder.entry.name!r} was logged out: {relogin_hint(holder.entry)}")
    with holder.lock:
        token = holder.token
        if _usable(token, leeway, force=force, seen=seen):
            return token
        if not force and holder.retry_at > _clock.monotonic() and token.state(leeway) is not TokenState.EXPIRED:
            return token  # a recent refresh failed transiently: keep using the valid token for now
        store = current_store()
        import filelock  # lazy; the same module the store locks with

        try:
            with store.lock(holder.key.digest) as locked:
                disk = read_entry(store, holder.key) if locked else None
                if disk is not None and disk.generation > holder.entry.generation:
                    holder.entry = disk.replace(name=holder.entry.name)  # another kernel renewed it
                    token = holder.token
                    if _usable(token, leeway, force=force, seen=seen):
                        return token
                return _renew_and_save(holder, token, leeway, force=force,
                                       store_generation=disk.generation if disk else None)
        except filelock.Timeout:
            if token.state(leeway) is not TokenState.EXPIRED:
                return token
            raise ProviderError(f"another process has held the cache lock of {holder.entry.name!r} for over a "
                                "minute; try again") from None


def _renew_and_save(holder: Holder, token: Token, leeway: float | None, *, force: bool,
                    store_generation: int | None) -> Token:
    expired = token.state(leeway) is TokenState.EXPIRED
    try:
        new = _renew(holder)
    except LoginRequired:
        if expired or force:
            raise
        return token
    except OAuthError as exc:
        if exc.error in ("invalid_grant", "invalid_token") or exc.code == "invalid_grant":
            # the grant is dead (revoked, expired, or a rotated token was replayed): forget the refresh token
            save_entry(holder, token.replace(refresh_token=None), store_generation=store_generation)
            log.warning("nbauth: the refresh token of %r was rejected (%s)", holder.entry.name, exc.error)
            if expired or force:
                raise LoginRequired(
                    f"the session {holder.entry.name!r} can no longer be refreshed (the provider answered "
                    f"{exc.error}: revoked, expired, or logged out elsewhere): {relogin_hint(holder.entry)}"
                ) from None
            return token
        raise
    except ProviderError as exc:
        holder.retry_at = _clock.monotonic() + min(max(exc.retry_after or 5.0, 1.0), 120.0)
        if expired or force:
            raise
        log.warning("nbauth: refresh of %r failed (%s); the current token stays in use", holder.entry.name,
                    exc.message)
        return token
    holder.retry_at = 0.0
    save_entry(holder, new, store_generation=store_generation)
    log.info("nbauth: renewed the token of %r (expires in %s s)", holder.entry.name,
             "?" if new.expires_in is None else f"{new.expires_in:.0f}")
    return new


def _invalid_token(response: requests.Response) -> bool:
    """A 401 whose challenge says the token is bad (RFC 6750 §3.1), or carries no error code."""
    if response.status_code != 401:
        return False
    challenge = response.headers.get("WWW-Authenticate", "")
    return "error=" not in challenge or "invalid_token" in challenge


def _replayable(data: Any, kwargs: Mapping[str, Any]) -> bool:
    if kwargs.get("files") is not None or kwargs.get("stream"):
        return False
    return data is None or isinstance(data, (bytes, str, dict, list, tuple))


def _check_origin(url: str) -> None:
    origin = url.split("/", 3)[:3]
    key = "/".join(origin)
    if key not in _checked_origins:
        require_secure(url, "API URL")
        if len(_checked_origins) > 256:
            _checked_origins.clear()
        _checked_origins[key] = True


class Session(OAuth2Session):  # type: ignore[misc]
    """A ``requests`` session that sends a valid Bearer token with every request.

    Built on ``requests_oauthlib.OAuth2Session``: the whole requests API works. ``token``
    is an :class:`nbauth.Token`; ``refresh()`` renews now; ``logout()`` revokes (RFC 7009)
    and forgets the cache entry; ``status()`` shows who is logged in and until when.
    """

    def __init__(self, holder: Holder) -> None:
        self._holder: Holder | None = None
        super().__init__(client_id=holder.key.client_id or None, scope=list(holder.token.scope) or None)
        self._holder = holder

    # ---- identity
    @property
    def holder(self) -> Holder:
        assert self._holder is not None
        return self._holder

    @property
    def provider(self) -> Provider:
        provider: Provider = self.holder.provider
        return provider

    @property
    def name(self) -> str:
        return self.holder.entry.name

    @property
    def key(self) -> CacheKey:
        return self.holder.key

    @property
    def user(self) -> str | None:
        """The verified user name (id_token), the login's username, or None."""
        return self.holder.token.user or self.holder.entry.username

    def __repr__(self) -> str:
        token = self.holder.token
        left = token.expires_in
        expiry = "unknown expiry" if left is None else (f"expires in {left:.0f}s" if left > 0 else "expired")
        who = f" user={self.user!r}" if self.user else ""
        return f"<nbauth.Session {self.name!r}{who} {expiry}>"

    # ---- the token (requests-oauthlib keeps it on self._client; ours lives in the shared holder)
    @property
    def token(self) -> Token | None:
        return self._holder.token if self._holder is not None else None

    @token.setter
    def token(self, value: Token | Mapping[str, Any] | None) -> None:
        if not value or self._holder is None:
            return  # OAuth2Session.__init__ sets {}
        new = value if isinstance(value, Token) else parse_token_response(dict(value))
        with self._holder.lock, current_store().lock(self._holder.key.digest):
            save_entry(self._holder, new)

    @property
    def access_token(self) -> str | None:
        return self._holder.token.access_token if self._holder is not None else None

    @access_token.setter
    def access_token(self, value: str) -> None:
        raise ConfigurationError("set Session.token, not access_token")

    @property
    def authorized(self) -> bool:
        return self._holder is not None and not self._holder.logged_out

    # ---- requests
    def request(
        self, method: str, url: str, data: Any = None, headers: Mapping[str, str] | None = None,
        withhold_token: bool = False, client_id: str | None = None, client_secret: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request with a valid Bearer token (RFC 6750 §2.1), renewing it first when due."""
        if withhold_token or self._holder is None:
            return requests.Session.request(self, method, url, data=data, headers=headers, **kwargs)
        _check_origin(url)
        token = self.fresh_token()
        send_headers = dict(headers or {})
        send_headers["Authorization"] = f"Bearer {token.access_token}"
        for hook in self.compliance_hook["protected_request"]:
            url, send_headers, data = hook(url, send_headers, data)
        response = requests.Session.request(self, method, url, data=data, headers=send_headers, **kwargs)
        if _invalid_token(response) and _replayable(data, kwargs):
            renewed = self.fresh_token(force=True, seen=token.access_token)
            response.close()
            send_headers["Authorization"] = f"Bearer {renewed.access_token}"
            response = requests.Session.request(self, method, url, data=data, headers=send_headers, **kwargs)
        return response

    def fresh_token(self, *, force: bool = False, seen: str | None = None) -> Token:
        """The token source of :meth:`request`: a token fit to send now (see :func:`ensure_token`).

        A session on a dask worker overrides only this: its tokens come from the owning kernel.
        """
        return ensure_token(self.holder, force=force, seen=seen)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as a handle of public facts: no token, secret or password travels (nbauth._handle)."""
        from ._handle import reduce_session

        return reduce_session(self)

    # ---- lifecycle
    def refresh(self) -> Token:
        """Renew the token now (refresh grant, or client credentials again) and return it."""
        return self.fresh_token(force=True, seen=self.holder.token.access_token)

    def refresh_token(self, token_url: str | None = None, refresh_token: str | None = None,
                      **kwargs: Any) -> dict[str, Any]:
        """requests-oauthlib's method, routed through nbauth's single-flight refresh."""
        return self.refresh().as_dict()

    def fetch_token(self, token_url: str | None = None, code: str | None = None,
                    authorization_response: str | None = None, **kwargs: Any) -> dict[str, Any]:
        """Not used by nbauth: log in through the provider (``get_token_by_*``, ``device_login``)."""
        raise ConfigurationError("nbauth.Session logs in through its provider: use provider.get_token(...) "
                                 "or provider.get_token_by_authorization_code(code, ...)")

    def logout(self) -> None:
        """Revoke the tokens where the provider can (RFC 7009), then forget the cache entry."""
        holder = self.holder
        problem: ProviderError | None = None
        with holder.lock:
            try:
                if holder.provider is not None and not holder.logged_out:
                    holder.provider.revoke(holder.token, client_id=holder.key.client_id or None,
                                           client_secret=holder.client_secret)
            except (ProviderError, OAuthError) as exc:
                problem = exc if isinstance(exc, ProviderError) else ProviderError(str(exc))
            holder.logged_out = True
            store = current_store()
            with store.lock(holder.key.digest):
                store.delete(holder.key.digest)
            drop_holder(holder.key)
        if problem is not None:
            raise ProviderError(f"logged out locally, but the provider did not confirm the revocation: "
                                f"{problem.message}", url=problem.url, status=problem.status)

    def whoami(self) -> dict[str, Any]:
        """Who this is: the verified id_token claims, completed by the provider's UserInfo (OIDC Core
        §5.3) when they hold no name (its ``sub`` must match, §5.3.2); the verified claims win.
        """
        claims = dict(self.holder.token.claims)
        named = any(claims.get(k) for k in ("preferred_username", "name", "email"))
        if not named and self.provider.userinfo_url:
            try:
                info = self.provider.userinfo(ensure_token(self.holder))
            except AuthError:
                if not claims:
                    raise
            else:
                claims = {**info, **claims}
        return claims

    def status(self) -> Any:
        """Who, scopes and expiry: a live widget in a notebook, a line of text elsewhere."""
        if status_renderer is not None:
            return status_renderer(self)
        return repr(self)

