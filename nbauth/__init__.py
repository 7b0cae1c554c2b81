"""nbauth: log in once from a notebook; get a requests session that stays valid.

    import nbauth
    sso = nbauth.Keycloak("https://sso.example.com", "analytics", client_id="jupyter")
    api = sso.device_login(scope="openid profile")
    api.get("https://data.example.com/v1/sales").json()
    api = nbauth.session("analytics")        # later, or in a new kernel: from the cache

The public names are listed in ``__all__``; everything in ``nbauth._*`` is private.
"""

from __future__ import annotations

import sys as _sys
from typing import TYPE_CHECKING, Any

from ._entries import CacheKey
from ._errors import (
    AccessDenied,
    AuthError,
    AuthorizationPending,
    ConfigurationError,
    ExpiredToken,
    InsecureTransport,
    InvalidClient,
    InvalidDPoPProof,
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    LoginCancelled,
    LoginRequired,
    OAuthError,
    ProviderError,
    SlowDown,
    UnauthorizedClient,
    UnsupportedGrantType,
    UseDPoPNonce,
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
from ._jwt_bearer import JWTBearer
from ._lookup import session, sessions
from ._presets import Fusio, IdentityServer, Keycloak, SimpleIdServer
from ._providers import Provider
from ._secret import Secret
from ._session import LogoutReport, Session
from ._store import CacheWarning
from ._token_exchange import TokenExchange
from ._tokens import Token, TokenState
from ._transport import InsecureTLSWarning

if TYPE_CHECKING:
    from ._chain import Explanation, explain
    from ._profiles import login


def __getattr__(name: str) -> Any:
    """``nbauth.login``, ``nbauth.explain``, ``nbauth.Explanation``: the profiles and the credential chain
    load on first access (PEP 562), so ``import nbauth`` stays light.
    """
    value: Any
    if name == "login":
        from ._profiles import login as value
    elif name in ("explain", "Explanation"):
        from . import _chain

        value = getattr(_chain, name)
    else:
        raise AttributeError(f"module 'nbauth' has no attribute {name!r}")
    globals()[name] = value  # later lookups are plain attribute reads
    return value


if "IPython" in _sys.modules:  # the traceback handler matters only in a running IPython shell
    from . import _ipython

    _ipython.install()
    del _ipython
del _sys

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
    "Explanation",
    "Fusio",
    "IdentityServer",
    "InsecureTLSWarning",
    "InsecureTransport",
    "InvalidClient",
    "InvalidDPoPProof",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "InvalidTarget",
    "JWTBearer",
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
    "TokenExchange",
    "TokenState",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "UseDPoPNonce",
    "VerificationError",
    "VerificationWarning",
    "explain",
    "login",
    "parse_implicit_response",
    "pkce_pair",
    "session",
    "sessions",
]
