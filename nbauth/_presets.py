"""Presets: providers whose endpoint layout is known (seeds 000-004).

Each preset is a :class:`Provider` with derived endpoints and, where the provider departs
from the RFCs, its compliance fixes (:mod:`nbauth._fixes`); any endpoint passed explicitly
overrides the derived one, and every ``Provider`` keyword is accepted.
"""

from __future__ import annotations

import urllib.parse
from typing import Any

from ._errors import ConfigurationError
from ._providers import Provider
from ._transport import require_secure

__all__ = ["Fusio", "IdentityServer", "Keycloak", "SimpleIdServer"]


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
            "token_url": f"{oidc}/token",
            "authorization_url": f"{oidc}/auth",
            "device_authorization_url": f"{oidc}/auth/device",
            "userinfo_url": f"{oidc}/userinfo",
            "revocation_url": f"{oidc}/revoke",
            "introspection_url": f"{oidc}/token/introspect",
            "jwks_url": f"{oidc}/certs",
            "end_session_url": f"{oidc}/logout",
            "issuer": issuer,
            "name": realm,
        }
        self.realm = realm
        super().__init__(**_with_defaults(derived, kwargs))


class IdentityServer(Provider):
    """Duende / IdentityServer: endpoints under ``{base_url}/connect/`` (seed 000)."""

    def __init__(self, base_url: str, **kwargs: Any) -> None:
        base = _base(base_url)
        derived = {
            "token_url": f"{base}/connect/token",
            "authorization_url": f"{base}/connect/authorize",
            "device_authorization_url": f"{base}/connect/deviceauthorization",
            "userinfo_url": f"{base}/connect/userinfo",
            "revocation_url": f"{base}/connect/revocation",
            "introspection_url": f"{base}/connect/introspect",
            "jwks_url": f"{base}/.well-known/openid-configuration/jwks",
            "end_session_url": f"{base}/connect/endsession",
            "issuer": base,
        }
        super().__init__(**_with_defaults(derived, kwargs))


class SimpleIdServer(Provider):
    """SimpleIdServer: the realm is a path segment, ``{base_url}/{realm}/token`` (seed 002)."""

    def __init__(self, base_url: str, realm: str = "master", **kwargs: Any) -> None:
        issuer = f"{_base(base_url)}/{urllib.parse.quote(realm)}" if realm else _base(base_url)
        derived = {
            "token_url": f"{issuer}/token",
            "authorization_url": f"{issuer}/authorization",
            "device_authorization_url": f"{issuer}/device_authorization",
            "userinfo_url": f"{issuer}/userinfo",
            "revocation_url": f"{issuer}/token/revoke",
            "introspection_url": f"{issuer}/token_info",
            "jwks_url": f"{issuer}/jwks",
            "end_session_url": f"{issuer}/end_session",
            "issuer": issuer,
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
            "token_url": f"{base}/authorization/token",
            "authorization_url": f"{base}/authorization/authorize",
            "revocation_url": f"{base}/authorization/revoke",
            "password_login_url": f"{base}/consumer/login",
            "scope_separator": ",",
        }
        super().__init__(**_with_defaults(derived, kwargs))

    def default_fixes(self) -> tuple[str, ...]:
        """Fusio's quirks: the password login route and its ``{"token": ...}`` answer."""
        return (*super().default_fixes(), "fusio_password_login", "token_field")
