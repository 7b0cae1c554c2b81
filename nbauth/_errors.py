"""The nbauth exception hierarchy.

Every failure nbauth reports is an :class:`AuthError`; a raw ``requests`` exception never
reaches the caller::

    AuthError
    ├── OAuthError               the server answered an OAuth error code (RFC 6749 §5.2)
    │   ├── InvalidRequest         invalid_request
    │   ├── InvalidClient          invalid_client: wrong client id / secret / auth method
    │   ├── InvalidGrant           invalid_grant: wrong password, used code, dead refresh token
    │   ├── UnauthorizedClient     unauthorized_client: grant not enabled for this client
    │   ├── UnsupportedGrantType   unsupported_grant_type
    │   ├── InvalidScope           invalid_scope
    │   ├── AccessDenied           access_denied (RFC 6749 §4.1.2.1, RFC 8628 §3.5)
    │   ├── ExpiredToken           expired_token: the device code expired (RFC 8628 §3.5)
    │   ├── AuthorizationPending   authorization_pending (RFC 8628 §3.5)
    │   ├── SlowDown               slow_down (RFC 8628 §3.5)
    │   ├── InvalidTarget          invalid_target (RFC 8707 §2, RFC 8693 §2.2.2)
    │   ├── InvalidDPoPProof       invalid_dpop_proof (RFC 9449 §5)
    │   └── UseDPoPNonce           use_dpop_nonce, still after the bounded retries (RFC 9449 §8)
    ├── ProviderError            unreachable, TLS failure, timeout, or an answer that is not a
    │                            usable OAuth response (HTML, not JSON, 5xx, no access_token)
    ├── LoginRequired            no session, or refresh impossible (revoked / expired grant)
    ├── VerificationError        a response failed a security check (state, iss, id_token)
    ├── LoginCancelled           the user cancelled an interactive login
    └── ConfigurationError       bad arguments (also a ValueError)
        └── InsecureTransport    a token or credential would travel over plain http

Messages are built to say what went wrong and what to do next, and never contain a secret:
every value nbauth knows to be secret is redacted from server-provided text before it is
put into a message (see :func:`redact`).
"""

from __future__ import annotations

from collections.abc import Iterable

from ._terminal import printable

__all__ = [
    "AccessDenied",
    "AuthError",
    "AuthorizationPending",
    "ConfigurationError",
    "ExpiredToken",
    "InsecureTransport",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "LoginCancelled",
    "LoginRequired",
    "OAuthError",
    "ProviderError",
    "SlowDown",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "VerificationError",
    "error_from_code",
    "redact",
]

_MAX_SERVER_TEXT = 300


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` cut to a sane length with every known secret replaced by ``***``.

    Server-provided text (``error_description``, HTML pages) is hostile input: it may echo the
    password or client secret we sent, carry control characters or bidi overrides, or be huge.
    """
    clean = printable(text)
    for secret in sorted({s for s in secrets if s and len(s) >= 3}, key=len, reverse=True):
        clean = clean.replace(secret, "***")
    if len(clean) > _MAX_SERVER_TEXT:
        clean = clean[:_MAX_SERVER_TEXT] + "…"
    return clean


class AuthError(Exception):
    """Root of every error nbauth raises.

    ``url`` and ``status`` say which request failed, when one did.
    """

    hint: str = ""

    def __init__(self, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.url = url
        self.status = status

    def __str__(self) -> str:
        return f"{self.message} {self.hint}".strip() if self.hint and self.hint not in self.message else self.message


class ConfigurationError(AuthError, ValueError):
    """An argument cannot work: a missing endpoint, an unknown option, a bad URL."""


class InsecureTransport(ConfigurationError):
    """A token or credential would be sent over plain http to a host that is not loopback.

    RFC 6749 §3.2 and §10.3 and RFC 6750 §5.3 require TLS; only 127.0.0.0/8, ::1 and
    ``localhost`` may use http. nbauth checks each URL and never flips a process-wide switch.
    """


class ProviderError(AuthError):
    """The provider could not be reached or answered something that is not a usable OAuth reply.

    Carries ``url`` and ``status`` (None when no HTTP answer came) and, for 429/503 answers,
    ``retry_after`` in seconds when the server sent one.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, url=url, status=status)
        self.retry_after = retry_after


class LoginRequired(AuthError):
    """There is no usable session: nobody logged in, or the grant can no longer be refreshed."""


class VerificationError(AuthError):
    """A response failed a security check: ``state`` or ``iss`` mismatch, bad id_token."""


class LoginCancelled(AuthError):
    """The user cancelled an interactive login (the Cancel button, or an interrupted cell)."""


class OAuthError(AuthError):
    """The server answered an OAuth 2.0 error code (RFC 6749 §5.2, RFC 8628 §3.5).

    ``error`` is the code, ``description`` the server's ``error_description`` with secrets
    redacted. Unknown codes raise this class itself.
    """

    code: str = ""

    def __init__(
        self,
        error: str,
        description: str = "",
        *,
        url: str | None = None,
        status: int | None = None,
        secrets: Iterable[str | None] = (),
    ) -> None:
        self.error = redact(error, secrets)[:80]
        self.description = redact(description, secrets) if description else ""
        where = f" from {url}" if url else ""
        detail = f": {self.description}" if self.description else ""
        super().__init__(f"{self.error}{where}{detail}.", url=url, status=status)


class InvalidRequest(OAuthError):
    code = "invalid_request"
    hint = "The request was malformed; check the grant's parameters and the provider's quirks."


class InvalidClient(OAuthError):
    code = "invalid_client"
    hint = "Check client_id and client_secret, and the client authentication method (client_auth=...)."


class InvalidGrant(OAuthError):
    code = "invalid_grant"
    hint = "The credentials, code or refresh token were rejected: check them, or log in again."


class UnauthorizedClient(OAuthError):
    code = "unauthorized_client"
    hint = "This client may not use this grant: ask the provider's admin to enable it for the client."


class UnsupportedGrantType(OAuthError):
    code = "unsupported_grant_type"
    hint = "The provider does not support this grant type."


class InvalidScope(OAuthError):
    code = "invalid_scope"
    hint = "Ask only for scopes this client is allowed to request."


class AccessDenied(OAuthError):
    code = "access_denied"
    hint = "The sign-in was denied or aborted; run the login again and approve it."


class ExpiredToken(OAuthError):
    code = "expired_token"
    hint = "Run the login again and approve the code sooner."


class AuthorizationPending(OAuthError):
    code = "authorization_pending"
    hint = "The user has not approved the device code yet."


class SlowDown(OAuthError):
    code = "slow_down"
    hint = "The client polled too fast."


class InvalidTarget(OAuthError):
    code = "invalid_target"
    hint = (
        "The server will not issue a token for that resource / audience: check "
        "the name, and that this client may ask for it."
    )


class InvalidDPoPProof(OAuthError):
    code = "invalid_dpop_proof"
    hint = "The server refused the DPoP proof: check the clocks, or log in again with a new key (force=True)."


class UseDPoPNonce(OAuthError):
    code = "use_dpop_nonce"
    hint = (
        "The server kept asking for a new DPoP nonce and never accepted one; nbauth stopped "
        "after a few tries. Its nonces do not validate: tell the provider's admin, or try again later."
    )


_BY_CODE: dict[str, type[OAuthError]] = {
    cls.code: cls
    for cls in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
        AccessDenied,
        ExpiredToken,
        AuthorizationPending,
        SlowDown,
        InvalidTarget,
        InvalidDPoPProof,
        UseDPoPNonce,
    )
}


def error_from_code(
    error: str,
    description: str = "",
    *,
    url: str | None = None,
    status: int | None = None,
    secrets: Iterable[str | None] = (),
) -> OAuthError:
    """Build the exception for an OAuth error code (RFC 6749 §5.2, RFC 8628 §3.5).

    Unknown codes give a plain :class:`OAuthError` carrying the code.
    """
    cls = _BY_CODE.get(error, OAuthError)
    return cls(error, description, url=url, status=status, secrets=secrets)
