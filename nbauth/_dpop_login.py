"""Token requests with DPoP (RFC 9449 §5): when the provider asks for it, or the server demands it.

A token request carries a proof when the provider was made with ``dpop=True``, or when the
token being refreshed is bound to a key (the refresh must be signed by the same key, §5.0),
or - sent once more with a new key - when the server answered that it wants one
(``invalid_dpop_proof`` / ``use_dpop_nonce``, or a client registered with
``dpop_bound_access_tokens``, §5.2). A Bearer answer stays accepted (the server decides, §5);
a DPoP answer keeps the key with the token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._client_auth import ASSERTION_METHODS
from ._dpop import DPoPKey, demands_dpop, remember_nonce
from ._errors import InvalidClient, ProviderError

if TYPE_CHECKING:
    from ._exchange import Exchange
    from ._grants import TokenRequest
    from ._tokens import Token

__all__ = ["fetch_with_dpop"]

JWT_HINT = {
    "private_key_jwt": (
        "The server refused the client assertion: check that private_key is the private half of "
        "a key registered for this client (its JWKS / jwks_uri at the provider), that its alg "
        "is allowed, and that this machine's clock is right."
    ),
    "client_secret_jwt": (
        "The server refused the client assertion: check client_id and client_secret, and that "
        "the client is registered for client_secret_jwt."
    ),
}


def fetch_with_dpop(
    exchange: Exchange,
    request: TokenRequest,
    *,
    nonce: str | None,
    previous: Token | None,
    _client_token: bool = False,
    retry_unavailable: bool = False,
) -> Token:
    """Send a token request (with a DPoP proof when due) and parse the answer into a verified Token."""
    key = previous.dpop_key if previous is not None else None
    if key is None and getattr(exchange, "dpop", False):
        key = DPoPKey.generate()
    reply = exchange.send_retrying(
        request, _client_token=_client_token, dpop_key=key, retry_unavailable=retry_unavailable
    )
    if key is None and demands_dpop(reply.status, reply.content):
        remember_nonce(reply.url, reply.headers.get("dpop-nonce"))
        key = DPoPKey.generate()
        reply = exchange.send_token_request(request, _client_token=_client_token, dpop_key=key)
    try:
        token = exchange.token_from_reply(reply, request, nonce=nonce, previous=previous)
    except InvalidClient as exc:
        if exchange.client_auth in ASSERTION_METHODS:
            exc.hint = JWT_HINT.get(exchange.client_auth, "")
        raise
    if token.token_type == "DPoP":
        if key is None:
            raise ProviderError(
                f"{reply.where} issued a DPoP-bound token to a request without a DPoP proof"
                ": the token is unusable; tell the provider's admin",
                url=reply.url,
                status=reply.status,
            )
        return token.replace(dpop_key=key)
    return token
