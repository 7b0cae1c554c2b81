"""The protocol drivers of the interactive logins, below the ui: it only draws and collects input.

:func:`run_device_flow` performs the device grant's steps (RFC 8628) with a deadline and a
cancel predicate, sleeping in slices of at most a second (MSAL's poller); the ui gets the
prompt through a callback.

One :class:`BrowserAttempt` is one authorization request (RFC 6749 §4.1.1) with PKCE S256
(RFC 7636 §4.1-4.3), a fresh ``state`` (RFC 6749 §10.12) and, with the ``openid`` scope, a
``nonce`` (OIDC Core §3.1.2.1). The redirect goes to a listener on the loopback interface
with an ephemeral port (RFC 8252 §7.3: ``http://127.0.0.1:PORT/callback``; §8.3: the IP
literal, not ``localhost``). The redirect's ``iss`` is checked where the provider sends it,
and required when its metadata says it sends it (RFC 9207 §2.4).

When the browser cannot reach the kernel's loopback (JupyterHub, remote kernels) the user
pastes the address the browser ended on instead: :meth:`BrowserAttempt.finish` takes
either.
"""

from __future__ import annotations

import queue
import secrets
from collections.abc import Callable, Sequence
from typing import Any

from . import _clock, _device
from ._discovery import fetch_metadata
from ._errors import AuthError, ConfigurationError, LoginCancelled, VerificationError
from ._exchange import Exchange
from ._grants import AuthorizationCode, authorization_url, parse_authorization_response, pkce_pair
from ._scope import Scope, join_scope, scope_items
from ._tokens import Token

__all__ = ["BrowserAttempt", "run_device_flow", "wait_sliced"]


DEFAULT_TIMEOUT = 600.0


def wait_sliced(seconds: float, cancelled: Callable[[], bool] | None = None) -> None:
    """Sleep in slices of at most 1 s, checking ``cancelled`` between them (MSAL's poller)."""
    deadline = _clock.monotonic() + seconds
    while True:
        if cancelled is not None and cancelled():
            raise LoginCancelled("the login was cancelled")
        left = deadline - _clock.monotonic()
        if left <= 0:
            return
        _clock.sleep(min(1.0, left))


def run_device_flow(
    provider: Exchange,
    scope: Scope,
    *,
    on_prompt: Callable[[_device.DevicePrompt], None],
    cancelled: Callable[[], bool] | None = None,
) -> Token:
    """Run the device grant (RFC 8628 §3.1-3.5) to its end: ``on_prompt`` shows the code (§3.3),
    waits honour ``cancelled``; the code's own expiry bounds the whole (§3.2 ``expires_in``).
    """
    flow = provider.device_flow(scope)
    try:
        step = next(flow)
        while True:
            if isinstance(step, _device.DevicePrompt):
                on_prompt(step)
            elif isinstance(step, _device.Wait):
                wait_sliced(step.seconds, cancelled)
            step = next(flow)
    except StopIteration as done:
        token: Token = done.value
        return token
    finally:
        flow.close()


def _iss_required(provider: Exchange) -> bool:
    """True when the provider's metadata promises ``iss`` in authorization responses (RFC 9207 §3)."""
    if not provider.issuer:
        return False
    meta = provider.metadata
    if meta is None:
        try:
            meta = fetch_metadata(provider.issuer, provider.transport)
        except AuthError:
            return False
    return meta.get("authorization_response_iss_parameter_supported") is True


class BrowserAttempt:
    """One authorization code + PKCE sign-in through the user's browser (RFC 6749 §4.1, RFC 8252).

    ``url`` is the address to open; the loopback listener puts the redirect on ``redirects``;
    :meth:`code_from` checks a redirect address (from there, or pasted) and :meth:`redeem`
    exchanges its code for a token. Call :meth:`close` when done.
    """

    def __init__(
        self,
        provider: Exchange,
        scope: Any = None,
        *,
        port: int | Sequence[int] = 0,
        extra: dict[str, str] | None = None,
    ) -> None:
        self.provider, self.scope, self.port, self.extra = provider, scope, port, extra
        if not provider.authorization_url:
            raise ConfigurationError(f"{provider.name}: no authorization_url; pass it to the provider or use discovery")
        if not provider.client_id:
            raise ConfigurationError(f"{provider.name}: browser sign-in needs the client_id")
        self.requested = self.scope if self.scope is not None else provider.scope
        self.require_iss = _iss_required(provider)
        self.state = secrets.token_urlsafe(24)
        self.nonce = secrets.token_urlsafe(24) if "openid" in scope_items(self.requested) else None
        self._verifier, challenge = pkce_pair()
        if provider.resource and not (extra and "resource" in extra):  # RFC 8707 §2.1: named in the request
            self.extra = {**(extra or {}), "resource": provider.resource[0]}
        self.redirects: queue.Queue[str] = queue.Queue()
        from ._loopback import LoopbackListener  # http.server loads only when a browser sign-in starts

        self.listener = LoopbackListener(self.state, self.redirects)
        self.redirect_uri = self.listener.start(self.port)
        self.url = authorization_url(
            provider.authorization_url,
            client_id=provider.client_id,
            redirect_uri=self.redirect_uri,
            scope=join_scope(self.requested, provider.scope_separator),
            state=self.state,
            code_challenge=challenge,
            nonce=self.nonce,
            extra=self.extra,
        )

    def __repr__(self) -> str:
        return f"<BrowserAttempt {self.provider.name!r} redirect_uri={self.redirect_uri!r}>"

    def code_from(self, redirect_url: str) -> str:
        """The code of a redirect, after its checks: its ``error`` raises that class (``AccessDenied``...),
        a wrong ``state`` or ``iss`` raises ``VerificationError`` (RFC 6749 §10.12, RFC 9207 §2.4).
        """
        if not redirect_url.lower().startswith(("http://", "https://")) or "?" not in redirect_url:
            raise VerificationError(
                "that is not the address of the sign-in redirect: copy the whole address from "
                f"the browser's address bar (it starts with {self.redirect_uri}?)"
            )
        return parse_authorization_response(
            redirect_url, state=self.state, issuer=self.provider.issuer, require_iss=self.require_iss
        )

    def redeem(self, code: str) -> Token:
        """Redeem the code with the PKCE verifier (RFC 7636 §4.5) and the nonce check (OIDC Core §3.1.3.7)."""
        request = AuthorizationCode(code, self.redirect_uri, self._verifier).request(self.provider.scope_separator)
        request = request.replace(scope=scope_items(self.requested))
        return self.provider.fetch_token(request, nonce=self.nonce)

    def close(self) -> None:
        self.listener.close()
