"""``nbauth.Provider``: where tokens come from, and the entry points that log in.

A provider is its settings (:mod:`nbauth._settings`) and its requests
(:mod:`nbauth._exchange`); this class adds what returns a :class:`Session`: the grant
calls (``get_token*``) and the interactive logins, each going through the login pipeline
(:mod:`nbauth._login`). Presets (:mod:`nbauth._presets`) are subclasses with derived
endpoints and their compliance fixes.
"""

from __future__ import annotations

import os
import urllib.parse
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _login
from ._client_jwt_config import login_resource
from ._credentials import secret_for
from ._errors import ConfigurationError
from ._exchange import Exchange
from ._grants import AuthorizationCode, ClientCredentials, Custom, Grant, Password
from ._secret import Secret
from ._session import Session
from ._transport import require_secure

if TYPE_CHECKING:
    from ._jwt_bearer import JWTBearer
    from ._token_exchange import TokenExchange

__all__ = ["Provider", "live_provider"]

_live: weakref.WeakValueDictionary[tuple[str, str], Provider] = weakref.WeakValueDictionary()


def live_provider(issuer_key: str, client_id: str | None, config: Mapping[str, Any]) -> Provider | None:
    """The newest Provider the user built in this process for that issuer, client *and* endpoints."""
    provider = _live.get((issuer_key, client_id or ""))
    if provider is None or not all((config.get(k) or None) == (v or None) for k, v in provider.routes().items()):
        return None
    return provider.for_resource(config.get("resource") or ())


class Provider(Exchange):
    """An OAuth 2.0 / OpenID Connect provider together with one client registration.

    ``client_auth`` is ``client_secret_basic`` (the default with a ``client_secret``),
    ``client_secret_post`` or ``none`` (the default without one: a public client, RFC 6749
    §2.1); ``request_format="json"`` sends token requests as JSON (seed 001);
    ``client_token_for_user_grants=True`` first gets a client_credentials token and sends it as
    Bearer on user-grant requests (seed 001; the client's credentials then go in the body);
    ``scope_separator`` joins scopes (Fusio uses ","); ``password_login_url`` sends the password
    login as JSON to that URL (Fusio's ``/consumer/login``). ``verify`` (CA bundle path, or False
    with a loud warning), ``timeout`` and ``proxies`` apply to every request nbauth sends for
    this provider. ``scope`` is the default scope of logins; ``refresh_leeway`` caps the refresh
    leeway (default 60 s); ``api_origins`` limits where sessions send their token; ``fixes``
    names the compliance fixes (:mod:`nbauth._fixes`).
    """

    def __init__(self, token_url: str, *, api_origins: Sequence[str] | None = None, **settings: Any) -> None:
        super().__init__(token_url, **settings)
        self.api_origins: tuple[str, ...] | None = None
        if api_origins is not None:
            self.api_origins = tuple(o.rstrip("/").lower() for o in api_origins)
        if self.client_id:
            _live[(self.issuer_key, self.client_id)] = self

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the public configuration only (``config()``: no client secret). The unpickling process
        takes the secret from its own provider object for that issuer, client and endpoints, else from
        the environment or keyring, as a restored cache entry does - never from the bytes.
        """
        return _unpickle_provider, (self.config(),)

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], client_secret: str | None = None, private_key: Any = None
    ) -> Provider:
        """Rebuild a provider from a cache entry's public config (the secret comes separately)."""
        kwargs = {k: v for k, v in config.items() if k not in ("has_client_secret", "private_key_file")}
        key_file = config.get("private_key_file")
        if private_key is None and isinstance(key_file, str) and os.path.isfile(key_file):
            private_key = key_file  # the private_key_jwt key the session was made with, read again
        provider = Provider(client_secret=client_secret, private_key=private_key, **kwargs)
        if _live.get((provider.issuer_key, provider.client_id or "")) is provider:
            del _live[(provider.issuer_key, provider.client_id or "")]  # only the user's own objects are "live"
        return provider

    def for_resource(self, resource: str | Sequence[str] | None) -> Provider:
        """The provider asking for the RFC 8707 ``resource`` (§2) instead of its own: the same client,
        secret and endpoints; a session made through it keeps the resource for its refreshes (§2.2).
        ``None`` (or the provider's own resources) gives the provider itself.
        """
        wanted = login_resource(resource) if resource is not None else self.resource
        if wanted == self.resource:
            return self
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)  # never registered as live: the user's object stays the one
        clone.resource = wanted
        return clone

    @classmethod
    def discover(cls, issuer: str, **kwargs: Any) -> Provider:
        """A provider from OpenID discovery (RFC 8414 fallback); explicit endpoints win."""
        from ._discovery import discover_settings  # loaded when first used

        settings, meta = discover_settings(issuer, kwargs)
        provider = Provider(**settings)
        provider.metadata = meta
        return provider

    def exchange_session(self, parent: Session, **options: Any) -> Session:
        """``parent.exchange(...)``: a downstream session by token exchange (RFC 8693), see :mod:`nbauth._derived`."""
        from ._derived import exchange_session

        return exchange_session(parent, **options)

    # ---- public entry points: each goes through the login pipeline
    def get_token(
        self,
        grant: Grant | TokenExchange | JWTBearer | str,
        params: Mapping[str, str] | None = None,
        *,
        force: bool = False,
    ) -> Session:
        """Get a token with any grant, or ``get_token(endpoint, params)`` (seed 000's custom call)."""
        if isinstance(grant, str):
            grant = Custom(dict(params or {}), endpoint=grant)
        elif params is not None:
            raise ConfigurationError("params are only for get_token(endpoint, params)")
        request = grant.request(self.scope_separator)
        if request.endpoint:
            endpoint = urllib.parse.urljoin(self.token_url, request.endpoint)
            request = request.replace(endpoint=require_secure(endpoint, "token endpoint"))
        return _login.grant_login(self, request, force=force)

    def get_token_by_password(
        self,
        username: str,
        password: str,
        scope: str | Sequence[str] | None = None,
        *,
        force: bool = False,
        resource: str | Sequence[str] | None = None,
    ) -> Session:
        """Resource owner password grant (RFC 6749 §4.3); the password is never stored.
        ``resource=`` asks for a token for that API (RFC 8707 §2), here and on every refresh.
        """
        password = Secret(password)  # from here on, no frame shows it
        grant = Password(username, password, scope if scope is not None else self.scope)
        return self.for_resource(resource).get_token(grant, force=force)

    def get_token_by_client_credentials(
        self,
        client_id: str | None = None,
        client_secret: str | None = None,
        scope: str | Sequence[str] | None = None,
        *,
        force: bool = False,
        resource: str | Sequence[str] | None = None,
    ) -> Session:
        """Client credentials grant (RFC 6749 §4.4), with this provider's client unless given;
        ``resource=`` as for :meth:`get_token_by_password` (RFC 8707 §2).
        """
        client_secret = Secret(client_secret) if client_secret else None
        grant = ClientCredentials(client_id, client_secret, scope if scope is not None else self.scope)
        return self.for_resource(resource).get_token(grant, force=force)

    def get_token_by_authorization_code(
        self, code: str, redirect_uri: str | None = None, code_verifier: str | None = None
    ) -> Session:
        """Exchange an authorization code (RFC 6749 §4.1.3) obtained elsewhere."""
        code = Secret(code)
        return self.get_token(AuthorizationCode(code, redirect_uri, code_verifier), force=True)

    def device_login(self, scope: str | Sequence[str] | None = None, *, force: bool = False, **options: Any) -> Session:
        """Device authorization grant (RFC 8628): shows the code, blocks until approved.

        ``resource=`` asks for a token for that API (RFC 8707 §2), as on every interactive login.
        """
        __tracebackhide__ = True  # IPython: a denied or cancelled login shows the user's cell, not ours
        return _login.interactive("device", self, scope, force=force, options=options)

    def login_form(self, scope: str | Sequence[str] | None = None, *, force: bool = False, **options: Any) -> Session:
        """Username / password form (a widget in a notebook, getpass elsewhere)."""
        __tracebackhide__ = True
        return _login.interactive("password", self, scope, force=force, options=options)

    def browser_login(
        self, scope: str | Sequence[str] | None = None, *, force: bool = False, **options: Any
    ) -> Session:
        """Authorization code + PKCE in the browser with a loopback redirect (RFC 8252)."""
        __tracebackhide__ = True
        return _login.interactive("browser", self, scope, force=force, options=options)


def _unpickle_provider(config: Mapping[str, Any]) -> Provider:
    """A pickled provider in this process: the live one (it holds the secret), else rebuilt from config."""
    issuer_key = str(config.get("issuer") or config["token_url"]).rstrip("/")
    live = live_provider(issuer_key, config.get("client_id"), config)
    if live is not None:
        return live
    secret = secret_for(config.get("client_id"), issuer_key) if config.get("has_client_secret") else None
    return Provider.from_config(config, client_secret=secret)
