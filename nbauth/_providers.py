"""Providers: where tokens come from - endpoints, the client registration, quirks in one place.

A :class:`Provider` sends token, device, revocation, userinfo and JWKS requests through its
:class:`~nbauth._transport.Transport` and turns the answers into :class:`Token` objects or
typed errors. The interactive entry points (``get_token_by_*``, ``device_login`` ...) are
served by the login backend that the ``ui`` layer registers (see :func:`set_login_backend`):
this layer never imports the layers above it.
"""

from __future__ import annotations

import dataclasses
import threading
import urllib.parse
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from ._client_auth import check_client_auth
from ._errors import ConfigurationError
from ._exchange import Exchange
from ._grants import AuthorizationCode, ClientCredentials, Custom, Grant, Password, TokenRequest
from ._tokens import Token
from ._transport import DEFAULT_TIMEOUT, Transport, require_secure

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["LoginBackend", "Provider", "set_login_backend"]

ENDPOINTS = (
    "token_url", "authorization_url", "device_authorization_url", "userinfo_url", "revocation_url",
    "introspection_url", "jwks_url", "end_session_url", "password_login_url",
)


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


class Provider(Exchange):
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
        self.metadata: dict[str, Any] | None = None  # the discovery document, when discovered
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

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the public configuration only; the secret comes from the unpickling process's own
        provider object for that issuer and client, when it has one (never from the bytes).
        """
        return _unpickle_provider, (self.config(),)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], client_secret: str | None = None) -> Provider:
        kwargs = {k: v for k, v in config.items() if k != "has_client_secret"}
        provider = Provider(client_secret=client_secret, **kwargs)
        if _live.get((provider.issuer_key, provider.client_id or "")) is provider:
            del _live[(provider.issuer_key, provider.client_id or "")]  # only the user's own objects are "live"
        return provider

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
        __tracebackhide__ = True  # IPython: a denied or cancelled login shows the user's cell, not ours
        return self._login().interactive("device", self, {"scope": scope, "force": force, **options})

    def login_form(self, scope: str | Sequence[str] | None = None, *, force: bool = False,
                   **options: Any) -> Session:
        """Username / password form (a widget in a notebook, getpass elsewhere)."""
        __tracebackhide__ = True
        return self._login().interactive("password", self, {"scope": scope, "force": force, **options})

    def browser_login(self, scope: str | Sequence[str] | None = None, *, force: bool = False,
                      **options: Any) -> Session:
        """Authorization code + PKCE in the browser with a loopback redirect (RFC 8252)."""
        __tracebackhide__ = True
        return self._login().interactive("browser", self, {"scope": scope, "force": force, **options})


def _unpickle_provider(config: Mapping[str, Any]) -> Provider:
    live = live_provider(config.get("issuer") or config["token_url"], config.get("client_id"))
    return live if live is not None else Provider.from_config(config)


def _replace_endpoint(request: TokenRequest, endpoint: str) -> TokenRequest:
    return dataclasses.replace(request, endpoint=require_secure(endpoint, "token endpoint"))
