"""nbauth: log in once from a notebook; get a requests session that stays valid.

    import nbauth
    sso = nbauth.Keycloak("https://sso.example.com", "analytics", client_id="jupyter")
    api = sso.device_login(scope="openid profile")
    api.get("https://data.example.com/v1/sales").json()
    api = nbauth.session("analytics")        # later, or in a new kernel: from the cache

The public names are listed in ``__all__``; everything in ``nbauth._*`` is private.
"""

from __future__ import annotations

from ._entries import CacheKey
from ._errors import (
    AccessDenied,
    AuthError,
    AuthorizationPending,
    ConfigurationError,
    ExpiredToken,
    InsecureTransport,
    InvalidClient,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    LoginCancelled,
    LoginRequired,
    OAuthError,
    ProviderError,
    SlowDown,
    UnauthorizedClient,
    UnsupportedGrantType,
    VerificationError,
)
from ._exchange import VerificationWarning
from ._grants import (
    AuthorizationCode,
    ClientCredentials,
    Custom,
    Password,
    RefreshToken,
    parse_implicit_response,
    pkce_pair,
)
from ._lookup import session, sessions
from ._presets import Fusio, IdentityServer, Keycloak, SimpleIdServer
from ._profiles import login
from ._providers import Provider
from ._secret import Secret
from ._session import LogoutReport, Session
from ._store import CacheWarning
from ._tokens import Token, TokenState
from ._transport import InsecureTLSWarning

__version__ = "0.1.0"

__all__ = [
    "AccessDenied",
    "AuthError",
    "AuthorizationCode",
    "AuthorizationPending",
    "CacheKey",
    "CacheWarning",
    "ClientCredentials",
    "ConfigurationError",
    "Custom",
    "ExpiredToken",
    "Fusio",
    "IdentityServer",
    "InsecureTLSWarning",
    "InsecureTransport",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "Keycloak",
    "LoginCancelled",
    "LoginRequired",
    "LogoutReport",
    "OAuthError",
    "Password",
    "Provider",
    "ProviderError",
    "RefreshToken",
    "Secret",
    "Session",
    "SimpleIdServer",
    "SlowDown",
    "Token",
    "TokenState",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "VerificationError",
    "VerificationWarning",
    "login",
    "parse_implicit_response",
    "pkce_pair",
    "session",
    "sessions",
]
