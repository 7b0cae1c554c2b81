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
from ._errors import ConfigurationError, InvalidClient, ProviderError, VerificationError, error_from_code
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

    # ---- the other endpoints (nbauth._endpoints): device grant, revocation, UserInfo
    def device_flow(
        self, scope: str | Sequence[str] | None = None
    ) -> Generator[_device.DevicePrompt | _device.Wait, None, Token]:
        """Run the device grant's HTTP steps (RFC 8628 §3.1-3.4); yields the prompt and the waits."""
        from . import _endpoints  # the other endpoints load when first used

        return _endpoints.device_flow(self, scope)

    def revoke(self, token: Token, *, client_id: str | None = None, client_secret: str | None = None) -> dict[str, str]:
        """Revoke the refresh then the access token (RFC 7009 §2.1); what could not be revoked, and why."""
        from . import _endpoints  # the other endpoints load when first used

        return _endpoints.revoke(self, token, client_id=client_id, client_secret=client_secret)

    def userinfo(self, token: Token) -> dict[str, Any]:
        """The UserInfo claims for a token; ``sub`` must match the id_token's (OIDC Core §5.3.2)."""
        from . import _endpoints  # the other endpoints load when first used

        return _endpoints.userinfo(self, token)
