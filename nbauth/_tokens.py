"""Tokens: parsing token responses with the quirks real servers send, and expiry.

A :class:`Token` is immutable. It is also a read-only mapping with the keys
requests-oauthlib users expect (``token["access_token"]``, ``token.get("expires_at")``).
Its repr and str never show a secret.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import _clock
from ._errors import ProviderError
from ._jwt import unverified_claims
from ._record import Record
from ._scope import parse_scope
from ._secret import Secret, secret

if TYPE_CHECKING:
    from ._dpop import DPoPKey

__all__ = ["Token", "TokenState", "parse_token_response"]

#: ``expires_in`` values at or above this are absolute epoch times, not durations (Fusio sends one).
ABSOLUTE_EXPIRY_THRESHOLD = 1_000_000_000
#: No token is trusted to live longer than this, whatever the server says.
MAX_LIFETIME = 366 * 24 * 3600.0
#: Default refresh leeway cap: refresh when less than min(this, half the lifetime) remains.
DEFAULT_LEEWAY = 60.0
_MAX_TOKEN_CHARS = 64 * 1024
_SECRET_FIELDS = ("access_token", "refresh_token", "id_token")


class TokenState(enum.Enum):
    """FRESH: use it. STALE: usable but due for refresh. EXPIRED: must not be sent."""

    FRESH = "fresh"
    STALE = "stale"
    EXPIRED = "expired"


class Token(Record, Mapping[str, Any]):
    """An OAuth 2.0 access token with what came with it (RFC 6749 §5.1).

    ``expires_at`` is local epoch seconds (a float) or None when the server gave no lifetime.
    ``claims`` come only from an id_token whose signature, ``iss``, ``aud``, ``exp`` and
    ``nonce`` were verified (OIDC Core §3.1.3.7); they are empty otherwise. The three tokens
    are :class:`~nbauth._secret.Secret` strings: their repr is ``'***'`` wherever they go.
    """

    __slots__ = (
        "access_token",
        "claims",
        "dpop_key",
        "expires_at",
        "id_token",
        "issued_at",
        "refresh_expires_at",
        "refresh_token",
        "scope",
        "token_type",
    )
    access_token: Secret
    token_type: str
    refresh_token: Secret | None
    id_token: Secret | None
    scope: tuple[str, ...]
    expires_at: float | None
    issued_at: float
    claims: Mapping[str, Any]
    refresh_expires_at: float | None
    #: The DPoP key the token is bound to (RFC 9449); kept with the cache entry, never shown.
    dpop_key: DPoPKey | None

    def __init__(
        self,
        access_token: str,
        token_type: str = "Bearer",  # noqa: S107 - a token type, not a password
        refresh_token: str | None = None,
        id_token: str | None = None,
        scope: tuple[str, ...] = (),
        expires_at: float | None = None,
        issued_at: float | None = None,
        claims: Mapping[str, Any] | None = None,
        refresh_expires_at: float | None = None,
        dpop_key: DPoPKey | None = None,
    ) -> None:
        self._set(
            access_token=Secret(access_token),
            token_type=token_type,
            refresh_token=secret(refresh_token),
            id_token=secret(id_token),
            scope=tuple(scope),
            expires_at=expires_at,
            issued_at=_clock.now() if issued_at is None else issued_at,
            claims=dict(claims) if claims else {},
            refresh_expires_at=refresh_expires_at,
            dpop_key=dpop_key,
        )

    @property
    def sender_constrained(self) -> bool:
        """True for a DPoP-bound token: it works only with proofs signed by this kernel's key (RFC 9449)."""
        return self.token_type == "DPoP"

    # ---- expiry
    @property
    def expires_in(self) -> float | None:
        """Seconds left before expiry (negative once expired), or None when unknown."""
        return None if self.expires_at is None else self.expires_at - _clock.now()

    @property
    def lifetime(self) -> float | None:
        """The lifetime the server granted, in seconds, or None when unknown."""
        return None if self.expires_at is None else max(0.0, self.expires_at - self.issued_at)

    def leeway(self, cap: float | None = None) -> float:
        """Refresh leeway: min(cap, half the lifetime), so 3-second and 5-minute tokens both work."""
        cap = DEFAULT_LEEWAY if cap is None else cap
        life = self.lifetime
        return cap if life is None else min(cap, life / 2)

    def state(self, leeway: float | None = None, now: float | None = None) -> TokenState:
        """FRESH, STALE (refresh due: less than ``leeway`` left) or EXPIRED."""
        if self.expires_at is None:
            return TokenState.FRESH
        now = _clock.now() if now is None else now
        left = self.expires_at - now
        if left <= 0:
            return TokenState.EXPIRED
        return TokenState.STALE if left <= self.leeway(leeway) else TokenState.FRESH

    @property
    def refreshable(self) -> bool:
        """True when a refresh token is held and not known to have expired."""
        if not self.refresh_token:
            return False
        return self.refresh_expires_at is None or self.refresh_expires_at > _clock.now()

    @property
    def user(self) -> str | None:
        """Who the verified id_token says the user is (``preferred_username``, else ``sub``)."""
        for claim in ("preferred_username", "email", "sub"):
            value = self.claims.get(claim)
            if isinstance(value, str) and value:
                return value
        return None

    def merged_with(self, new: Token) -> Token:
        """The token after a refresh: keep what the new response left out (RFC 6749 §6).

        A server MAY omit a new refresh token (keep the old one) and omits the id_token or
        scope when unchanged.
        """
        return new.replace(
            refresh_token=new.refresh_token or self.refresh_token,
            id_token=new.id_token or self.id_token,
            claims=new.claims or self.claims,
            scope=new.scope or self.scope,
            refresh_expires_at=new.refresh_expires_at if new.refresh_token else self.refresh_expires_at,
            dpop_key=new.dpop_key or self.dpop_key,
        )

    # ---- mapping interface (requests-oauthlib's token dict)
    def as_dict(self) -> dict[str, Any]:
        """The token as the dict requests-oauthlib uses (contains secrets: do not log it)."""
        out: dict[str, Any] = {"access_token": self.access_token, "token_type": self.token_type}
        for name in ("refresh_token", "id_token", "expires_at"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        if self.expires_at is not None:
            out["expires_in"] = max(0, int(self.expires_at - _clock.now()))
        if self.scope:
            out["scope"] = list(self.scope)
        return out

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Token):
            return self._values() == other._values()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    # ---- safe display
    def __repr__(self) -> str:
        parts = [f"token_type={self.token_type!r}", "access_token='***'"]
        if self.refresh_token:
            parts.append("refresh_token='***'")
        if self.id_token:
            parts.append("id_token='***'")
        if self.scope:
            parts.append(f"scope={' '.join(self.scope)!r}")
        left = self.expires_in
        if left is not None:
            parts.append(f"expires_in={left:.0f}s")
        if self.user:
            parts.append(f"user={self.user!r}")
        return f"Token({', '.join(parts)})"

    __str__ = __repr__

    # ---- cache form (allow-listed fields only, MSAL style)
    def to_cache(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "refresh_token": self.refresh_token,
            "id_token": self.id_token,
            "scope": list(self.scope),
            "expires_at": self.expires_at,
            "issued_at": self.issued_at,
            "claims": dict(self.claims),
            "refresh_expires_at": self.refresh_expires_at,
            **({"dpop_jwk": self.dpop_key.private_jwk()} if self.dpop_key is not None else {}),
        }

    @classmethod
    def from_cache(cls, data: Mapping[str, Any]) -> Token:
        """Rebuild a token written by :meth:`to_cache`; ValueError when anything is off."""

        def opt_str(name: str) -> str | None:
            value = data.get(name)
            if value is not None and (not isinstance(value, str) or len(value) > _MAX_TOKEN_CHARS):
                raise ValueError(name)
            return value

        def opt_num(name: str) -> float | None:
            value = data.get(name)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(name)
            return float(value)

        access = opt_str("access_token")
        token_type = opt_str("token_type") or "Bearer"
        scope = data.get("scope", [])
        claims = data.get("claims", {})
        if not access or not isinstance(scope, list) or not all(isinstance(s, str) for s in scope):
            raise ValueError("access_token/scope")
        if not isinstance(claims, dict):
            raise ValueError("claims")
        _check_header_safe(access)
        dpop_key = None
        if data.get("dpop_jwk") is not None:
            from ._dpop import DPoPKey  # cryptography loads only for a DPoP entry

            jwk = data["dpop_jwk"]
            if not isinstance(jwk, dict):
                raise ValueError("dpop_jwk")
            dpop_key = DPoPKey.from_jwk(jwk)
        return cls(
            access_token=access,
            token_type=_normal_token_type(token_type),
            refresh_token=opt_str("refresh_token"),
            id_token=opt_str("id_token"),
            scope=tuple(scope),
            expires_at=opt_num("expires_at"),
            issued_at=opt_num("issued_at") or _clock.now(),
            claims=claims,
            refresh_expires_at=opt_num("refresh_expires_at"),
            dpop_key=dpop_key,
        )


def _normal_token_type(value: str) -> str:
    """Bearer (RFC 6750) or DPoP (RFC 9449 §5), in any case; anything else cannot be sent."""
    if value.lower() == "dpop":
        return "DPoP"
    if value.lower() != "bearer":
        raise ProviderError(
            f"the token response has token_type {value[:40]!r}; nbauth sends only Bearer and DPoP tokens"
        )
    return "Bearer"


def _check_header_safe(access_token: str) -> None:
    if len(access_token) > _MAX_TOKEN_CHARS or not access_token.isascii() or not access_token.isprintable():
        raise ProviderError("the provider's access_token has characters an Authorization header cannot carry")
    if any(c.isspace() for c in access_token):
        raise ProviderError("the provider's access_token has whitespace: an Authorization header cannot carry it")


def _parse_lifetime(value: Any, name: str, received_at: float, skew: float) -> float | None:
    """Turn ``expires_in`` (RFC 6749 §5.1) into a local epoch time.

    Accepts numbers and numeric strings. Values >= 1e9 are absolute epoch times in the
    server's clock (Fusio), corrected by ``skew``. 0 or absent means unknown. Lifetimes are
    capped at :data:`MAX_LIFETIME`.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ProviderError(f"{name} is a boolean, not a number of seconds")
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            raise ProviderError(f"{name} is not a number ({value[:20]!r})") from None
    elif isinstance(value, (int, float)):
        number = float(value)
    else:
        raise ProviderError(f"{name} has an unexpected type ({type(value).__name__})")
    if not math.isfinite(number):
        raise ProviderError(f"{name} is not a finite number")
    if number < 0:
        raise ProviderError(f"{name} is negative ({number:.0f})")
    if number == 0:
        return None
    if number >= ABSOLUTE_EXPIRY_THRESHOLD:
        local = number - skew
        if local <= received_at:
            raise ProviderError(f"{name} is an absolute time already in the past")
        return min(local, received_at + MAX_LIFETIME)
    return received_at + min(number, MAX_LIFETIME)


def parse_token_response(
    body: Any,
    *,
    scope_separator: str = " ",
    requested_scope: Sequence[str] = (),
    received_at: float | None = None,
    server_time: float | None = None,
) -> Token:
    """Parse a successful token response (RFC 6749 §5.1) into a :class:`Token`.

    Tolerates what real servers send: ``expires_in`` as a string or an absolute epoch time,
    missing ``expires_in`` (then the access token's JWT ``exp`` is read - for expiry only,
    never trusted for anything else), ``token_type`` in any case or missing, ``scope`` as a
    list or comma-separated (Fusio's ``{"token": ...}`` is a compliance fix). A ``token_type`` other than
    Bearer is refused. ``server_time`` (the response's Date header) estimates clock skew for
    absolute times; without it the JWT ``iat`` is used.

    Raises :class:`ProviderError` (without url; the caller adds it) when the body is unusable.
    """
    if not isinstance(body, dict):
        raise ProviderError("the token response is not a JSON object")
    access = body.get("access_token")
    if not isinstance(access, str) or not access:
        raise ProviderError("the token response has no access_token")
    _check_header_safe(access)
    token_type = body.get("token_type") or "Bearer"
    if not isinstance(token_type, str):
        raise ProviderError("token_type is not a string")
    token_type = _normal_token_type(token_type)

    received_at = _clock.now() if received_at is None else received_at
    jwt_claims = unverified_claims(access)
    skew = 0.0
    if server_time is not None:
        skew = server_time - received_at
    elif jwt_claims and isinstance(jwt_claims.get("iat"), (int, float)):
        skew = float(jwt_claims["iat"]) - received_at
    if abs(skew) < 2:  # Date has 1-second resolution: ignore noise
        skew = 0.0

    expires_at = _parse_lifetime(body.get("expires_in"), "expires_in", received_at, skew)
    if expires_at is None and "expires_in" not in body and jwt_claims:
        exp = jwt_claims.get("exp")
        if isinstance(exp, (int, float)) and not isinstance(exp, bool) and math.isfinite(exp):
            expires_at = min(float(exp) - skew, received_at + MAX_LIFETIME)
    refresh_expires_at = _parse_lifetime(body.get("refresh_expires_in"), "refresh_expires_in", received_at, skew)

    refresh = body.get("refresh_token")
    id_token = body.get("id_token")
    for name, value in (("refresh_token", refresh), ("id_token", id_token)):
        if value is not None and (not isinstance(value, str) or len(value) > _MAX_TOKEN_CHARS):
            raise ProviderError(f"{name} is not a string of sane length")
    scope = parse_scope(body.get("scope"), scope_separator) or tuple(requested_scope)
    return Token(
        access_token=access,
        token_type=token_type,
        refresh_token=refresh or None,
        id_token=id_token or None,
        scope=scope,
        expires_at=expires_at,
        issued_at=received_at,
        refresh_expires_at=refresh_expires_at,
    )
