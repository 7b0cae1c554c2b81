"""The provider's other endpoints: the device grant's HTTP steps (RFC 8628 §3.1-3.4), revocation
(RFC 7009) and UserInfo (OIDC Core §5.3).

Plain functions of an :class:`~nbauth._exchange.Exchange`, which exposes them as methods; they use
only its settings, transport and token-answer checks.
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from . import _clock
from ._client_auth import apply_client_auth
from ._errors import ConfigurationError, OAuthError, ProviderError, VerificationError
from ._grants import TokenRequest
from ._tokens import Token
from ._transport import HttpReply

if TYPE_CHECKING:
    from . import _device
    from ._dpop import DPoPKey
    from ._exchange import Exchange

__all__ = ["device_flow", "revoke", "userinfo"]


# ---- device flow driver for the HTTP steps (RFC 8628)
def device_flow(
    exchange: Exchange,
    scope: str | Sequence[str] | None = None,
) -> Generator[_device.DevicePrompt | _device.Wait, None, Token]:
    """Run the device grant's HTTP steps; yields only the prompt and the waits to the caller."""
    if not exchange.device_authorization_url:
        raise ConfigurationError(
            f"{exchange.name}: no device_authorization_url; pass it to the provider or use discovery"
        )
    if exchange.client_auth != "none" and not (exchange._client_secret or exchange._private_key):
        raise ConfigurationError(
            f"{exchange.name}: client_auth={exchange.client_auth!r} needs the client's secret: pass "
            "client_secret=..., or client_auth='none' for a public client"
        )
    from . import _device  # the device grant's protocol is loaded when first used

    flow = _device.device_flow(
        client_id=exchange.client_id,
        scope=scope if scope is not None else exchange.scope,
        scope_separator=exchange.scope_separator,
        monotonic=_clock.monotonic,
    )
    dpop_key = _new_dpop_key(exchange)  # issue 14: every poll carries a proof with one key (RFC 9449 §5)
    reply: Any = None
    last: tuple[HttpReply, TokenRequest] | None = None
    try:
        while True:
            step = flow.send(reply)
            reply = None
            if isinstance(step, _device.DeviceStart):
                reply = _device_start(exchange, step)
            elif isinstance(step, _device.DevicePoll):
                reply, http = _device_poll(exchange, step, dpop_key)
                last = (http, step.request) if http is not None else last
            else:
                yield step
    except StopIteration as done:
        if last is None:  # pragma: no cover - the generator only returns after a poll
            raise ProviderError("the device flow ended without a token") from None
        token = exchange.token_from_body(done.value, last[1], last[0])
        return token.replace(dpop_key=dpop_key) if token.token_type == "DPoP" else token


def _device_start(exchange: Exchange, step: _device.DeviceStart) -> _device.Reply:
    from . import _device

    url = exchange.device_authorization_url or ""
    headers = {"Accept": "application/json"}
    body = dict(step.params)
    if exchange.resource:  # RFC 8707 §2.1: the resource is named where the grant starts, as in §2.2 later
        body["resource"] = exchange.resource[0]
    apply_client_auth(
        exchange.client_auth,
        headers,
        body,
        exchange.client_id,
        exchange._client_secret,
        audience=exchange.token_url,
        key=exchange._private_key,
    )
    try:
        reply = exchange.transport.request("POST", url, data=body, headers=headers)
        answer = reply.json()
        for fix in exchange.fixes:
            if fix.device_body is not None and isinstance(answer, dict):
                answer = fix.device_body(answer)
        return _device.Reply(reply.status, answer)
    except ProviderError as exc:
        return _device.Reply(0, None, exc)


def _new_dpop_key(exchange: Exchange) -> DPoPKey | None:
    if not exchange.dpop:
        return None
    from ._dpop import DPoPKey

    return DPoPKey.generate()


def _device_poll(
    exchange: Exchange,
    step: _device.DevicePoll,
    dpop_key: DPoPKey | None = None,
) -> tuple[_device.Reply, HttpReply | None]:
    from . import _device

    try:
        reply = exchange.send_token_request(step.request, dpop_key=dpop_key)
    except ProviderError as exc:
        return _device.Reply(0, None, exc), None
    try:
        return _device.Reply(reply.status, reply.json()), reply
    except ProviderError as exc:
        return _device.Reply(reply.status, None, exc), reply


# ---- revocation (RFC 7009) and userinfo (OIDC Core §5.3)
def revoke(
    exchange: Exchange, token: Token, *, client_id: str | None = None, client_secret: str | None = None
) -> dict[str, str]:
    """Revoke the refresh token (which ends the grant, RFC 7009 §2.1) then the access token.

    The client that got the token must revoke it (§2.1): pass ``client_id``/``client_secret``
    when a grant brought its own client. Returns what could not be revoked and why, by token
    kind: a server may refuse to revoke access tokens (``unsupported_token_type``, §2.2.1),
    which then simply expire. Other failures raise.
    """
    if not exchange.revocation_url:
        return {"refresh_token": "no revocation endpoint", "access_token": "no revocation endpoint"}
    kept: dict[str, str] = {}
    own = client_id is None or client_id == exchange.client_id
    cid, secret = (exchange.client_id, exchange._client_secret) if own else (client_id, client_secret)
    method = "client_secret_basic" if secret and exchange.client_auth == "none" else exchange.client_auth
    for value, hint in ((token.refresh_token, "refresh_token"), (token.access_token, "access_token")):
        if not value:
            continue
        headers = {"Accept": "application/json"}
        body = {"token": value, "token_type_hint": hint}
        apply_client_auth(method, headers, body, cid, secret, audience=exchange.token_url, key=exchange._private_key)
        reply = exchange.transport.request("POST", exchange.revocation_url, data=body, headers=headers)
        if reply.status >= 400:
            try:
                exchange.check_reply(reply, TokenRequest(body, secrets=(value,)))  # raises the typed error
            except OAuthError as exc:
                if exc.error != "unsupported_token_type":
                    raise
                kept[hint] = "the provider does not revoke this kind of token; it expires by itself"
    return kept


def userinfo(exchange: Exchange, token: Token) -> dict[str, Any]:
    """The UserInfo claims for a token; ``sub`` must match the id_token's (OIDC Core §5.3.2)."""
    if not exchange.userinfo_url:
        raise ConfigurationError(f"{exchange.name}: no userinfo_url")
    from ._dpop import api_headers

    reply = exchange.transport.request(
        "GET",
        exchange.userinfo_url,
        headers={"Accept": "application/json", **api_headers(token, "GET", exchange.userinfo_url)},
    )
    body = reply.json()
    if reply.status != 200 or not isinstance(body, dict):
        raise ProviderError(f"{reply.where} answered HTTP {reply.status}", url=reply.url, status=reply.status)
    sub = token.claims.get("sub")
    if sub is not None and body.get("sub") != sub:
        raise VerificationError(
            "the UserInfo answer is about another user than the id_token (sub differs); "
            "do not trust this provider until its admin fixes it"
        )
    return body
