"""JWT helpers: reading an ``exp`` without trust, and verifying id_tokens with pyjwt.

pyjwt (and the cryptography package behind it) is imported only when an id_token is
verified, so ``import nbauth`` stays cheap.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from ._errors import VerificationError

__all__ = ["unverified_claims", "verify_id_token"]

#: Asymmetric algorithms accepted for id_tokens, by JWK key type (RFC 8725 §3.1, §2.1).
#: ``none`` and HMAC are never accepted: a public JWKS must not verify an HS256 token.
ALGORITHMS_BY_KTY: dict[str, tuple[str, ...]] = {
    "RSA": ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
    "EC": ("ES256", "ES384", "ES512"),
    "OKP": ("EdDSA",),
}
_MAX_JWT = 64 * 1024


def _b64json(segment: str) -> Any:
    padded = segment + "=" * (-len(segment) % 4)
    return json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))


def unverified_claims(token: str) -> dict[str, Any] | None:
    """The payload of a JWS-shaped token, *unverified*; None when it is not one.

    Used only to read ``exp`` / ``iat`` of an access token for refresh timing. Nothing read
    here is ever shown as who the user is.
    """
    if len(token) > _MAX_JWT or token.count(".") != 2:
        return None
    try:
        payload = _b64json(token.split(".")[1])
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        return None
    return payload if isinstance(payload, dict) else None


def unverified_header(token: str) -> dict[str, Any]:
    if len(token) > _MAX_JWT or token.count(".") != 2:
        raise VerificationError("the id_token is not a signed JWT (JWS compact form)")
    try:
        header = _b64json(token.split(".", maxsplit=1)[0])
    except (ValueError, binascii.Error, UnicodeError, RecursionError):
        raise VerificationError("the id_token header is not valid base64url JSON") from None
    if not isinstance(header, dict):
        raise VerificationError("the id_token header is not a JSON object")
    return header


def _select_key(header: Mapping[str, Any], jwks: Mapping[str, Any]) -> tuple[dict[str, Any], str] | None:
    """Pick the JWK for this header: kid match, key type compatible with alg, use=sig."""
    alg = header.get("alg")
    kid = header.get("kid")
    keys = jwks.get("keys")
    if not isinstance(keys, list):
        return None
    candidates = []
    for jwk in keys:
        if not isinstance(jwk, dict):
            continue
        kty = jwk.get("kty")
        if alg not in ALGORITHMS_BY_KTY.get(str(kty), ()):
            continue
        if jwk.get("use") not in (None, "sig") or jwk.get("alg") not in (None, alg):
            continue
        if kid is not None and jwk.get("kid") != kid:
            continue
        candidates.append(jwk)
    if len(candidates) != 1:
        return None
    return candidates[0], str(alg)


def verify_id_token(
    id_token: str,
    *,
    jwks: Mapping[str, Any],
    issuer: str,
    client_id: str,
    nonce: str | None = None,
    now: float,
    leeway: float = 120.0,
    expected_sub: str | None = None,
) -> dict[str, Any]:
    """Verify an id_token and return its claims (OIDC Core §3.1.3.7).

    Checks the signature against the provider's JWKS with an asymmetric algorithm matching
    the key type (``alg: none``, HMAC and key confusion refused, RFC 8725 §3.1-3.2), ``iss``
    equal to the issuer, ``aud`` containing the client id (and ``azp`` when there are several
    audiences), ``exp`` and ``iat`` present and ``exp`` not passed, ``nonce`` when one was sent,
    and ``sub`` unchanged after a refresh (OIDC Core §12.2).

    Raises :class:`VerificationError`, or ``KeyError`` when no key of the JWKS fits the
    header (the caller refetches the JWKS once: the provider may have rotated its keys).
    """
    import jwt  # lazy: pyjwt + cryptography cost ~90 ms to import

    header = unverified_header(id_token)
    alg = header.get("alg")
    if not isinstance(alg, str) or alg.lower() == "none" or alg.upper().startswith("HS"):
        raise VerificationError(f"id_token algorithm {str(alg)[:20]!r} is not accepted (only asymmetric signatures)")
    chosen = _select_key(header, jwks)
    if chosen is None:
        raise KeyError(str(header.get("kid")))  # unknown key: the caller refetches the JWKS once
    jwk, alg = chosen
    try:
        key = jwt.PyJWK.from_dict(jwk, algorithm=alg).key
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key=key,
            algorithms=[alg],
            audience=client_id,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["iss", "aud", "exp", "iat", "sub"], "verify_iat": False},
        )
    except jwt.ExpiredSignatureError:
        raise VerificationError("the id_token has expired (check the machine's clock)") from None
    except jwt.InvalidAudienceError:
        raise VerificationError("the id_token was issued for another client (aud)") from None
    except jwt.InvalidIssuerError:
        raise VerificationError("the id_token was issued by another issuer (iss)") from None
    except jwt.InvalidSignatureError:
        raise VerificationError("the id_token signature does not verify against the provider's keys") from None
    except (jwt.PyJWTError, ValueError, TypeError) as exc:
        raise VerificationError(f"the id_token is invalid ({type(exc).__name__})") from None
    _check_claims(claims, client_id=client_id, nonce=nonce, expected_sub=expected_sub, now=now, leeway=leeway)
    return claims


def _check_claims(
    claims: Mapping[str, Any], *, client_id: str, nonce: str | None, expected_sub: str | None, now: float, leeway: float
) -> None:
    """The checks pyjwt does not make: ``azp``, ``nonce``, a stable ``sub``, ``iat`` (OIDC Core §3.1.3.7, §12.2)."""
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) > 1 and claims.get("azp") != client_id:
        raise VerificationError("the id_token has several audiences and its azp is not this client")
    if nonce is not None and claims.get("nonce") != nonce:
        raise VerificationError("the id_token nonce does not match the one sent (replay?)")
    if expected_sub is not None and claims.get("sub") != expected_sub:
        raise VerificationError("the refreshed id_token names another user (sub changed)")
    iat = claims.get("iat")
    if isinstance(iat, (int, float)) and iat > now + leeway:
        raise VerificationError("the id_token was issued in the future (check the machine's clock)")
