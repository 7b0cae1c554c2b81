"""Providers: where tokens come from - endpoints, the client registration, quirks in one place.

A :class:`Provider` sends token, device, revocation, userinfo and JWKS requests through its
:class:`~nbauth._transport.Transport` and turns the answers into :class:`Token` objects or
typed errors. The interactive entry points (``get_token_by_*``, ``device_login`` ...) are
served by the login backend that the ``ui`` layer registers (see :func:`set_login_backend`):
this layer never imports the layers above it.
"""

from __future__ import annotations

import threading
import urllib.parse
import weakref
from collections.abc import Generator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from . import _clock, _device
from ._client_auth import apply_client_auth, check_client_auth
from ._errors import (
    ConfigurationError,
    InvalidClient,
    ProviderError,
    VerificationError,
    error_from_code,
)
from ._grants import (
    AuthorizationCode,
    ClientCredentials,
    Custom,
    Grant,
    Password,
    RefreshToken,
    TokenRequest,
)
from ._jwt import verify_id_token
from ._tokens import Token, parse_token_response
from ._transport import DEFAULT_TIMEOUT, HttpReply, Transport, display_url, require_secure

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["LoginBackend", "Provider", "set_login_backend"]

ENDPOINTS = (
    "token_url", "authorization_url", "device_authorization_url", "userinfo_url", "revocation_url",
    "introspection_url", "jwks_url", "end_session_url", "password_login_url",
)
_TRANSIENT_CODES = {"server_error", "temporarily_unavailable"}


class LoginBackend(Protocol):
    """What the layer above provides for the entry points that return sessions."""

    def get_token(self, provider: Provider, request: TokenRequest, *, force: bool) -> Session: ...

    def interactive(self, kind: str, provider: Provider, kwargs: dict[str, Any]) -> Session: ...


_backend: LoginBackend | None = None
_live: weakref.WeakValueDictionary[tuple[str, str], Provider] = weakref.WeakValueDictionary()


def set_login_backend(backend: LoginBackend) -> None:
    """Called once by ``nbauth._login`` at import."""
    global _backend  # noqa: PLW0603 - the single registration point of the layering
    _backend = backend


def live_provider(issuer_key: str, client_id: str | None) -> Provider | None:
    """The newest Provider built in this process for that issuer and client (it holds the secret)."""
    return _live.get((issuer_key, client_id or ""))


class Provider:
    """An OAuth 2.0 / OpenID Connect provider together with one client registration.

    ``client_auth`` is ``client_secret_basic`` (default), ``client_secret_post`` or ``none``;
    ``request_format="json"`` sends token requests as JSON (seed 001);
    ``client_token_for_user_grants=True`` first gets a client_credentials token and sends it as
    Bearer on user-grant requests (seed 001; the client's credentials then go in the body);
    ``scope_separator`` joins scopes (Fusio uses ","); ``password_login_url`` sends the password
    login as JSON ``{"username", "password"}`` to that URL instead of the password grant (Fusio's
    ``/consumer/login``). ``verify`` (CA bundle path, or False with a loud warning), ``timeout``
    and ``proxies`` apply to every request nbauth sends for this provider. ``scope`` is the
    default scope of logins; ``refresh_leeway`` caps the refresh leeway (default 60 s).
    """

    def __init__(
        self,
        token_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        authorization_url: str | None = None,
        device_authorization_url: str | None = None,
        userinfo_url: str | None = None,
        revocation_url: str | None = None,
        introspection_url: str | None = None,
        jwks_url: str | None = None,
        end_session_url: str | None = None,
        issuer: str | None = None,
        client_auth: str | None = None,
        request_format: str = "form",
        scope_separator: str = " ",
        client_token_for_user_grants: bool = False,
        name: str | None = None,
        scope: str | Sequence[str] | None = None,
        password_login_url: str | None = None,
        verify: bool | str = True,
        timeout: float = DEFAULT_TIMEOUT,
        proxies: Mapping[str, str] | None = None,
        refresh_leeway: float | None = None,
    ) -> None:
        self.token_url = require_secure(token_url, "token_url")
        for attr, value in (
            ("authorization_url", authorization_url), ("device_authorization_url", device_authorization_url),
            ("userinfo_url", userinfo_url), ("revocation_url", revocation_url),
            ("introspection_url", introspection_url), ("jwks_url", jwks_url),
            ("end_session_url", end_session_url), ("password_login_url", password_login_url),
        ):
            setattr(self, attr, require_secure(value, attr) if value else None)
        self.authorization_url: str | None
        self.device_authorization_url: str | None
        self.userinfo_url: str | None
        self.revocation_url: str | None
        self.introspection_url: str | None
        self.jwks_url: str | None
        self.end_session_url: str | None
        self.password_login_url: str | None
        self.issuer = issuer.rstrip("/") if issuer else None
        self.client_id = client_id
        self._client_secret = client_secret
        if client_token_for_user_grants and client_auth == "client_secret_basic":
            raise ConfigurationError(
                "client_token_for_user_grants sends the client token in the Authorization header, so the "
                "client's credentials must go in the body: use client_auth='client_secret_post'"
            )
        default_auth = "client_secret_post" if client_token_for_user_grants else "client_secret_basic"
        self.client_auth = check_client_auth(client_auth or default_auth)
        if request_format not in ("form", "json"):
            raise ConfigurationError("request_format must be 'form' or 'json'")
        self.request_format = request_format
        if not isinstance(scope_separator, str) or not scope_separator:
            raise ConfigurationError("scope_separator must be a non-empty string")
        self.scope_separator = scope_separator
        self.client_token_for_user_grants = bool(client_token_for_user_grants)
        self.scope = scope
        if refresh_leeway is not None and not 0 <= refresh_leeway <= 3600:
            raise ConfigurationError("refresh_leeway must be between 0 and 3600 seconds")
        self.refresh_leeway = refresh_leeway
        self.transport = Transport(verify=verify, timeout=timeout, proxies=proxies)
        self.name = name or self._default_name()
        self._jwks: dict[str, Any] | None = None
        self._jwks_fetched = 0.0
        self._client_token: Token | None = None
        self._lock = threading.Lock()
        if self.client_id:
            _live[(self.issuer_key, self.client_id)] = self

    # ---- identity
    @property
    def issuer_key(self) -> str:
        """The issuer, or the token URL for a plain OAuth server without one (cache key part)."""
        return self.issuer or self.token_url

    @property
    def client_secret(self) -> str | None:
        return self._client_secret

    def _default_name(self) -> str:
        host = urllib.parse.urlsplit(self.issuer_key).hostname or "provider"
        return host

    def __repr__(self) -> str:
        secret = ", client_secret='***'" if self._client_secret else ""
        return (f"{type(self).__name__}(name={self.name!r}, issuer={self.issuer_key!r}, "
                f"client_id={self.client_id!r}{secret}, client_auth={self.client_auth!r})")

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this provider, without the client secret (for the cache)."""
        out: dict[str, Any] = {attr: getattr(self, attr) for attr in ENDPOINTS}
        verify = self.transport.verify
        out.update(
            issuer=self.issuer, client_id=self.client_id, client_auth=self.client_auth,
            request_format=self.request_format, scope_separator=self.scope_separator,
            client_token_for_user_grants=self.client_token_for_user_grants, name=self.name,
            verify=verify if isinstance(verify, (bool, str)) else True, timeout=self.transport.timeout,
            refresh_leeway=self.refresh_leeway, has_client_secret=bool(self._client_secret),
        )
        return out

    @classmethod
    def from_config(cls, config: Mapping[str, Any], client_secret: str | None = None) -> Provider:
        kwargs = {k: v for k, v in config.items() if k != "has_client_secret"}
        return Provider(client_secret=client_secret, **kwargs)

    @classmethod
    def discover(cls, issuer: str, **kwargs: Any) -> Provider:
        """A provider from OpenID discovery (RFC 8414 fallback); explicit endpoints win."""
        from ._presets import discover  # same layer; imported late to avoid an import cycle

        return discover(issuer, **kwargs)

    # ---- public entry points (served by the login backend)
    def _login(self) -> LoginBackend:
        if _backend is None:  # pragma: no cover - nbauth/__init__ always registers it
            raise ConfigurationError("import nbauth to log in")
        return _backend

    def get_token(self, grant: Grant | str, params: Mapping[str, str] | None = None, *,
                  force: bool = False) -> Session:
        """Get a token with any grant, or ``get_token(endpoint, params)`` (seed 000's custom call)."""
        if isinstance(grant, str):
            grant = Custom(dict(params or {}), endpoint=grant)
        elif params is not None:
            raise ConfigurationError("params are only for get_token(endpoint, params)")
        request = grant.request(self.scope_separator)
        if request.endpoint:
            request = _replace_endpoint(request, urllib.parse.urljoin(self.token_url, request.endpoint))
        return self._login().get_token(self, request, force=force)

    def get_token_by_password(self, username: str, password: str, scope: str | Sequence[str] | None = None,
                              *, force: bool = False) -> Session:
        """Resource owner password grant (RFC 6749 §4.3); the password is never stored."""
        return self.get_token(Password(username, password, scope if scope is not None else self.scope),
                              force=force)

    def get_token_by_client_credentials(self, client_id: str | None = None, client_secret: str | None = None,
                                        scope: str | Sequence[str] | None = None, *,
                                        force: bool = False) -> Session:
        """Client credentials grant (RFC 6749 §4.4), with this provider's client unless given."""
        grant = ClientCredentials(client_id, client_secret, scope if scope is not None else self.scope)
        return self.get_token(grant, force=force)

    def get_token_by_authorization_code(self, code: str, redirect_uri: str | None = None,
                                        code_verifier: str | None = None) -> Session:
        """Exchange an authorization code (RFC 6749 §4.1.3) obtained elsewhere."""
        return self.get_token(AuthorizationCode(code, redirect_uri, code_verifier), force=True)

    def device_login(self, scope: str | Sequence[str] | None = None, *, force: bool = False,
                     **options: Any) -> Session:
        """Device authorization grant (RFC 8628): shows the code, blocks until approved."""
        return self._login().interactive("device", self, {"scope": scope, "force": force, **options})

    def login_form(self, scope: str | Sequence[str] | None = None, *, force: bool = False,
                   **options: Any) -> Session:
        """Username / password form (a widget in a notebook, getpass elsewhere)."""
        return self._login().interactive("password", self, {"scope": scope, "force": force, **options})

    def browser_login(self, scope: str | Sequence[str] | None = None, *, force: bool = False,
                      **options: Any) -> Session:
        """Authorization code + PKCE in the browser with a loopback redirect (RFC 8252)."""
        return self._login().interactive("browser", self, {"scope": scope, "force": force, **options})

    # ---- token requests
    def _client_bearer(self) -> str:
        """Seed 001: a client_credentials token, cached until its refresh leeway, as Bearer."""
        with self._lock:
            token = self._client_token
            if token is None or token.state(self.refresh_leeway).name != "FRESH":
                token = self.fetch_token(ClientCredentials().request(self.scope_separator), _client_token=True)
                self._client_token = token
            return f"Bearer {token.access_token}"

    def send_token_request(self, request: TokenRequest, *, _client_token: bool = False) -> HttpReply:
        """POST a token request with client authentication; returns the raw answer."""
        url = require_secure(request.endpoint or self.token_url, "token endpoint")
        headers = {"Accept": "application/json"}
        body = dict(request.params)
        client_id = request.client_id or self.client_id
        secret = request.client_secret if request.client_id else (request.client_secret or self._client_secret)
        if self.password_login_url and url == self.password_login_url:
            body = {"username": body.get("username", ""), "password": body.get("password", "")}
        else:
            apply_client_auth(self.client_auth, headers, body, client_id, secret)
            if self.client_token_for_user_grants and request.user_grant and not _client_token:
                headers["Authorization"] = self._client_bearer()
        if self.request_format == "json" or (self.password_login_url and url == self.password_login_url):
            return self.transport.request("POST", url, json_body=body, headers=headers)
        return self.transport.request("POST", url, data=body, headers=headers)

    def _secrets(self, request: TokenRequest) -> tuple[str, ...]:
        return tuple(s for s in (*request.secrets, self._client_secret, request.client_secret) if s)

    def check_reply(self, reply: HttpReply, request: TokenRequest) -> Any:
        """The JSON body of a successful token answer, or the typed error (RFC 6749 §5.2)."""
        secrets = self._secrets(request)
        try:
            body = reply.json()
        except ProviderError as exc:
            if reply.status == 401:
                raise InvalidClient("invalid_client", f"HTTP 401 from {reply.where}", url=reply.url,
                                    status=401) from None
            if reply.status >= 500:
                raise ProviderError(f"{reply.where} failed with HTTP {reply.status}; try again later",
                                    url=reply.url, status=reply.status,
                                    retry_after=reply.retry_after()) from None
            raise exc from None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, str) and error:
            if reply.status >= 500 or error in _TRANSIENT_CODES:
                raise ProviderError(f"{reply.where} failed with HTTP {reply.status} ({error[:40]}); try again "
                                    "later", url=reply.url, status=reply.status, retry_after=reply.retry_after())
            description = body.get("error_description")
            raise error_from_code(error, description if isinstance(description, str) else "",
                                  url=reply.where, status=reply.status, secrets=secrets)
        if reply.status == 401:
            raise InvalidClient("invalid_client", f"HTTP 401 from {reply.where}", url=reply.url, status=401)
        if not 200 <= reply.status < 300:
            raise ProviderError(f"{reply.where} answered HTTP {reply.status} without an OAuth error",
                                url=reply.url, status=reply.status, retry_after=reply.retry_after())
        return body

    def token_from_reply(self, reply: HttpReply, request: TokenRequest, *, nonce: str | None = None,
                         previous: Token | None = None) -> Token:
        return self.token_from_body(self.check_reply(reply, request), request, reply, nonce=nonce,
                                    previous=previous)

    def token_from_body(self, body: Any, request: TokenRequest, reply: HttpReply, *, nonce: str | None = None,
                        previous: Token | None = None) -> Token:
        """Parse a successful answer and verify its id_token (OIDC Core §3.1.3.7, §12.2)."""
        try:
            token = parse_token_response(body, scope_separator=self.scope_separator, requested_scope=request.scope,
                                         server_time=reply.server_time())
        except ProviderError as exc:
            raise ProviderError(f"{reply.where}: {exc.message}", url=reply.url, status=reply.status) from None
        if token.id_token:
            expected_sub = previous.claims.get("sub") if previous and previous.claims else None
            claims = self.verify_id_token(token.id_token, nonce=nonce, expected_sub=expected_sub)
            token = token.replace(claims=claims)
        return token

    def fetch_token(self, request: TokenRequest, *, nonce: str | None = None, previous: Token | None = None,
                    _client_token: bool = False) -> Token:
        """Send a token request and parse the answer into a verified :class:`Token`."""
        reply = self.send_token_request(request, _client_token=_client_token)
        return self.token_from_reply(reply, request, nonce=nonce, previous=previous)

    def refresh(self, token: Token, scope: str | Sequence[str] | None = None) -> Token:
        """Refresh grant (RFC 6749 §6); the result keeps what the answer left out."""
        if not token.refresh_token:
            raise ConfigurationError("this token has no refresh token")
        request = RefreshToken(token.refresh_token, scope).request(self.scope_separator)
        return token.merged_with(self.fetch_token(request, previous=token))

    # ---- id_token (OIDC Core §3.1.3.7)
    def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            stale = refresh and _clock.monotonic() - self._jwks_fetched > 10
            if self._jwks is None or stale:
                if not self.jwks_url:
                    raise VerificationError("cannot verify the id_token: the provider has no jwks_url")
                reply = self.transport.request("GET", self.jwks_url, headers={"Accept": "application/json"})
                body = reply.json()
                if reply.status != 200 or not isinstance(body, dict) or not isinstance(body.get("keys"), list):
                    raise ProviderError(f"{reply.where} did not answer a JWK set (HTTP {reply.status})",
                                        url=reply.url, status=reply.status)
                self._jwks, self._jwks_fetched = body, _clock.monotonic()
            return self._jwks

    def verify_id_token(self, id_token: str, *, nonce: str | None = None,
                        expected_sub: str | None = None) -> dict[str, Any]:
        """Verified claims of an id_token, or ``{}`` when the provider lacks issuer/JWKS to verify."""
        if not (self.issuer and self.jwks_url and self.client_id):
            return {}
        for refresh in (False, True):
            try:
                return verify_id_token(id_token, jwks=self.jwks(refresh=refresh), issuer=self.issuer,
                                       client_id=self.client_id, nonce=nonce, now=_clock.now(),
                                       expected_sub=expected_sub)
            except KeyError:
                continue  # unknown kid: the provider may have rotated keys; refetch once
        raise VerificationError("no key in the provider's JWKS matches the id_token (kid/alg)")

    # ---- device flow driver for the HTTP steps (RFC 8628)
    def device_flow(self, scope: str | Sequence[str] | None = None,
                    ) -> Generator[_device.DevicePrompt | _device.Wait, None, Token]:
        """Run the device grant's HTTP steps; yields only the prompt and the waits to the caller."""
        if not self.device_authorization_url:
            raise ConfigurationError(
                f"{self.name}: no device_authorization_url; pass it to the provider or use discovery")
        if self.client_auth != "none" and not self._client_secret:
            raise ConfigurationError(f"{self.name}: this confidential client needs its client_secret")
        flow = _device.device_flow(client_id=self.client_id, scope=scope if scope is not None else self.scope,
                                   scope_separator=self.scope_separator, monotonic=_clock.monotonic)
        reply: Any = None
        last: tuple[HttpReply, TokenRequest] | None = None
        try:
            while True:
                step = flow.send(reply)
                reply = None
                if isinstance(step, _device.DeviceStart):
                    reply = self._device_start(step)
                elif isinstance(step, _device.DevicePoll):
                    reply, http = self._device_poll(step)
                    last = (http, step.request) if http is not None else last
                else:
                    yield step
        except StopIteration as done:
            if last is None:  # pragma: no cover - the generator only returns after a poll
                raise ProviderError("the device flow ended without a token") from None
            return self.token_from_body(done.value, last[1], last[0])

    def _device_start(self, step: _device.DeviceStart) -> _device.Reply:
        url = self.device_authorization_url or ""
        headers = {"Accept": "application/json"}
        body = dict(step.params)
        apply_client_auth(self.client_auth, headers, body, self.client_id, self._client_secret)
        try:
            reply = self.transport.request("POST", url, data=body, headers=headers)
            return _device.Reply(reply.status, reply.json())
        except ProviderError as exc:
            return _device.Reply(0, None, exc)

    def _device_poll(self, step: _device.DevicePoll) -> tuple[_device.Reply, HttpReply | None]:
        try:
            reply = self.send_token_request(step.request)
        except ProviderError as exc:
            return _device.Reply(0, None, exc), None
        try:
            return _device.Reply(reply.status, reply.json()), reply
        except ProviderError as exc:
            return _device.Reply(reply.status, None, exc), reply

    # ---- revocation (RFC 7009) and userinfo (OIDC Core §5.3)
    def revoke(self, token: Token) -> bool:
        """Revoke the refresh token (which ends the grant, RFC 7009 §2.1) then the access token.

        Returns False when the provider has no revocation endpoint.
        """
        if not self.revocation_url:
            return False
        for value, hint in ((token.refresh_token, "refresh_token"), (token.access_token, "access_token")):
            if not value:
                continue
            headers = {"Accept": "application/json"}
            body = {"token": value, "token_type_hint": hint}
            apply_client_auth(self.client_auth, headers, body, self.client_id, self._client_secret)
            reply = self.transport.request("POST", self.revocation_url, data=body, headers=headers)
            if reply.status >= 400:
                request = TokenRequest(body, secrets=(value,))
                self.check_reply(reply, request)  # raises the typed error
        return True

    def userinfo(self, token: Token) -> dict[str, Any]:
        """The UserInfo claims for a token; ``sub`` must match the id_token's (OIDC Core §5.3.2)."""
        if not self.userinfo_url:
            raise ConfigurationError(f"{self.name}: no userinfo_url")
        reply = self.transport.request("GET", self.userinfo_url, headers={
            "Accept": "application/json", "Authorization": f"Bearer {token.access_token}"})
        body = reply.json()
        if reply.status != 200 or not isinstance(body, dict):
            raise ProviderError(f"{reply.where} answered HTTP {reply.status}", url=reply.url, status=reply.status)
        sub = token.claims.get("sub")
        if sub is not None and body.get("sub") != sub:
            raise VerificationError("the userinfo sub does not match the id_token's (OIDC Core §5.3.2)")
        return body


def _replace_endpoint(request: TokenRequest, endpoint: str) -> TokenRequest:
    import dataclasses

    return dataclasses.replace(request, endpoint=require_secure(endpoint, "token endpoint"))


def endpoint_summary(provider: Provider) -> str:
    return ", ".join(f"{a}={display_url(getattr(provider, a))}" for a in ENDPOINTS if getattr(provider, a))
