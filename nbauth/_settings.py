"""A provider's settings: its endpoints and one client registration, checked once.

:class:`ProviderSettings` holds what a provider *is* (the endpoints as attributes, the
client, the wire format, the transport options) and nothing it does: the requests live in
:class:`~nbauth._exchange.Exchange`, the logins in :class:`nbauth.Provider`. Every endpoint
must be https, except on loopback (RFC 6749 §3.1, RFC 8252 §8.3). ``config()`` is the
public part that a cache entry keeps to rebuild the provider in another kernel; it never
holds the client secret.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._client_auth import check_client_auth
from ._errors import ConfigurationError
from ._fixes import Fix, fixes_for
from ._secret import Secret, secret
from ._transport import DEFAULT_TIMEOUT, Transport, require_secure

if TYPE_CHECKING:
    from ._client_jwt import ClientKey

__all__ = ["ENDPOINTS", "SECRET_ROUTES", "ProviderSettings"]

ENDPOINTS = (
    "token_url",
    "authorization_url",
    "device_authorization_url",
    "userinfo_url",
    "revocation_url",
    "introspection_url",
    "jwks_url",
    "end_session_url",
    "password_login_url",
)
#: The endpoints a cache entry sends a client secret, password or refresh token to: a reused
#: entry must have been made with exactly these (the reuse rules of design.md).
SECRET_ROUTES = ("token_url", "device_authorization_url", "revocation_url", "introspection_url", "password_login_url")


class ProviderSettings:
    """Endpoints, client registration and options of a provider (see :class:`nbauth.Provider`)."""

    token_url: str
    authorization_url: str | None
    device_authorization_url: str | None
    userinfo_url: str | None
    revocation_url: str | None
    introspection_url: str | None
    jwks_url: str | None
    end_session_url: str | None
    password_login_url: str | None
    _private_key: ClientKey | None
    dpop: bool
    resource: tuple[str, ...]

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
        fixes: Sequence[str] | None = None,
        private_key: Any = None,
        dpop: bool = False,
        resource: str | Sequence[str] | None = None,
    ) -> None:
        urls = {
            "token_url": token_url,
            "authorization_url": authorization_url,
            "device_authorization_url": device_authorization_url,
            "userinfo_url": userinfo_url,
            "revocation_url": revocation_url,
            "introspection_url": introspection_url,
            "jwks_url": jwks_url,
            "end_session_url": end_session_url,
            "password_login_url": password_login_url,
        }
        for attr, value in urls.items():
            setattr(self, attr, require_secure(value, attr) if value else None)
        if not self.token_url:
            raise ConfigurationError("token_url is required")
        #: the issuer exactly as published: id_token ``iss`` is compared with it (OIDC Core §3.1.3.7)
        self.issuer = issuer or None
        self.client_id = client_id
        self._client_secret: Secret | None = secret(client_secret)
        # private_key_jwt (RFC 7523, OIDC Core §9), DPoP (RFC 9449), resource indicators (RFC 8707)
        from ._client_jwt_config import client_options

        self._private_key, self.dpop, self.resource, jwt_auth = client_options(
            private_key, dpop, resource, client_auth, client_id, client_secret
        )
        self.client_auth = check_client_auth(self._default_auth(client_auth or jwt_auth, client_token_for_user_grants))
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
        self.fix_names: tuple[str, ...] = tuple(fixes) if fixes is not None else self.default_fixes()
        self.fixes: tuple[Fix, ...] = fixes_for(self.fix_names)
        self.metadata: dict[str, Any] | None = None  # the discovery document, when discovered

    def _default_auth(self, client_auth: str | None, client_token: bool) -> str:
        """A client without a secret is public (RFC 6749 §2.1) unless ``client_auth`` says otherwise."""
        if client_token and client_auth == "client_secret_basic":
            raise ConfigurationError(
                "client_token_for_user_grants sends the client token in the Authorization header, so the "
                "client's credentials must go in the body: use client_auth='client_secret_post'"
            )
        if client_auth:
            return client_auth
        if not self._client_secret:
            return "none"
        return "client_secret_post" if client_token else "client_secret_basic"

    def default_fixes(self) -> tuple[str, ...]:
        """The compliance fixes this provider gets unless ``fixes=`` names others (presets add theirs)."""
        names = ["verification_url"]
        if self.client_token_for_user_grants:
            names.append("client_token_for_user_grants")
        return tuple(names)

    # ---- identity
    @property
    def issuer_key(self) -> str:
        """The issuer (without a trailing ``/``), or the token URL of a plain OAuth server: the cache key part."""
        return (self.issuer or self.token_url).rstrip("/")

    @property
    def client_secret(self) -> Secret | None:
        return self._client_secret

    @property
    def confidential(self) -> bool:
        """True when the client authenticates at the token endpoint (RFC 6749 §2.1)."""
        return self.client_auth != "none"

    def routes(self) -> dict[str, str | None]:
        """The endpoints that receive secrets, for the reuse decision (see :data:`SECRET_ROUTES`)."""
        return {attr: getattr(self, attr) for attr in SECRET_ROUTES}

    def _default_name(self) -> str:
        return urllib.parse.urlsplit(self.issuer_key).hostname or "provider"

    def __repr__(self) -> str:
        secret_part = ", client_secret='***'" if self._client_secret else ""
        secret_part += ", private_key='***'" if self._private_key is not None else ""
        return (
            f"{type(self).__name__}(name={self.name!r}, issuer={self.issuer_key!r}, "
            f"client_id={self.client_id!r}{secret_part}, client_auth={self.client_auth!r})"
        )

    def config(self) -> dict[str, Any]:
        """Everything needed to rebuild this provider, without the client secret (for the cache)."""
        out: dict[str, Any] = {attr: getattr(self, attr) for attr in ENDPOINTS}
        verify = self.transport.verify
        out.update(
            issuer=self.issuer,
            client_id=self.client_id,
            client_auth=self.client_auth,
            request_format=self.request_format,
            scope_separator=self.scope_separator,
            client_token_for_user_grants=self.client_token_for_user_grants,
            name=self.name,
            verify=verify if isinstance(verify, (bool, str)) else True,
            timeout=self.transport.timeout,
            refresh_leeway=self.refresh_leeway,
            has_client_secret=bool(self._client_secret),
            fixes=list(self.fix_names),
            dpop=self.dpop,
            resource=list(self.resource),
        )
        if self._private_key is not None and self._private_key.path:
            out["private_key_file"] = self._private_key.path  # where the key is, never the key itself
        return out
