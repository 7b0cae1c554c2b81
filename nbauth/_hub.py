"""JupyterHub: the hub user's own tokens from ``auth_state``, with no login and no token request.

On a hub with an OAuthenticator and ``enable_auth_state`` (which needs ``JUPYTERHUB_CRYPT_KEY``),
the hub keeps each user's tokens. A single-user server's kernel has ``JUPYTERHUB_API_URL``,
``JUPYTERHUB_API_TOKEN`` and ``JUPYTERHUB_USER``; with the ``admin:auth_state!user`` scope its
token reads ``GET $JUPYTERHUB_API_URL/users/$JUPYTERHUB_USER`` (``/user`` answers
``auth_state: null``). The tokens are used only when the ``iss`` of auth_state's id_token,
verified against the issuer's JWKS (OIDC Core §3.1.3.7 steps 2 and 6; its ``aud`` is the hub's
client, not ours), is the provider's issuer.

The hub owns that refresh token: nbauth never sends it (a refresh would rotate it under the
hub, RFC 9700 §4.14.2). The expiry is the access token's ``exp`` (when it is a JWT, RFC 9068
§2.2), else ``expires_in`` counted from the fetch. When the token is due (or an API answered
401) nbauth asks the hub again, at most every :data:`MIN_INTERVAL` seconds; a hub that keeps
answering an expired token (it refreshes only after its ``auth_refresh_age``) gives
:class:`LoginRequired` saying so.
"""

from __future__ import annotations

import os
import threading
import urllib.parse
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import _clock
from ._errors import ConfigurationError, LoginRequired, ProviderError, VerificationError
from ._jwt import unverified_claims, unverified_header
from ._record import Record
from ._registry import Holder
from ._scope import parse_scope
from ._tokens import Token, TokenState

if TYPE_CHECKING:
    from ._providers import Provider

__all__ = ["LOGIN", "MIN_INTERVAL", "HubConfig", "fetched", "hub_config", "hub_status", "hub_token", "renew_from_hub"]

LOGIN = "jupyterhub"
#: The least time between two auth_state reads for one session (seconds).
MIN_INTERVAL = 5.0
_last_fetch: dict[str, float] = {}
_fetch_lock = threading.Lock()


class HubConfig(Record):
    """Where the hub's API is, whose tokens to read, and the server's API token (hidden)."""

    __slots__ = ("api_token", "api_url", "user")
    _hidden = frozenset({"api_token"})
    api_url: str
    user: str
    api_token: str

    def __init__(self, api_url: str, user: str, api_token: str) -> None:
        self._set(api_url=api_url.rstrip("/"), user=user, api_token=api_token)

    @property
    def user_url(self) -> str:
        return f"{self.api_url}/users/{urllib.parse.quote(self.user, safe='')}"


def hub_config(environ: Mapping[str, str] | None = None) -> HubConfig | None:
    """The hub settings from the environment, or None when this kernel is not on a hub."""
    env = os.environ if environ is None else environ
    url, token, user = (env.get(n, "") for n in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"))
    return HubConfig(url, user, token) if url and token and user else None


def _fetch_auth_state(provider: Provider, hub: HubConfig) -> dict[str, Any]:
    """The user's auth_state; LoginRequired when the hub keeps none or does not let us read it."""
    reply = provider.transport.request(
        "GET", hub.user_url, headers={"Accept": "application/json", "Authorization": f"token {hub.api_token}"}
    )
    if reply.status in (401, 403):
        raise LoginRequired(
            f"the hub refused to show {hub.user}'s auth_state (HTTP {reply.status}): the server's "
            "token needs the admin:auth_state!user scope (a role in the hub's config)"
        )
    if reply.status != 200:
        raise ProviderError(f"{reply.where} answered HTTP {reply.status}", url=reply.url, status=reply.status)
    body = reply.json()
    state = body.get("auth_state") if isinstance(body, dict) else None
    if not isinstance(state, dict) or not isinstance(state.get("access_token"), str):
        raise LoginRequired(
            f"the hub keeps no tokens for {hub.user} (auth_state is empty): the hub needs an "
            "OAuthenticator with enable_auth_state=True and JUPYTERHUB_CRYPT_KEY, and the server's "
            "token the admin:auth_state!user scope"
        )
    return state


def verified_issuer(provider: Provider, id_token: str) -> dict[str, Any]:
    """The id_token's claims once its signature verifies against the provider's JWKS and its ``iss`` is the
    provider's issuer; VerificationError otherwise. ``aud`` is the hub's client and ``exp``/``iat`` may be off
    (the hub got it at login): neither is checked.
    """
    import jwt

    from ._jwt import _select_key

    if not provider.issuer or not provider.jwks_url:
        raise ConfigurationError(f"{provider.name}: the issuer and its jwks_url are needed to trust a hub's tokens")
    header = unverified_header(id_token)
    for refresh in (False, True):
        chosen = _select_key(header, provider.jwks(refresh=refresh))
        if chosen is not None:
            break
    else:
        raise VerificationError("no key of the provider's JWKS signed the hub's id_token: another issuer?")
    jwk, alg = chosen
    try:
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=jwt.PyJWK.from_dict(jwk, algorithm=alg).key,
            algorithms=[alg],
            issuer=provider.issuer,
            options={
                "verify_aud": False,
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["iss"],
            },
        )
    except jwt.InvalidIssuerError:
        raise VerificationError("the hub's id_token was issued by another issuer (iss)") from None
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise VerificationError(f"the hub's id_token does not verify ({type(exc).__name__})") from None
    return claims


def _token(provider: Provider, state: Mapping[str, Any], fetched_at: float) -> Token:
    id_token = state.get("id_token")
    if not isinstance(id_token, str) or not id_token:
        raise LoginRequired(
            "the hub's auth_state has no id_token, so its issuer cannot be verified: nbauth does "
            "not use it (the hub's authenticator must request the openid scope)"
        )
    claims = verified_issuer(provider, id_token)
    access = str(state["access_token"])
    response = state.get("token_response") if isinstance(state.get("token_response"), dict) else {}
    assert isinstance(response, dict)
    exp = (unverified_claims(access) or {}).get("exp")
    expires_in = response.get("expires_in")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        expires_at: float | None = float(exp)
    elif isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        expires_at = fetched_at + float(expires_in)
    else:
        expires_at = None
    token_type = str(response.get("token_type") or "Bearer")
    if token_type.lower() != "bearer":
        raise LoginRequired(f"the hub's token is a {token_type[:20]} token, which this kernel cannot use")
    scope = state.get("scope") if state.get("scope") is not None else response.get("scope")
    return Token(
        access_token=access,
        refresh_token=None,
        id_token=id_token,
        scope=parse_scope(scope),
        expires_at=expires_at,
        issued_at=fetched_at,
        claims=claims,
    )


def hub_token(provider: Provider, hub: HubConfig) -> Token:
    """The hub user's token from auth_state, checked against the provider's issuer."""
    return _token(provider, _fetch_auth_state(provider, hub), _clock.now())


def fetched(digest: str) -> None:
    """Note that the hub was just asked for this entry (renewals wait :data:`MIN_INTERVAL`)."""
    with _fetch_lock:
        _last_fetch[digest] = _clock.monotonic()


def renew_from_hub(holder: Holder) -> Token:
    """Ask the hub again (never the IdP): at most every MIN_INTERVAL s; an expired answer is LoginRequired."""
    hub = hub_config()
    name = holder.entry.name
    if hub is None:
        raise LoginRequired(
            f"the session {name!r} came from JupyterHub, and this process is not on the hub "
            "(no JUPYTERHUB_API_TOKEN): log in another way"
        )
    with _fetch_lock:
        wait = _last_fetch.get(holder.key.digest, -MIN_INTERVAL) + MIN_INTERVAL - _clock.monotonic()
    if wait > 0:
        _clock.sleep(wait)
    fetched_at = _clock.now()
    token = _token(holder.provider, _fetch_auth_state(holder.provider, hub), fetched_at)
    with _fetch_lock:
        _last_fetch[holder.key.digest] = _clock.monotonic()
    old = holder.token
    if token.access_token == old.access_token:  # the same token: its expiry has not moved (expires_in is stale)
        token = token.replace(expires_at=old.expires_at, issued_at=old.issued_at)
    if token.state(0) is TokenState.EXPIRED:
        raise LoginRequired(
            f"the hub still holds an expired access token for {hub.user} ({name!r}): it refreshes "
            "it only after its auth_refresh_age, or when you log in to the hub again. Reload the "
            "hub page (or log out and in), then run the cell again"
        )
    return token


def hub_status(provider: Provider, environ: Mapping[str, str] | None = None) -> tuple[bool, str]:
    """Whether the hub link applies for ``explain``, and why: (applies, reason)."""
    hub = hub_config(environ)
    if hub is None:
        return False, "not on a JupyterHub (JUPYTERHUB_API_URL / _API_TOKEN / _USER not all set)"
    try:
        state = _fetch_auth_state(provider, hub)
        id_token = state.get("id_token")
        if not isinstance(id_token, str):
            return False, "the hub's auth_state has no id_token"
        verified_issuer(provider, id_token)
    except (LoginRequired, VerificationError, ProviderError, ConfigurationError) as exc:
        return False, exc.message
    return True, f"JupyterHub auth_state of {hub.user} for {provider.issuer}"
