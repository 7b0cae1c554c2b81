"""DPoP: proof of possession for tokens (RFC 9449).

A DPoP client holds a key pair (here EC P-256 / ES256, RFC 9449 §4.2) and sends, with every
token request and every API request, a ``DPoP`` header: a fresh JWT signed with that key,
carrying the public key in its header (``jwk``) and ``htm`` (the method), ``htu`` (the URL
without query and fragment, §4.2), ``iat``, a unique ``jti``, ``ath`` (the access token's
SHA-256, on resource requests, §4.3) and the server's ``nonce`` when it gave one (§8, §9).
The server then binds the tokens to the key's thumbprint (RFC 7638): a stolen DPoP token
is useless without the private key, so such a token must never be handed to a tool that
cannot sign proofs (curl, DuckDB, a worker).

Nonces: a server answers ``use_dpop_nonce`` (400 at the token endpoint, 401 with
``WWW-Authenticate: DPoP error="use_dpop_nonce"`` at an API) and a ``DPoP-Nonce`` header;
the request is sent again with that nonce, at most :data:`MAX_NONCE_RETRIES` times (a server
whose nonces never validate cannot make nbauth loop). The newest nonce per origin is kept in
memory for the next proof.

The private key lives with the token: in memory, and in the cache entry (the file is 0600),
so a DPoP-bound refresh token survives a kernel restart. It is never shown in a repr.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

from . import _clock
from ._errors import ConfigurationError
from ._secret import Secret

__all__ = [
    "MAX_NONCE_RETRIES",
    "DPoPKey",
    "api_headers",
    "check_printable",
    "demands_dpop",
    "htu",
    "remember_nonce",
    "resource_nonce_challenge",
    "send_with_proofs",
]

#: How many times one request is re-sent with a new server nonce (RFC 9449 §8: one is normal).
MAX_NONCE_RETRIES = 2
_NONCES: dict[str, str] = {}
_NONCES_LOCK = threading.Lock()
_MAX_NONCE = 1024
_DPOP_ERRORS = frozenset({"invalid_dpop_proof", "use_dpop_nonce"})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def htu(url: str) -> str:
    """The ``htu`` of a request: its URL without query and fragment (RFC 9449 §4.2, §4.3)."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), parts.path or "/", "", ""))


def ath(access_token: str) -> str:
    """base64url(SHA-256(access token)), the proof's ``ath`` (RFC 9449 §4.2)."""
    return _b64(hashlib.sha256(access_token.encode("ascii")).digest())


def _origin(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def remember_nonce(url: str, nonce: str | None) -> None:
    """Keep the server's newest ``DPoP-Nonce`` for the next proof to that origin (RFC 9449 §8.2)."""
    if nonce and len(nonce) <= _MAX_NONCE and nonce.isascii() and nonce.isprintable():
        with _NONCES_LOCK:
            _NONCES[_origin(url)] = nonce


def _nonce_for(url: str) -> str | None:
    with _NONCES_LOCK:
        return _NONCES.get(_origin(url))


class DPoPKey:
    """A DPoP key pair (EC P-256, ES256). Its repr shows only the thumbprint's start."""

    __slots__ = ("_key", "public_jwk", "thumbprint")

    def __init__(self, key: Any) -> None:
        from cryptography.hazmat.primitives.asymmetric import ec

        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
            raise ConfigurationError("a DPoP key must be an EC P-256 private key")
        numbers = key.public_key().public_numbers()
        self._key = key
        self.public_jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": _b64(numbers.x.to_bytes(32, "big")),
            "y": _b64(numbers.y.to_bytes(32, "big")),
        }
        canonical = json.dumps(self.public_jwk, separators=(",", ":"), sort_keys=True)  # RFC 7638 §3.2
        self.thumbprint = _b64(hashlib.sha256(canonical.encode("ascii")).digest())

    @classmethod
    def generate(cls) -> DPoPKey:
        from cryptography.hazmat.primitives.asymmetric import ec

        return cls(ec.generate_private_key(ec.SECP256R1()))

    @classmethod
    def from_jwk(cls, data: Mapping[str, Any]) -> DPoPKey:
        """The key from :meth:`private_jwk` (a cache entry); ValueError when it is not one."""
        from cryptography.hazmat.primitives.asymmetric import ec

        try:
            if data.get("kty") != "EC" or data.get("crv") != "P-256":
                raise ValueError("not an EC P-256 JWK")

            def num(name: str) -> int:
                value = data[name]
                padded = value + "=" * (-len(value) % 4)
                return int.from_bytes(base64.urlsafe_b64decode(padded.encode("ascii")), "big")

            public = ec.EllipticCurvePublicNumbers(num("x"), num("y"), ec.SECP256R1())
            key = ec.EllipticCurvePrivateNumbers(num("d"), public).private_key()
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError("dpop_jwk") from exc
        return cls(key)

    def private_jwk(self) -> dict[str, str]:
        """The private key as a JWK, for the 0600 cache entry only (contains the secret ``d``)."""
        d = self._key.private_numbers().private_value.to_bytes(32, "big")
        return {**self.public_jwk, "d": _b64(d)}

    def proof(self, method: str, url: str, *, access_token: str | None = None, nonce: str | None = None) -> str:
        """A DPoP proof JWT for one request (RFC 9449 §4.2)."""
        import jwt

        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(18),
            "htm": method.upper(),
            "htu": htu(url),
            "iat": int(_clock.now()),
        }
        if access_token:
            claims["ath"] = ath(access_token)
        if nonce:
            claims["nonce"] = nonce
        headers = {"typ": "dpop+jwt", "jwk": self.public_jwk}
        return jwt.encode(claims, self._key, algorithm="ES256", headers=headers)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DPoPKey) and other.thumbprint == self.thumbprint

    def __hash__(self) -> int:
        return hash(self.thumbprint)

    def __repr__(self) -> str:
        return f"DPoPKey(ES256, jkt={self.thumbprint[:8]}…)"

    __str__ = __repr__

    def __copy__(self) -> DPoPKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> DPoPKey:
        return self

    def __reduce__(self) -> Any:
        raise TypeError(
            "a DPoP key is never pickled: a DPoP-bound token cannot be used by a process that "
            "cannot sign proofs with the key"
        )


def _json_error(content: bytes) -> tuple[str, str]:
    try:
        body = json.loads(content)
    except (ValueError, RecursionError):
        return "", ""
    if not isinstance(body, dict):
        return "", ""
    error, description = body.get("error"), body.get("error_description")
    return (error if isinstance(error, str) else "", description if isinstance(description, str) else "")


def _challenge_error(status: int, headers: Mapping[str, str], content: bytes) -> str:
    if status == 400:
        return _json_error(content)[0]
    if status == 401:
        challenge = headers.get("www-authenticate", "")
        if challenge.lower().startswith("dpop") and "use_dpop_nonce" in challenge:
            return "use_dpop_nonce"
    return ""


def demands_dpop(status: int, content: bytes) -> bool:
    """A token error that asks for DPoP: ``invalid_dpop_proof``/``use_dpop_nonce`` (RFC 9449 §5, §8),
    or an error whose description names a missing DPoP proof (a client registered with
    ``dpop_bound_access_tokens``, §5.2).
    """
    if status not in (400, 401):
        return False
    error, description = _json_error(content)
    return error in _DPOP_ERRORS or (bool(error) and "dpop" in description.lower())


def send_with_proofs(
    attempt: Callable[[dict[str, str]], Any],
    method: str,
    url: str,
    key: DPoPKey,
    *,
    access_token: str | None = None,
    read: Callable[[Any], tuple[int, Mapping[str, str], bytes]] | None = None,
) -> Any:
    """Send a request with a DPoP proof, answering ``use_dpop_nonce`` challenges (bounded).

    ``attempt(headers)`` sends the request once with these extra headers and returns the
    answer; ``read(answer)`` gives (status, lower-cased headers, body). After
    :data:`MAX_NONCE_RETRIES` challenges the last answer is returned for the caller to turn
    into a typed error.
    """
    read = read or (lambda r: (r.status, r.headers, r.content))
    answer: Any = None
    for _ in range(MAX_NONCE_RETRIES + 1):
        nonce = _nonce_for(url)
        answer = attempt({"DPoP": key.proof(method, url, access_token=access_token, nonce=nonce)})
        status, headers, content = read(answer)
        fresh = headers.get("dpop-nonce")
        remember_nonce(url, fresh)
        if _challenge_error(status, headers, content) != "use_dpop_nonce" or not fresh or fresh == nonce:
            return answer
    return answer


def api_headers(token: Any, method: str, url: str) -> dict[str, str]:
    """The Authorization (and DPoP) headers for an API request with ``token`` (RFC 6750 §2.1, RFC 9449 §7.1)."""
    if token.token_type == "DPoP":
        key: DPoPKey | None = token.dpop_key
        if key is None:
            raise ConfigurationError("this DPoP-bound token has lost its key; log in again")
        return {
            "Authorization": Secret(f"DPoP {token.access_token}"),
            "DPoP": key.proof(method, url, access_token=token.access_token, nonce=_nonce_for(url)),
        }
    return {"Authorization": Secret(f"Bearer {token.access_token}")}


def check_printable(token: Any, name: str) -> None:
    """ConfigurationError for a DPoP-bound token: without a proof from this kernel's key it is refused (§7.1)."""
    if token.token_type == "DPoP":
        raise ConfigurationError(
            f"{name}: the token is DPoP-bound: every request needs a proof signed with the key in "
            "nbauth's cache, so curl or another tool would be refused. Use the session from Python "
            "(nbauth.session(...).get(url)), or log in without dpop for a Bearer token."
        )


def resource_nonce_challenge(url: str, status: int, headers: Mapping[str, str]) -> bool:
    """True when an API asked for a DPoP nonce (RFC 9449 §9); the nonce is remembered for the retry."""
    lowered = {k.lower(): v for k, v in headers.items()}
    if _challenge_error(status, lowered, b"") != "use_dpop_nonce" or not lowered.get("dpop-nonce"):
        return False
    remember_nonce(url, lowered["dpop-nonce"])
    return True
