"""What a provider sends: token, device, revocation, userinfo and JWKS requests (RFC 6749 §4-6,
RFC 8628, RFC 7009, OIDC Core §3.1.3.7 / §5.3), and how their answers become tokens or typed errors.

:class:`Exchange` adds the requests to the :class:`~nbauth._settings.ProviderSettings` it
extends; provider quirks reach it only as :mod:`nbauth._fixes` hooks. Nothing here knows
about sessions, the cache or the notebook.
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from . import _clock
from ._client_auth import apply_client_auth
from ._errors import ConfigurationError, InvalidClient, OAuthError, ProviderError, VerificationError, error_from_code
from ._fixes import Outgoing
from ._grants import ClientCredentials, RefreshToken, TokenRequest
from ._jwt import verify_id_token
from ._settings import ProviderSettings
from ._tokens import Token, TokenState, parse_token_response
from ._transport import HttpReply, require_secure

if TYPE_CHECKING:
    from . import _device
    from ._dpop import DPoPKey

__all__ = ["Exchange", "VerificationWarning"]

_TRANSIENT_CODES = {"server_error", "temporarily_unavailable"}
_TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
#: A login answered 503 with a Retry-After up to this many seconds is retried once (RFC 9110 §10.2.3).
RETRY_AFTER_MAX = 5.0


class VerificationWarning(UserWarning):
    """An id_token came that nbauth cannot verify (no issuer or JWKS): its claims are not used."""


class Exchange(ProviderSettings):
    """Requests to the provider's endpoints (see :class:`nbauth.Provider` for the settings)."""

    def __init__(self, token_url: str, **settings: Any) -> None:
        super().__init__(token_url, **settings)
        self._jwks: dict[str, Any] | None = None
        self._jwks_fetched = 0.0
        self._client_token: Token | None = None
        self._warned_unverifiable = False
        self._lock = threading.Lock()

    # ---- token requests
    def client_bearer(self) -> str:
        """A client_credentials token as ``Bearer``, cached until its refresh leeway (seed 001)."""
        with self._lock:
            token = self._client_token
            if token is None or token.state(self.refresh_leeway) is not TokenState.FRESH:
                token = self.fetch_token(ClientCredentials().request(self.scope_separator), _client_token=True)
                self._client_token = token
            return f"Bearer {token.access_token}"

    def send_token_request(
        self, request: TokenRequest, *, _client_token: bool = False, dpop_key: DPoPKey | None = None
    ) -> HttpReply:
        """POST a token request (RFC 6749 §3.2) with client authentication (§2.3), and a DPoP proof
        signed by ``dpop_key`` when given (RFC 9449 §5); the raw answer.
        """
        if dpop_key is None:
            return self._send_token_request(request, _client_token, {})
        from ._dpop import send_with_proofs

        url = require_secure(request.endpoint or self.token_url, "token endpoint")
        reply: HttpReply = send_with_proofs(
            lambda extra: self._send_token_request(request, _client_token, extra),
            "POST",
            url,
            dpop_key,
        )
        return reply

    def _send_token_request(self, request: TokenRequest, _client_token: bool, extra: dict[str, str]) -> HttpReply:
        url = require_secure(request.endpoint or self.token_url, "token endpoint")
        out = Outgoing(
            url, dict(request.params), {"Accept": "application/json", **extra}, json=self.request_format == "json"
        )
        if self.resource and "resource" not in out.body and request.params.get("grant_type") != _TOKEN_EXCHANGE:
            out.body["resource"] = self.resource[0]  # RFC 8707 §2: kept with the provider, so refreshes send it too
        for fix in self.fixes:
            if fix.before_auth is not None:
                fix.before_auth(self, request, out)
        if out.authenticate:
            client_id = request.client_id or self.client_id
            secret = request.client_secret if request.client_id else (request.client_secret or self._client_secret)
            # a grant that brings its own secret authenticates even when this provider's client is public
            method = "client_secret_basic" if request.client_secret and self.client_auth == "none" else self.client_auth
            apply_client_auth(
                method, out.headers, out.body, client_id, secret, audience=self.token_url, key=self._private_key
            )
        if not _client_token:
            for fix in self.fixes:
                if fix.after_auth is not None:
                    fix.after_auth(self, request, out)
        if out.json:
            return self.transport.request("POST", out.url, json_body=out.body, headers=out.headers)
        return self.transport.request("POST", out.url, data=out.body, headers=out.headers)

    def send_retrying(
        self,
        request: TokenRequest,
        *,
        _client_token: bool = False,
        dpop_key: DPoPKey | None = None,
        retry_unavailable: bool = False,
    ) -> HttpReply:
        """:meth:`send_token_request`; with ``retry_unavailable`` (logins) a 503 with a ``Retry-After`` of at
        most a few seconds is retried once after that delay (RFC 9110 §10.2.3, §15.6.4).
        """
        reply = self.send_token_request(request, _client_token=_client_token, dpop_key=dpop_key)
        wait = reply.retry_after() if reply.status == 503 and retry_unavailable else None
        if wait is not None and 0 <= wait <= RETRY_AFTER_MAX:
            _clock.sleep(wait)  # a short, announced outage (RFC 9110 §10.2.3): one retry
            reply = self.send_token_request(request, _client_token=_client_token, dpop_key=dpop_key)
        return reply

    def _secrets(self, request: TokenRequest) -> tuple[str, ...]:
        return tuple(s for s in (*request.secrets, self._client_secret, request.client_secret) if s)

    def check_reply(self, reply: HttpReply, request: TokenRequest) -> Any:
        """The JSON body of a successful token answer, or the typed error (RFC 6749 §5.2)."""
        secrets = self._secrets(request)
        try:
            body = reply.json()
        except ProviderError as exc:
            if reply.status == 401:
                raise InvalidClient(
                    "invalid_client", f"HTTP 401 from {reply.where}", url=reply.url, status=401
                ) from None
            if reply.status >= 500:
                raise ProviderError(
                    f"{reply.where} failed with HTTP {reply.status}; try again later",
                    url=reply.url,
                    status=reply.status,
                    retry_after=reply.retry_after(),
                ) from None
            raise exc from None
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, str) and error:
            if reply.status >= 500 or error in _TRANSIENT_CODES:
                raise ProviderError(
                    f"{reply.where} failed with HTTP {reply.status} ({error[:40]}); try again later",
                    url=reply.url,
                    status=reply.status,
                    retry_after=reply.retry_after(),
                )
            description = body.get("error_description")
            raise error_from_code(
                error,
                description if isinstance(description, str) else "",
                url=reply.where,
                status=reply.status,
                secrets=secrets,
            )
        if reply.status == 401:
            raise InvalidClient("invalid_client", f"HTTP 401 from {reply.where}", url=reply.url, status=401)
        if not 200 <= reply.status < 300:
            raise ProviderError(
                f"{reply.where} answered HTTP {reply.status} without an OAuth error",
                url=reply.url,
                status=reply.status,
                retry_after=reply.retry_after(),
            )
        return body

    def token_from_reply(
        self, reply: HttpReply, request: TokenRequest, *, nonce: str | None = None, previous: Token | None = None
    ) -> Token:
        return self.token_from_body(self.check_reply(reply, request), request, reply, nonce=nonce, previous=previous)

    def token_from_body(
        self,
        body: Any,
        request: TokenRequest,
        reply: HttpReply,
        *,
        nonce: str | None = None,
        previous: Token | None = None,
    ) -> Token:
        """Parse a successful answer and verify its id_token (OIDC Core §3.1.3.7, §12.2)."""
        for fix in self.fixes:
            if fix.token_body is not None and isinstance(body, dict):
                body = fix.token_body(body)
        try:
            token = parse_token_response(
                body,
                scope_separator=self.scope_separator,
                requested_scope=request.scope,
                server_time=reply.server_time(),
            )
        except ProviderError as exc:
            raise ProviderError(
                f"{reply.where} answered HTTP {reply.status}, but {exc.message}", url=reply.url, status=reply.status
            ) from None
        if token.id_token:
            expected_sub = previous.claims.get("sub") if previous and previous.claims else None
            claims = self.verify_id_token(token.id_token, nonce=nonce, expected_sub=expected_sub)
            token = token.replace(claims=claims)
        return token

    def fetch_token(
        self,
        request: TokenRequest,
        *,
        nonce: str | None = None,
        previous: Token | None = None,
        _client_token: bool = False,
        retry_unavailable: bool = False,
    ) -> Token:
        """Send a token request and parse the answer into a verified :class:`Token`.

        ``retry_unavailable`` (logins): a 503 with a ``Retry-After`` of at most a few seconds is
        retried once after that delay (RFC 9110 §10.2.3); longer ones fail at once. A DPoP proof
        goes with it when the provider asks for one or the server demands it (RFC 9449 §5).
        """
        from ._dpop_login import fetch_with_dpop

        return fetch_with_dpop(
            self,
            request,
            nonce=nonce,
            previous=previous,
            _client_token=_client_token,
            retry_unavailable=retry_unavailable,
        )

    def refresh(self, token: Token, scope: str | Sequence[str] | None = None) -> Token:
        """Refresh grant (RFC 6749 §6); the result keeps what the answer left out."""
        if not token.refresh_token:
            raise ConfigurationError("this token has no refresh token")
        request = RefreshToken(token.refresh_token, scope).request(self.scope_separator)
        return token.merged_with(self.fetch_token(request, previous=token))

    # ---- id_token (OIDC Core §3.1.3.7)
    def jwks(self, *, refresh: bool = False) -> dict[str, Any]:
        with self._lock:
            stale = refresh and _clock.monotonic() - self._jwks_fetched > 10
            if self._jwks is None or stale:
                if not self.jwks_url:
                    raise VerificationError("cannot verify the id_token: the provider has no jwks_url")
                reply = self.transport.request("GET", self.jwks_url, headers={"Accept": "application/json"})
                body = reply.json()
                if reply.status != 200 or not isinstance(body, dict) or not isinstance(body.get("keys"), list):
                    raise ProviderError(
                        f"{reply.where} did not answer a JWK set (HTTP {reply.status})",
                        url=reply.url,
                        status=reply.status,
                    )
                self._jwks, self._jwks_fetched = body, _clock.monotonic()
            return self._jwks

    def verify_id_token(
        self, id_token: str, *, nonce: str | None = None, expected_sub: str | None = None
    ) -> dict[str, Any]:
        """Verified claims of an id_token (OIDC Core §3.1.3.7).

        Without an issuer, JWKS or client id nobody can verify it: its claims are not used
        (``{}``), and a :class:`VerificationWarning` says so once per provider.
        """
        if not (self.issuer and self.jwks_url and self.client_id):
            if not self._warned_unverifiable:
                self._warned_unverifiable = True
                missing = ", ".join(
                    n
                    for n, v in (("issuer", self.issuer), ("jwks_url", self.jwks_url), ("client_id", self.client_id))
                    if not v
                )
                warnings.warn(
                    f"{self.name}: the id_token cannot be verified without {missing}; nbauth ignores its "
                    "claims (pass them, or use Provider.discover)",
                    VerificationWarning,
                    stacklevel=2,
                )
            return {}
        for refresh in (False, True):
            try:
                return verify_id_token(
                    id_token,
                    jwks=self.jwks(refresh=refresh),
                    issuer=self.issuer,
                    client_id=self.client_id,
                    nonce=nonce,
                    now=_clock.now(),
                    expected_sub=expected_sub,
                )
            except KeyError:
                continue  # unknown kid: the provider may have rotated keys; refetch once
        raise VerificationError("no key in the provider's JWKS matches the id_token (kid/alg)")

    # ---- device flow driver for the HTTP steps (RFC 8628)
    def device_flow(
        self,
        scope: str | Sequence[str] | None = None,
    ) -> Generator[_device.DevicePrompt | _device.Wait, None, Token]:
        """Run the device grant's HTTP steps; yields only the prompt and the waits to the caller."""
        if not self.device_authorization_url:
            raise ConfigurationError(
                f"{self.name}: no device_authorization_url; pass it to the provider or use discovery"
            )
        if self.client_auth != "none" and not (self._client_secret or self._private_key):
            raise ConfigurationError(
                f"{self.name}: client_auth={self.client_auth!r} needs the client's secret: pass "
                "client_secret=..., or client_auth='none' for a public client"
            )
        from . import _device  # the device grant's protocol is loaded when first used

        flow = _device.device_flow(
            client_id=self.client_id,
            scope=scope if scope is not None else self.scope,
            scope_separator=self.scope_separator,
            monotonic=_clock.monotonic,
        )
        dpop_key = self._new_dpop_key()  # issue 14: every poll carries a proof with one key (RFC 9449 §5)
        reply: Any = None
        last: tuple[HttpReply, TokenRequest] | None = None
        try:
            while True:
                step = flow.send(reply)
                reply = None
                if isinstance(step, _device.DeviceStart):
                    reply = self._device_start(step)
                elif isinstance(step, _device.DevicePoll):
                    reply, http = self._device_poll(step, dpop_key)
                    last = (http, step.request) if http is not None else last
                else:
                    yield step
        except StopIteration as done:
            if last is None:  # pragma: no cover - the generator only returns after a poll
                raise ProviderError("the device flow ended without a token") from None
            token = self.token_from_body(done.value, last[1], last[0])
            return token.replace(dpop_key=dpop_key) if token.token_type == "DPoP" else token

    def _device_start(self, step: _device.DeviceStart) -> _device.Reply:
        from . import _device

        url = self.device_authorization_url or ""
        headers = {"Accept": "application/json"}
        body = dict(step.params)
        apply_client_auth(
            self.client_auth,
            headers,
            body,
            self.client_id,
            self._client_secret,
            audience=self.token_url,
            key=self._private_key,
        )
        try:
            reply = self.transport.request("POST", url, data=body, headers=headers)
            answer = reply.json()
            for fix in self.fixes:
                if fix.device_body is not None and isinstance(answer, dict):
                    answer = fix.device_body(answer)
            return _device.Reply(reply.status, answer)
        except ProviderError as exc:
            return _device.Reply(0, None, exc)

    def _new_dpop_key(self) -> DPoPKey | None:
        if not self.dpop:
            return None
        from ._dpop import DPoPKey

        return DPoPKey.generate()

    def _device_poll(
        self,
        step: _device.DevicePoll,
        dpop_key: DPoPKey | None = None,
    ) -> tuple[_device.Reply, HttpReply | None]:
        from . import _device

        try:
            reply = self.send_token_request(step.request, dpop_key=dpop_key)
        except ProviderError as exc:
            return _device.Reply(0, None, exc), None
        try:
            return _device.Reply(reply.status, reply.json()), reply
        except ProviderError as exc:
            return _device.Reply(reply.status, None, exc), reply

    # ---- revocation (RFC 7009) and userinfo (OIDC Core §5.3)
    def revoke(self, token: Token, *, client_id: str | None = None, client_secret: str | None = None) -> dict[str, str]:
        """Revoke the refresh token (which ends the grant, RFC 7009 §2.1) then the access token.

        The client that got the token must revoke it (§2.1): pass ``client_id``/``client_secret``
        when a grant brought its own client. Returns what could not be revoked and why, by token
        kind: a server may refuse to revoke access tokens (``unsupported_token_type``, §2.2.1),
        which then simply expire. Other failures raise.
        """
        if not self.revocation_url:
            return {"refresh_token": "no revocation endpoint", "access_token": "no revocation endpoint"}
        kept: dict[str, str] = {}
        own = client_id is None or client_id == self.client_id
        cid, secret = (self.client_id, self._client_secret) if own else (client_id, client_secret)
        method = "client_secret_basic" if secret and self.client_auth == "none" else self.client_auth
        for value, hint in ((token.refresh_token, "refresh_token"), (token.access_token, "access_token")):
            if not value:
                continue
            headers = {"Accept": "application/json"}
            body = {"token": value, "token_type_hint": hint}
            apply_client_auth(method, headers, body, cid, secret, audience=self.token_url, key=self._private_key)
            reply = self.transport.request("POST", self.revocation_url, data=body, headers=headers)
            if reply.status >= 400:
                try:
                    self.check_reply(reply, TokenRequest(body, secrets=(value,)))  # raises the typed error
                except OAuthError as exc:
                    if exc.error != "unsupported_token_type":
                        raise
                    kept[hint] = "the provider does not revoke this kind of token; it expires by itself"
        return kept

    def userinfo(self, token: Token) -> dict[str, Any]:
        """The UserInfo claims for a token; ``sub`` must match the id_token's (OIDC Core §5.3.2)."""
        if not self.userinfo_url:
            raise ConfigurationError(f"{self.name}: no userinfo_url")
        from ._dpop import api_headers

        reply = self.transport.request(
            "GET",
            self.userinfo_url,
            headers={"Accept": "application/json", **api_headers(token, "GET", self.userinfo_url)},
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
