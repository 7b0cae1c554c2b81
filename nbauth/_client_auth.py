"""Client authentication at the token endpoint: a registry keyed by the RFC method names.

Each method is a plain function that adds the client's credentials to a token request's
headers and body (Authlib's ``ClientAuth`` registry idea). Names are those of the OAuth
registry (RFC 7591 §2 ``token_endpoint_auth_method``).
"""

from __future__ import annotations

import base64
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._secret import Secret

if TYPE_CHECKING:
    from ._client_jwt import ClientKey

__all__ = [
    "ASSERTION_METHODS",
    "CLIENT_AUTH_METHODS",
    "KEY_METHODS",
    "apply_client_auth",
    "basic_credentials",
    "register_client_auth",
]

ClientAuthMethod = Callable[[dict[str, str], dict[str, str], str | None, str | None], None]
#: JWT assertion methods also take the assertion's audience (the token endpoint) and the private key.
AssertionMethod = Callable[[dict[str, str], dict[str, str], str | None, str | None, str, "ClientKey | None"], None]
#: Methods that need a private key rather than a client secret.
KEY_METHODS = frozenset({"private_key_jwt"})


def basic_credentials(client_id: str, client_secret: str) -> str:
    """The ``Authorization: Basic`` value for a client (RFC 6749 §2.3.1).

    The id and secret are each form-encoded (application/x-www-form-urlencoded, Appendix B)
    *before* Base64 - which most libraries skip, breaking ids or secrets with ``:``, ``+``,
    ``%`` or non-ASCII characters.
    """
    pair = f"{urllib.parse.quote_plus(client_id)}:{urllib.parse.quote_plus(client_secret)}"
    return Secret("Basic " + base64.b64encode(pair.encode("ascii")).decode("ascii"))


def client_secret_basic(
    headers: dict[str, str], body: dict[str, str], client_id: str | None, client_secret: str | None
) -> None:
    """HTTP Basic with the client id and secret (RFC 6749 §2.3.1); a public client sends its id."""
    if client_id and client_secret:
        headers["Authorization"] = basic_credentials(client_id, client_secret)
        body.pop("client_id", None)
    else:
        none(headers, body, client_id, client_secret)


def client_secret_post(
    headers: dict[str, str], body: dict[str, str], client_id: str | None, client_secret: str | None
) -> None:
    """Client id and secret in the request body (RFC 6749 §2.3.1, "NOT RECOMMENDED" but common)."""
    if client_id:
        body["client_id"] = client_id
    if client_secret:
        body["client_secret"] = client_secret


def none(headers: dict[str, str], body: dict[str, str], client_id: str | None, client_secret: str | None) -> None:
    """A public client: only ``client_id`` in the body (RFC 6749 §2.3, RFC 8252 §8.4)."""
    if client_id:
        body["client_id"] = client_id


CLIENT_AUTH_METHODS: dict[str, ClientAuthMethod] = {
    "client_secret_basic": client_secret_basic,
    "client_secret_post": client_secret_post,
    "none": none,
}


def register_client_auth(name: str, method: ClientAuthMethod) -> None:
    """Add a client authentication method (e.g. ``private_key_jwt``) under its registry name."""
    CLIENT_AUTH_METHODS[name] = method


def _lazy_assertion(name: str) -> AssertionMethod:
    """The assertion method ``name`` of :mod:`nbauth._client_jwt`, imported on first use (pyjwt and
    cryptography load only when a JWT client authenticates).
    """

    def sign(*args: Any) -> None:  # the AssertionMethod arguments, passed on as they come
        from . import _client_jwt

        method: AssertionMethod = getattr(_client_jwt, name)
        method(*args)

    sign.__name__ = sign.__qualname__ = name
    return sign


#: RFC 7523 §2.2 / OIDC Core §9 assertion methods (see :mod:`nbauth._client_jwt`).
ASSERTION_METHODS: dict[str, AssertionMethod] = {
    name: _lazy_assertion(name) for name in ("private_key_jwt", "client_secret_jwt")
}


def check_client_auth(name: str) -> str:
    if name not in CLIENT_AUTH_METHODS and name not in ASSERTION_METHODS:
        known = ", ".join(sorted({*CLIENT_AUTH_METHODS, *ASSERTION_METHODS}))
        raise ConfigurationError(f"client_auth={name!r} is not a known method; use one of: {known}")
    return name


def apply_client_auth(
    name: str,
    headers: dict[str, str],
    body: dict[str, str],
    client_id: str | None,
    client_secret: str | None,
    *,
    audience: str | None = None,
    key: ClientKey | None = None,
) -> None:
    """Authenticate a request to ``audience`` (the endpoint; JWT methods sign a fresh assertion for it)."""
    assertion = ASSERTION_METHODS.get(check_client_auth(name))
    if assertion is not None:
        if not audience:
            raise ConfigurationError(f"client_auth={name!r} needs the endpoint URL for the assertion's aud")
        assertion(headers, body, client_id, client_secret, audience, key)
        return
    CLIENT_AUTH_METHODS[name](headers, body, client_id, client_secret)
