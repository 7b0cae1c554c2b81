"""JWT client authentication: ``private_key_jwt`` and ``client_secret_jwt`` (RFC 7523 §2.2, §3;
OIDC Core §9; RFC 7521 §4.2).

The client proves who it is with a short-lived JWT signed by its private key (or, for
``client_secret_jwt``, HMAC'd with its secret) instead of sending a secret. Each assertion
has ``iss`` = ``sub`` = the client id, ``aud`` = the token endpoint URL (OIDC Core §9: "The
Audience SHOULD be the URL of the Authorization Server's Token Endpoint"; RFC 7523 §3 item 3
allows it), a unique ``jti`` (RFC 7523 §3 item 7: the server may reject a replay), and a 60-s
``exp``.

:class:`ClientKey` holds the private key. It is never shown (its repr names only the key
type, algorithm and kid), never pickled, and never written to the cache: like a client
secret, it lives only in the kernel that was given it.
"""

from __future__ import annotations

import json
import os
import secrets as _secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import _clock
from ._errors import ConfigurationError

__all__ = [
    "ASSERTION_TYPE",
    "ClientKey",
    "client_assertion",
    "client_secret_jwt",
    "load_private_key",
    "private_key_jwt",
]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Lifetime of one assertion; short, since it only has to reach the server (RFC 7523 §3 item 4).
ASSERTION_LIFETIME = 60
_MAX_KEY_CHARS = 64 * 1024
_PEM_MARK = "-----BEGIN"
_WHAT_TO_PASS = (
    "pass private_key= as a PEM file path, PEM text (-----BEGIN PRIVATE KEY-----...), "
    "or a private JWK (dict or JSON with 'd')"
)


def _alg_for(key: Any) -> str:
    """The signing algorithm for a private key object (RFC 7518 §3.1)."""
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        by_curve = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
        alg = by_curve.get(key.curve.name)
        if alg:
            return alg
        raise ConfigurationError(
            f"private_key: the EC curve {key.curve.name} is not usable for JWTs; use P-256, P-384 or P-521"
        )
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "EdDSA"
    raise ConfigurationError(f"private_key: a {type(key).__name__} cannot sign a JWT; use an RSA, EC or Ed25519 key")


class ClientKey:
    """A client's private signing key (``private_key_jwt``); never displayed, pickled or cached."""

    __slots__ = ("_key", "alg", "kid", "path")

    def __init__(self, key: Any, *, alg: str | None = None, kid: str | None = None) -> None:
        self._key = key
        self.alg = alg or _alg_for(key)
        self.kid = kid
        #: the file it was read from, if any: a restored session reads it again (the key is never cached)
        self.path: str | None = None

    def sign(self, claims: Mapping[str, Any]) -> str:
        import jwt

        headers: dict[str, Any] = {"typ": "JWT"}
        if self.kid:
            headers["kid"] = self.kid
        return jwt.encode(dict(claims), self._key, algorithm=self.alg, headers=headers)

    def __repr__(self) -> str:
        kid = f", kid={self.kid!r}" if self.kid else ""
        return f"ClientKey(alg={self.alg!r}{kid}, private key hidden)"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        raise TypeError(
            "a ClientKey (a client's private key) is never pickled: give the key to each process "
            "(private_key= or NBAUTH_PRIVATE_KEY)"
        )


def _from_jwk(data: Mapping[str, Any]) -> ClientKey:
    import jwt

    if "d" not in data and "k" not in data:
        raise ConfigurationError(
            "private_key: this JWK has no private part ('d'); it is a public key. " + _WHAT_TO_PASS
        )
    if data.get("kty") == "oct":
        raise ConfigurationError(
            "private_key: a symmetric ('oct') JWK is a secret, not a private key; use "
            "client_auth='client_secret_jwt' with client_secret="
        )
    try:
        pyjwk = jwt.PyJWK.from_dict(dict(data))
    except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError, KeyError):
        raise ConfigurationError("private_key: the JWK is not a valid private key. " + _WHAT_TO_PASS) from None
    alg = data.get("alg") if isinstance(data.get("alg"), str) else None
    kid = data.get("kid") if isinstance(data.get("kid"), str) else None
    return ClientKey(pyjwk.key, alg=alg, kid=kid)


def _from_pem(text: str, kid: str | None = None) -> ClientKey:
    from cryptography.hazmat.primitives import serialization

    try:
        key = serialization.load_pem_private_key(text.encode("ascii", "strict"), password=None)
    except TypeError:
        raise ConfigurationError(
            "private_key: the PEM key is encrypted; decrypt it first "
            "(openssl pkey -in key.pem -out plain.pem) or pass a loaded key"
        ) from None
    except (ValueError, UnicodeError):
        raise ConfigurationError(
            "private_key: the PEM text is not a private key (a certificate or public key will not do). " + _WHAT_TO_PASS
        ) from None
    return ClientKey(key, kid=kid)


def _from_text(value: str | os.PathLike[str], kid: str | None) -> ClientKey:
    """A key from a PEM file path, PEM text or JWK JSON."""
    text = str(value) if isinstance(value, str) else ""
    if isinstance(value, os.PathLike) or (_PEM_MARK not in text and not text.lstrip().startswith("{")):
        path = Path(value).expanduser()
        if not path.is_file():
            raise ConfigurationError(f"private_key: no such file {str(path)[:200]!r}. " + _WHAT_TO_PASS)
        text = path.read_text(encoding="ascii", errors="replace")[: _MAX_KEY_CHARS + 1]
        key = _from_loaded(text, kid)
        key.path = str(path.resolve())
        return key
    return _from_loaded(text, kid)


def _from_loaded(text: str, kid: str | None) -> ClientKey:
    if len(text) > _MAX_KEY_CHARS:
        raise ConfigurationError("private_key: more than 64 KiB; that is not a key")
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            raise ConfigurationError("private_key: the text is neither PEM nor JWK JSON. " + _WHAT_TO_PASS) from None
        if not isinstance(data, dict):
            raise ConfigurationError("private_key: the JSON is not a JWK object. " + _WHAT_TO_PASS)
        return _from_jwk(data)
    return _from_pem(text, kid)


def load_private_key(value: Any, *, kid: str | None = None) -> ClientKey:
    """A :class:`ClientKey` from a PEM file path, PEM text, a JWK dict or JWK JSON, or a key object."""
    if isinstance(value, ClientKey):
        return value
    if isinstance(value, Mapping):
        return _from_jwk(value)
    if isinstance(value, (str, os.PathLike)):
        return _from_text(value, kid)
    try:
        return ClientKey(value, kid=kid)  # a cryptography private key object
    except ConfigurationError:
        raise
    except Exception:  # pragma: no cover - defensive: anything else is not a key
        raise ConfigurationError("private_key: not a key. " + _WHAT_TO_PASS) from None


def client_assertion(client_id: str, audience: str, *, key: ClientKey | None = None, secret: str | None = None) -> str:
    """A fresh client assertion JWT (RFC 7523 §3): signed with ``key``, or HS256 with ``secret``."""
    now = int(_clock.now())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": _secrets.token_urlsafe(24),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    }
    if key is not None:
        return key.sign(claims)
    if not secret:
        raise ConfigurationError("client_auth='client_secret_jwt' needs the client_secret")
    import jwt

    return jwt.encode(claims, secret, algorithm="HS256", headers={"typ": "JWT"})


def _add(body: dict[str, str], client_id: str | None, assertion: str) -> None:
    body.pop("client_secret", None)
    body["client_id"] = client_id or ""
    body["client_assertion_type"] = ASSERTION_TYPE
    body["client_assertion"] = assertion


def private_key_jwt(
    headers: dict[str, str],
    body: dict[str, str],
    client_id: str | None,
    secret: str | None,
    audience: str,
    key: ClientKey | None,
) -> None:
    """``private_key_jwt`` (OIDC Core §9): a JWT signed with the client's private key in the body."""
    if not client_id:
        raise ConfigurationError("client_auth='private_key_jwt' needs a client_id")
    if key is None:
        raise ConfigurationError(
            f"client_auth='private_key_jwt' needs the client's private key: {_WHAT_TO_PASS} (or set NBAUTH_PRIVATE_KEY)"
        )
    _add(body, client_id, client_assertion(client_id, audience, key=key))


def client_secret_jwt(
    headers: dict[str, str],
    body: dict[str, str],
    client_id: str | None,
    secret: str | None,
    audience: str,
    key: ClientKey | None,
) -> None:
    """``client_secret_jwt`` (OIDC Core §9): a JWT HMAC'd (HS256) with the client secret in the body."""
    if not client_id:
        raise ConfigurationError("client_auth='client_secret_jwt' needs a client_id")
    _add(body, client_id, client_assertion(client_id, audience, secret=secret))
