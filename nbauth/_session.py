"""``nbauth.Session``: a requests-oauthlib ``OAuth2Session`` whose token stays valid.

Before each request the token is checked against the refresh leeway and renewed first when
due (:func:`nbauth._refresh.ensure_token`), so no request goes out with an expired token. A
401 ``invalid_token`` (RFC 6750 §3.1) gets one forced renewal and one retry - at most once
per token, and never again for an API that refused a just-renewed token (a hostile API
cannot farm tokens). ``Provider(api_origins=[...])`` limits where the Bearer token goes.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any

import requests
from requests_oauthlib import OAuth2Session

from ._bearer import LogoutReport, _check_origin, _invalid_token, _replayable, origin_of
from ._dpop import api_headers, resource_nonce_challenge
from ._entries import CacheKey, Entry, read_entry
from ._errors import AuthError, ConfigurationError, OAuthError, ProviderError
from ._handle import Detached, SessionHandle, handle_of, on_dask_worker
from ._humanize import duration
from ._refresh import ensure_token, save_entry
from ._registry import Holder, drop_holder, get_holder, put_holder
from ._store import current_store
from ._tokens import Token, TokenState, parse_token_response
from ._transport import loopback_without_proxy

__all__ = ["LogoutReport", "Session"]


class Session(OAuth2Session):  # type: ignore[misc]
    """A ``requests`` session that sends a valid Bearer token with every request.

    Built on ``requests_oauthlib.OAuth2Session``: the whole requests API works. ``token``
    is an :class:`nbauth.Token`; ``refresh()`` renews now; ``logout()`` revokes (RFC 7009)
    and forgets the cache entry; ``status()`` shows who is logged in and until when.
    """

    def __init__(self, holder: Holder, source: Any = None) -> None:
        self._holder: Holder | None = None
        self._source = source  # where a borrowed session's tokens come from (a dask worker's, nbauth._scaleout)
        self._pickled_as: SessionHandle | None = None  # re-sent by the owner's in-process scheduler: same channel
        super().__init__(client_id=holder.key.client_id or None, scope=list(holder.token.scope) or None)
        self._holder = holder

    # ---- identity
    @property
    def holder(self) -> Holder:
        assert self._holder is not None
        return self._holder

    @property
    def provider(self) -> Any:
        """The provider this session renews with (an :class:`nbauth.Provider`)."""
        return self.holder.provider

    @property
    def name(self) -> str:
        return self.holder.entry.name

    @property
    def key(self) -> CacheKey:
        return self.holder.key

    @property
    def id(self) -> str:
        """A unique, stable name: ``name#xxxxxx`` (``nbauth.session(id)`` picks exactly this one)."""
        return f"{self.name}#{self.key.short}"

    @property
    def entry(self) -> Entry:
        """The cache entry as this kernel knows it (the token inside is hidden in reprs)."""
        return self.holder.entry

    @property
    def login_kind(self) -> str:
        """How the user logged in: ``device_login``, ``password``, ``browser_login``, ``client_credentials``..."""
        return self.holder.entry.login

    @property
    def logged_out(self) -> bool:
        return self.holder.logged_out

    @property
    def renewable(self) -> bool:
        """True when nbauth can renew the token without the user: a refresh token, or client credentials."""
        return self.holder.token.refreshable or self.holder.entry.login == "client_credentials"

    @property
    def user(self) -> str | None:
        """The verified user name (id_token), the login's username, or None."""
        return self.holder.token.user or self.holder.entry.username

    def expiry_text(self) -> str:
        """``expires in 4 min``, ``refreshes on next use``, ``expired`` or ``logged out``."""
        if self.holder.logged_out:
            return "logged out"
        token = self.holder.token
        left = token.expires_in
        if left is None:
            return "no expiry given"
        leeway = self.provider.refresh_leeway if self.provider is not None else None
        if token.state(leeway) is not TokenState.FRESH:
            return "refreshes on next use" if self.renewable else "expired"
        return f"expires in {duration(left)}"

    def __repr__(self) -> str:
        if self._source is not None:
            return f"<nbauth.Session {self.name!r} {self._source.describe()}>"
        who = f" user={self.user!r}" if self.user else ""
        return f"<nbauth.Session {self.name!r}{who} {self.expiry_text()}>"

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

    def renew_with(self, provider: Any) -> bool:
        """Renew with ``provider`` from now on (it holds a secret this kernel lacked). Only a provider
        of the same issuer, client and secret-receiving endpoints is taken; returns whether it was.
        """
        holder = self.holder
        config = holder.entry.provider
        same = (provider.issuer_key, provider.client_id or "") == (holder.key.issuer, holder.key.client_id) and all(
            (config.get(k) or None) == (v or None) for k, v in provider.routes().items()
        )
        if same:
            holder.provider = provider
        return bool(same)

    def fresh_token(self, *, force: bool = False, seen: str | None = None) -> Token:
        """A token fit to send now (renewed first when due, single flight); see :func:`ensure_token`.

        A borrowed session (on a dask worker) gets it from the owning kernel instead.
        """
        if self._source is not None:
            return self._source.fresh_token(force=force, seen=seen)  # type: ignore[no-any-return]
        return ensure_token(self.holder, force=force, seen=seen)

    # ---- requests
    def request(
        self,
        method: str,
        url: str,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        withhold_token: bool = False,
        client_id: str | None = None,
        client_secret: str | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """Send a request with a valid Bearer token (RFC 6750 §2.1), renewing it first when due."""
        if withhold_token or self._holder is None:
            return requests.Session.request(self, method, url, data=data, headers=headers, **kwargs)
        _check_origin(url, getattr(self.provider, "api_origins", None))
        token = self.fresh_token()
        send_headers = dict(headers or {})
        send_headers.update(api_headers(token, method, url))  # Bearer, or DPoP + proof (RFC 9449 §7.1)
        for hook in self.compliance_hook["protected_request"]:
            url, send_headers, data = hook(url, send_headers, data)
        response = requests.Session.request(self, method, url, data=data, headers=send_headers, **kwargs)
        if (
            token.dpop_key is not None
            and resource_nonce_challenge(url, response.status_code, response.headers)
            and _replayable(data, kwargs)
        ):  # RFC 9449 §9: the API wants a nonce in the proof; once
            response.close()
            send_headers.update(api_headers(token, method, url))
            response = requests.Session.request(self, method, url, data=data, headers=send_headers, **kwargs)
        if _invalid_token(response) and _replayable(data, kwargs):
            renewed = self._after_401(url, token)
            if renewed is not None:
                response.close()
                send_headers.update(api_headers(renewed, method, url))
                response = requests.Session.request(self, method, url, data=data, headers=send_headers, **kwargs)
                if response.status_code == 401:
                    self.holder.rejecting.add(origin_of(url))
        elif response.status_code < 400:
            self.holder.rejecting.discard(origin_of(url))
        return response

    def _after_401(self, url: str, used: Token) -> Token | None:
        """The token to retry with after a 401, or None: one forced renewal per token, none for an
        origin that already refused a just-renewed token.
        """
        holder = self.holder
        current = holder.token
        if current.access_token != used.access_token:
            return current  # renewed meanwhile (another thread's 401, or due): retry with it
        if origin_of(url) in holder.rejecting:
            return None
        if used.access_token in holder.forced:  # another thread's forced renewal of it may be in flight
            with holder.lock:  # the single-flight lock: wait for it, never renew the same token twice
                current = holder.token
            return current if current.access_token != used.access_token else None
        if len(holder.forced) > 64:
            holder.forced.clear()
        holder.forced.add(used.access_token)
        return self.fresh_token(force=True, seen=used.access_token)

    # ---- data tools (nbauth.fs, nbauth.duckdb; imported lazily: fsspec and aiohttp are the [data] extra)
    def filesystem(self, **kwargs: Any) -> Any:
        """An fsspec HTTP filesystem sending this session's fresh token on every request (``nbauth.fs``)."""
        from .fs import SessionFileSystem

        return SessionFileSystem(self, **kwargs)

    def storage_options(self, **kwargs: Any) -> dict[str, Any]:
        """The fsspec options giving a stock HTTP filesystem the same tokens (dask, ``fsspec.open``)."""
        from .fs import storage_options

        return storage_options(self, **kwargs)

    def merge_environment_settings(self, url: str, proxies: Any, stream: Any, verify: Any, cert: Any) -> dict[str, Any]:
        """Merge requests' environment settings, but loopback URLs never go through a proxy (RFC 6750 §5.3)."""
        settings: dict[str, Any] = super().merge_environment_settings(url, proxies, stream, verify, cert)
        return loopback_without_proxy(url, settings)

    # ---- pickling (dask, multiprocessing): a handle of public facts, never a token (nbauth._handle)
    @property
    def borrowed(self) -> bool:
        """True when this session's tokens come from another process (a dask worker's session)."""
        return self._source is not None

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as a :class:`SessionHandle`: no token, secret or password travels (RFC 9700 §4.14)."""
        if self._source is not None or self._pickled_as is not None:
            return Session._unpickle, (self._source.handle if self._source is not None else self._pickled_as,)
        channel = owner_client = None
        if "distributed" in sys.modules:  # never import dask here: only a process that uses it can share
            from ._scaleout import auto_share

            shared = auto_share(self)
            if shared is not None:
                owner_client, channel = shared
        return Session._unpickle, (handle_of(self.entry, self.provider, channel, owner_client),)

    @classmethod
    def _of(cls, holder: Holder) -> Session:
        if holder.session is None:
            holder.session = cls(holder)
        session: Session = holder.session
        return session

    @classmethod
    def _unpickle(cls, handle: SessionHandle) -> Session:
        """The live session here, a dask worker's borrowed session, or the session in this process's cache."""
        holder = get_holder(handle.key)
        if holder is not None and not holder.logged_out:
            if not handle.channel:
                return cls._of(holder)
            relayed = cls(holder)  # in the owner (a scheduler in this process re-sending the task)
            relayed._pickled_as = handle
            return relayed
        if handle.channel and on_dask_worker():
            from ._scaleout import worker_source

            source = worker_source(handle)
            if source.session is None:
                source.session = cls(source.holder, source)
            return source.session  # type: ignore[no-any-return]
        store = current_store()
        with store.lock(handle.key.digest) as locked:
            entry = read_entry(store, handle.key) if locked else None
        if entry is None:
            detached = Detached(
                handle,
                f"the session {handle.name!r} of {handle.owner} is not in this process's "
                "nbauth cache and no dask cluster shares it with this process: share it "
                "with nbauth.dask.share(session, client), or log in here",
            )
            return cls(detached.holder, detached)
        return cls._of(put_holder(Holder(entry, handle.provider)))

    # ---- lifecycle
    def refresh(self) -> Token:
        """Renew the token now (refresh grant, or client credentials again) and return it."""
        return self.fresh_token(force=True, seen=self.holder.token.access_token)

    def refresh_token(
        self, token_url: str | None = None, refresh_token: str | None = None, **kwargs: Any
    ) -> dict[str, Any]:
        """requests-oauthlib's method, routed through nbauth's single-flight refresh."""
        return self.refresh().as_dict()

    def fetch_token(
        self,
        token_url: str | None = None,
        code: str | None = None,
        authorization_response: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Not used by nbauth: log in through the provider (``get_token_by_*``, ``device_login``)."""
        raise ConfigurationError(
            "nbauth.Session logs in through its provider: use provider.get_token(...) "
            "or provider.get_token_by_authorization_code(code, ...)"
        )

    def logout(self) -> LogoutReport:
        """Stop sending the token at once, revoke what the provider can revoke (RFC 7009), and forget
        the cache entry. Returns what could not be revoked (RFC 7009 §2.2.1 allows a server to
        refuse access tokens); a provider that cannot be reached does not stop the logout.
        """
        if self._source is not None:
            self._source.logout()  # raises: workers only borrow the owner's access tokens
        holder = self.holder
        report = LogoutReport()
        with holder.lock:
            was_out, holder.logged_out = holder.logged_out, True
            try:
                if holder.provider is not None and not was_out:
                    kept = holder.provider.revoke(
                        holder.token, client_id=holder.key.client_id or None, client_secret=holder.client_secret
                    )
                    report.update(kept)
            except (ProviderError, OAuthError) as exc:
                report["refresh_token"] = report["access_token"] = f"the provider did not confirm it ({exc})"
            store = current_store()
            with store.lock(holder.key.digest):
                store.delete(holder.key.digest)
            drop_holder(holder.key)
        return report

    def whoami(self) -> dict[str, Any]:
        """Who this is: the verified id_token claims, completed by the provider's UserInfo (OIDC Core
        §5.3) when they hold no name (its ``sub`` must match, §5.3.2); the verified claims win.
        """
        claims = dict(self.holder.token.claims)
        named = any(claims.get(k) for k in ("preferred_username", "name", "email"))
        if not named and self.provider.userinfo_url:
            try:
                info = self.provider.userinfo(self.fresh_token())
            except AuthError:
                if not claims:
                    raise
            else:
                claims = {**info, **claims}
        return claims

    def exchange(
        self,
        *,
        audience: str | None = None,
        scope: str | Sequence[str] | None = None,
        resource: str | None = None,
        name: str | None = None,
    ) -> Session:
        """A Session for a downstream API by token exchange (RFC 8693), renewed by exchanging again."""
        # the provider (login layer) records the new session: this layer only asks it
        exchanged: Session = self.provider.exchange_session(
            self, audience=audience, scope=scope, resource=resource, name=name
        )
        return exchanged

    def status(self) -> Any:
        """Who, scopes and expiry: a live widget in a notebook, a text report elsewhere."""
        from . import ui  # the one upward step the layers allow: drawing a widget

        return ui.status(self)
