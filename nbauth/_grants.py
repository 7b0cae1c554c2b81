"""Grants as plain data objects, and the token requests they build - no I/O here.

Each grant builds a :class:`TokenRequest`: the form fields of RFC 6749 §4.x, the values to
redact from any message, and whether it is a user grant (seed 001 sends the client token as
Bearer on those). The provider adds client authentication and sends it.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import urllib.parse
from collections.abc import Mapping
from typing import Any

from ._errors import VerificationError, error_from_code
from ._record import Record
from ._scope import Scope, join_scope, scope_items
from ._secret import Secret, secret
from ._tokens import Token, parse_token_response

__all__ = [
    "DEVICE_CODE_GRANT",
    "AuthorizationCode",
    "ClientCredentials",
    "Custom",
    "DeviceCode",
    "Grant",
    "Password",
    "RefreshToken",
    "TokenRequest",
    "authorization_url",
    "parse_authorization_response",
    "parse_implicit_response",
    "pkce_pair",
]

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: Parameter names whose values are secret in any grant (used to redact Custom grants).
SECRET_PARAMS = frozenset(
    {
        "password",
        "client_secret",
        "refresh_token",
        "code",
        "code_verifier",
        "device_code",
        "assertion",
        "client_assertion",
        "token",
        "subject_token",
        "actor_token",
    }
)


class TokenRequest(Record):
    """What a grant asks of the token endpoint, before client authentication.

    ``params`` are the body fields; ``endpoint`` overrides the provider's token URL (seed
    000's custom endpoint); ``client_id``/``client_secret`` override the provider's client
    (client_credentials with other credentials); ``secrets`` are redacted from messages.
    """

    __slots__ = ("client_id", "client_secret", "endpoint", "params", "scope", "secrets", "user_grant", "username")
    params: Mapping[str, str]
    endpoint: str | None
    user_grant: bool
    client_id: str | None
    client_secret: Secret | None
    username: str | None
    scope: tuple[str, ...]
    secrets: tuple[str, ...]

    def __init__(
        self,
        params: Mapping[str, str],
        endpoint: str | None = None,
        user_grant: bool = True,
        client_id: str | None = None,
        client_secret: str | None = None,
        username: str | None = None,
        scope: tuple[str, ...] = (),
        secrets: tuple[str, ...] = (),
    ) -> None:
        shown = {k: (secret(v) or v if k in SECRET_PARAMS else v) for k, v in params.items()}
        self._set(
            params=shown,
            endpoint=endpoint,
            user_grant=user_grant,
            client_id=client_id,
            client_secret=secret(client_secret),
            username=username,
            scope=tuple(scope),
            secrets=tuple(secrets),
        )

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_PARAMS else v) for k, v in self.params.items()}
        return f"TokenRequest(params={shown!r}, endpoint={self.endpoint!r})"

    def __hash__(self) -> int:
        return hash((tuple(sorted(self.params.items())), self.endpoint))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle without secrets: no secret body field, client secret or redaction list (they never travel)."""
        params = {k: v for k, v in self.params.items() if k not in SECRET_PARAMS}
        return TokenRequest, (
            params,
            self.endpoint,
            self.user_grant,
            self.client_id,
            None,
            self.username,
            self.scope,
            (),
        )


def _with_scope(params: dict[str, str], scope: Scope, separator: str) -> dict[str, str]:
    joined = join_scope(scope, separator)
    if joined:
        params["scope"] = joined
    return params


class ClientCredentials(Record):
    """Client credentials grant (RFC 6749 §4.4): the client acts on its own behalf.

    ``client_id`` / ``client_secret`` default to the provider's client.
    """

    __slots__ = ("client_id", "client_secret", "scope")
    _hidden = frozenset({"client_secret"})
    client_id: str | None
    client_secret: Secret | None
    scope: Scope

    def __init__(self, client_id: str | None = None, client_secret: str | None = None, scope: Scope = None) -> None:
        self._set(client_id=client_id, client_secret=secret(client_secret), scope=scope)

    def request(self, separator: str = " ") -> TokenRequest:
        params = _with_scope({"grant_type": "client_credentials"}, self.scope, separator)
        return TokenRequest(
            params,
            user_grant=False,
            client_id=self.client_id,
            client_secret=self.client_secret,
            scope=scope_items(self.scope),
            secrets=tuple(s for s in (self.client_secret,) if s),
        )


class Password(Record):
    """Resource owner password credentials grant (RFC 6749 §4.3). The password is never stored."""

    __slots__ = ("password", "scope", "username")
    _hidden = frozenset({"password"})
    username: str
    password: Secret
    scope: Scope

    def __init__(self, username: str, password: str, scope: Scope = None) -> None:
        self._set(username=username, password=Secret(password), scope=scope)

    def request(self, separator: str = " ") -> TokenRequest:
        params = _with_scope(
            {"grant_type": "password", "username": self.username, "password": self.password},
            self.scope,
            separator,
        )
        return TokenRequest(params, username=self.username, scope=scope_items(self.scope), secrets=(self.password,))


class AuthorizationCode(Record):
    """Authorization code grant (RFC 6749 §4.1.3), with the PKCE verifier (RFC 7636 §4.5)."""

    __slots__ = ("code", "code_verifier", "redirect_uri")
    _hidden = frozenset({"code", "code_verifier"})
    code: str
    redirect_uri: str | None
    code_verifier: str | None

    def __init__(self, code: str, redirect_uri: str | None = None, code_verifier: str | None = None) -> None:
        self._set(code=code, redirect_uri=redirect_uri, code_verifier=code_verifier)

    def request(self, separator: str = " ") -> TokenRequest:
        params = {"grant_type": "authorization_code", "code": self.code}
        if self.redirect_uri:
            params["redirect_uri"] = self.redirect_uri
        if self.code_verifier:
            params["code_verifier"] = self.code_verifier
        return TokenRequest(params, secrets=tuple(s for s in (self.code, self.code_verifier) if s))


class RefreshToken(Record):
    """Refresh token grant (RFC 6749 §6); ``scope`` may only narrow the original grant."""

    __slots__ = ("refresh_token", "scope")
    _hidden = frozenset({"refresh_token"})
    refresh_token: str
    scope: Scope

    def __init__(self, refresh_token: str, scope: Scope = None) -> None:
        self._set(refresh_token=refresh_token, scope=scope)

    def request(self, separator: str = " ") -> TokenRequest:
        params = _with_scope(
            {"grant_type": "refresh_token", "refresh_token": self.refresh_token}, self.scope, separator
        )
        return TokenRequest(params, scope=scope_items(self.scope), secrets=(self.refresh_token,))


class DeviceCode(Record):
    """Device access token request (RFC 8628 §3.4)."""

    __slots__ = ("device_code",)
    _hidden = frozenset({"device_code"})
    device_code: str

    def __init__(self, device_code: str) -> None:
        self._set(device_code=device_code)

    def request(self, separator: str = " ") -> TokenRequest:
        return TokenRequest(
            {"grant_type": DEVICE_CODE_GRANT, "device_code": self.device_code}, secrets=(self.device_code,)
        )


class Custom(Record):
    """Any token request: your own parameters, optionally to another endpoint (seed 000).

    Values of well-known secret parameters (password, client_secret, refresh_token, code,
    ...) are redacted from messages and reprs.
    """

    __slots__ = ("endpoint", "params")
    params: Mapping[str, str]
    endpoint: str | None

    def __init__(self, params: Mapping[str, str], endpoint: str | None = None) -> None:
        self._set(params=params, endpoint=endpoint)

    def __repr__(self) -> str:
        shown = {k: ("***" if k in SECRET_PARAMS else v) for k, v in self.params.items()}
        return f"Custom(params={shown!r}, endpoint={self.endpoint!r})"

    def __hash__(self) -> int:
        return hash(("Custom", tuple(sorted(self.params.items())), self.endpoint))

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle without the values of secret parameters (they are dropped, as Record drops hidden fields)."""
        params = {k: v for k, v in self.params.items() if k not in SECRET_PARAMS}
        return Custom, (params, self.endpoint)

    def request(self, separator: str = " ") -> TokenRequest:
        params = {str(k): str(v) for k, v in self.params.items() if v is not None}
        user = params.get("grant_type") != "client_credentials"
        hidden = tuple(v for k, v in params.items() if k in SECRET_PARAMS and v)
        return TokenRequest(
            params,
            endpoint=self.endpoint,
            user_grant=user,
            username=params.get("username"),
            scope=scope_items(params.get("scope")),
            secrets=hidden,
        )


Grant = ClientCredentials | Password | AuthorizationCode | RefreshToken | DeviceCode | Custom


# ---------------------------------------------------------------- PKCE and the authorization request
def pkce_pair() -> tuple[str, str]:
    """A PKCE ``(code_verifier, code_challenge)`` with the S256 method (RFC 7636 §4.1-4.2)."""
    verifier = secrets.token_urlsafe(64)  # 86 characters of [A-Za-z0-9_-], within 43..128
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    challenge = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    return verifier, challenge


def authorization_url(
    endpoint: str,
    *,
    client_id: str,
    redirect_uri: str,
    scope: str | None,
    state: str,
    code_challenge: str,
    nonce: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> str:
    """The authorization request URL (RFC 6749 §4.1.1 + PKCE RFC 7636 §4.3 + OIDC nonce)."""
    params: dict[str, str] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "state": state,
        "code_challenge": code_challenge,
        "code_challenge_method": "S256",
    }
    if scope:
        params["scope"] = scope
    if nonce:
        params["nonce"] = nonce
    params.update(extra or {})
    parts = urllib.parse.urlsplit(endpoint)
    query = "&".join(q for q in (parts.query, urllib.parse.urlencode(params)) if q)
    return urllib.parse.urlunsplit(parts._replace(query=query))


def _response_params(url: str, *, fragment: bool) -> dict[str, str]:
    parts = urllib.parse.urlsplit(url.strip())
    raw = parts.fragment if fragment else (parts.query or parts.fragment)
    if len(raw) > 64 * 1024:
        raise VerificationError("the redirect URL is too long")
    return dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))


def _check_state_and_error(params: Mapping[str, str], state: str | None) -> None:
    if "error" in params:
        raise error_from_code(params["error"], params.get("error_description", ""))
    if state is not None and not secrets.compare_digest(params.get("state", ""), state):
        raise VerificationError(
            "the state in the redirect does not match the one sent: "
            "use the URL of this login attempt, or start the login again"
        )


def parse_authorization_response(
    url: str, *, state: str | None, issuer: str | None = None, require_iss: bool = False
) -> str:
    """The ``code`` from an authorization redirect (RFC 6749 §4.1.2), after the checks.

    An ``error`` raises its class; ``state`` must match (§10.12); ``iss``, when present or
    required, must equal the issuer (RFC 9207 §2.4, mix-up defence).
    """
    params = _response_params(url, fragment=False)
    _check_state_and_error(params, state)
    iss = params.get("iss")
    if issuer is not None and (iss is not None or require_iss) and iss != issuer:
        raise VerificationError(
            "the redirect names another provider (iss) than this one: possible mix-up attack; start the login again"
        )
    code = params.get("code")
    if not code:
        raise VerificationError("the redirect URL carries no authorization code")
    return code


def parse_implicit_response(url: str, state: str | None = None, *, scope_separator: str = " ") -> Token:
    """Parse an implicit-grant redirect (RFC 6749 §4.2.2) into a :class:`Token`.

    Reads the URL fragment (``#access_token=...&token_type=Bearer&expires_in=...``),
    checks ``state`` when given (§10.12) and raises the error class of an error fragment
    (§4.2.2.1). nbauth never starts an implicit flow (RFC 9700 §2.1.2 deprecates it); this only
    parses what another tool received.
    """
    params = _response_params(url, fragment=True)
    if not params:
        raise VerificationError("the URL has no fragment with token parameters")
    _check_state_and_error(params, state)
    body: dict[str, Any] = dict(params)
    return parse_token_response(body, scope_separator=scope_separator)
