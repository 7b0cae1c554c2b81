"""Presets: providers whose endpoint layout is known (seeds 000-004), and OpenID discovery.

Each preset is a :class:`Provider` with derived endpoints; any endpoint passed explicitly
overrides the derived one, and every ``Provider`` keyword is accepted.
"""

from __future__ import annotations

import threading
import urllib.parse
from typing import Any

from . import _clock
from ._errors import ConfigurationError, ProviderError, VerificationError
from ._providers import Provider
from ._transport import Transport, display_url, require_secure

__all__ = ["Fusio", "IdentityServer", "Keycloak", "SimpleIdServer", "discover"]

#: Discovery metadata key -> Provider keyword (OIDC Discovery §3, RFC 8414 §2).
METADATA_KEYS = {
    "token_endpoint": "token_url",
    "authorization_endpoint": "authorization_url",
    "device_authorization_endpoint": "device_authorization_url",
    "userinfo_endpoint": "userinfo_url",
    "revocation_endpoint": "revocation_url",
    "introspection_endpoint": "introspection_url",
    "jwks_uri": "jwks_url",
    "end_session_endpoint": "end_session_url",
}
_DISCOVERY_TTL = 3600.0
_discovered: dict[str, tuple[float, dict[str, Any]]] = {}
_discovery_lock = threading.Lock()


def _base(url: str) -> str:
    require_secure(url, "server URL")
    return url.rstrip("/")


def _with_defaults(derived: dict[str, Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Explicit keyword arguments win over derived endpoints (``None`` removes one)."""
    return {**derived, **kwargs}


class Keycloak(Provider):
    """Keycloak: ``Keycloak("https://sso.example.com", "analytics", client_id="jupyter")``.

    ``server_url`` may end in the legacy ``/auth`` (Keycloak before 17, seed 004): endpoints
    are ``{server_url}/realms/{realm}/protocol/openid-connect/...`` either way. The session is
    named after the realm unless ``name=`` says otherwise.
    """

    def __init__(self, server_url: str, realm: str, **kwargs: Any) -> None:
        if not realm or "/" in realm:
            raise ConfigurationError(f"realm must be a realm name, got {realm!r}")
        issuer = f"{_base(server_url)}/realms/{urllib.parse.quote(realm)}"
        oidc = f"{issuer}/protocol/openid-connect"
        derived = {
            "token_url": f"{oidc}/token", "authorization_url": f"{oidc}/auth",
            "device_authorization_url": f"{oidc}/auth/device", "userinfo_url": f"{oidc}/userinfo",
            "revocation_url": f"{oidc}/revoke", "introspection_url": f"{oidc}/token/introspect",
            "jwks_url": f"{oidc}/certs", "end_session_url": f"{oidc}/logout", "issuer": issuer, "name": realm,
        }
        self.realm = realm
        super().__init__(**_with_defaults(derived, kwargs))


class IdentityServer(Provider):
    """Duende / IdentityServer: endpoints under ``{base_url}/connect/`` (seed 000)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        base = _base(base_url)
        derived = {
            "token_url": f"{base}/connect/token", "authorization_url": f"{base}/connect/authorize",
            "device_authorization_url": f"{base}/connect/deviceauthorization",
            "userinfo_url": f"{base}/connect/userinfo", "revocation_url": f"{base}/connect/revocation",
            "introspection_url": f"{base}/connect/introspect",
            "jwks_url": f"{base}/.well-known/openid-configuration/jwks",
            "end_session_url": f"{base}/connect/endsession", "issuer": base,
        }
        super().__init__(**_with_defaults(derived, kwargs))


class SimpleIdServer(Provider):
    """SimpleIdServer: the realm is a path segment, ``{base_url}/{realm}/token`` (seed 002)."""

    def __init__(self, base_url: str, realm: str = "master", **kwargs: Any) -> None:
        issuer = f"{_base(base_url)}/{urllib.parse.quote(realm)}" if realm else _base(base_url)
        derived = {
            "token_url": f"{issuer}/token", "authorization_url": f"{issuer}/authorization",
            "device_authorization_url": f"{issuer}/device_authorization", "userinfo_url": f"{issuer}/userinfo",
            "revocation_url": f"{issuer}/token/revoke", "introspection_url": f"{issuer}/token_info",
            "jwks_url": f"{issuer}/jwks", "end_session_url": f"{issuer}/end_session", "issuer": issuer,
        }
        self.realm = realm
        super().__init__(**_with_defaults(derived, kwargs))


class Fusio(Provider):
    """Fusio (seed 003): OAuth2 at ``/authorization/token`` with comma-separated scopes and an
    absolute ``expires_in``; ``get_token_by_password`` / ``login_form`` use ``/consumer/login``
    (JSON ``{"username", "password"}`` answering ``{"token": ...}``) unless
    ``password_login_url=None`` is passed.
    """

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        base = _base(base_url)
        derived = {
            "token_url": f"{base}/authorization/token", "authorization_url": f"{base}/authorization/authorize",
            "revocation_url": f"{base}/authorization/revoke", "password_login_url": f"{base}/consumer/login",
            "scope_separator": ",",
        }
        super().__init__(**_with_defaults(derived, kwargs))


def _metadata_urls(issuer: str) -> list[str]:
    """OIDC Discovery §4 location first, then RFC 8414 §3.1 (path-aware), then the legacy one."""
    parts = urllib.parse.urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    urls = [f"{issuer}/.well-known/openid-configuration", f"{origin}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{issuer}/.well-known/oauth-authorization-server")
    return urls


def fetch_metadata(issuer: str, transport: Transport) -> dict[str, Any]:
    """Fetch and check provider metadata; the ``issuer`` inside must be the one asked for
    (OIDC Discovery §4.3, RFC 8414 §3.3). Cached per process for an hour.
    """
    issuer = _base(issuer)
    with _discovery_lock:
        hit = _discovered.get(issuer)
        if hit and _clock.monotonic() - hit[0] < _DISCOVERY_TTL:
            return dict(hit[1])
    failures: list[str] = []
    for url in _metadata_urls(issuer):
        try:
            reply = transport.request("GET", url, headers={"Accept": "application/json"})
        except ProviderError as exc:
            if exc.status is None and "connect" in exc.message:
                raise  # the server is unreachable: no point trying other paths
            failures.append(f"{display_url(url)}: {exc.message}")
            continue
        if reply.status != 200:
            failures.append(f"{reply.where}: HTTP {reply.status}")
            continue
        meta = reply.json()
        if not isinstance(meta, dict):
            failures.append(f"{reply.where}: not a JSON object")
            continue
        if str(meta.get("issuer", "")).rstrip("/") != issuer:
            raise VerificationError(
                f"discovery at {reply.where} names issuer {str(meta.get('issuer'))[:200]!r}, not {issuer!r} "
                "(they must be equal): check the issuer URL"
            )
        with _discovery_lock:
            _discovered[issuer] = (_clock.monotonic(), meta)
        return dict(meta)
    raise ProviderError(f"no OpenID / OAuth metadata found for {issuer}: " + "; ".join(failures), url=issuer)


def discover(issuer: str, **kwargs: Any) -> Provider:
    """Build a provider from OpenID discovery (RFC 8414 fallback); explicit endpoints win."""
    transport = Transport(verify=kwargs.get("verify", True), timeout=kwargs.get("timeout", 30.0),
                          proxies=kwargs.get("proxies"))
    meta = fetch_metadata(issuer, transport)
    derived: dict[str, Any] = {"issuer": str(meta["issuer"]).rstrip("/")}
    for key, kw in METADATA_KEYS.items():
        value = meta.get(key)
        if isinstance(value, str) and value:
            derived[kw] = value
    if "token_url" not in derived and "token_url" not in kwargs:
        raise ProviderError(f"the metadata of {issuer} has no token_endpoint", url=issuer)
    if "client_auth" not in kwargs and kwargs.get("client_secret"):
        methods = meta.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "client_secret_basic" not in methods and "client_secret_post" in methods:
            derived["client_auth"] = "client_secret_post"
    provider = Provider(**_with_defaults(derived, kwargs))
    provider.metadata = meta
    return provider
