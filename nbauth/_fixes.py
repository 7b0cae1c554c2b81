"""Compliance fixes: each provider's deviation from the RFCs as one small named function.

In the manner of requests-oauthlib's ``compliance_fixes/``, a :class:`Fix` has up to four
hooks, each a plain function, run by :class:`~nbauth._exchange.Exchange` at one point:

- ``before_auth(exchange, request, outgoing)``: reshape a token request before client
  authentication is added (route it elsewhere, change the body format);
- ``after_auth(exchange, request, outgoing)``: adjust it once the client has authenticated;
- ``token_body(body)``: repair a token response body before it is parsed (RFC 6749 §5.1);
- ``device_body(body)``: repair a device authorization response (RFC 8628 §3.2).

Presets attach theirs by name (``Fusio`` -> ``fusio_password_login`` and ``token_field``);
``Provider(fixes=[...])`` picks any. A new quirk is one function and one line in :data:`FIXES`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._grants import TokenRequest
from ._record import Record

if TYPE_CHECKING:
    from ._exchange import Exchange

__all__ = ["FIXES", "Fix", "Outgoing", "fixes_for"]


class Outgoing:
    """A token request being built: where it goes, its fields and headers, and how it is sent."""

    __slots__ = ("authenticate", "body", "headers", "json", "url")

    def __init__(self, url: str, body: dict[str, str], headers: dict[str, str], *, json: bool) -> None:
        self.url, self.body, self.headers, self.json = url, body, headers, json
        self.authenticate = True

    def __repr__(self) -> str:
        return f"<Outgoing {self.url!r} fields={sorted(self.body)}>"


RequestHook = Callable[["Exchange", TokenRequest, Outgoing], None]
BodyHook = Callable[[dict[str, Any]], dict[str, Any]]


class Fix(Record):
    """One provider quirk: a name and the hooks it needs (the others are None)."""

    __slots__ = ("after_auth", "before_auth", "device_body", "name", "token_body")
    name: str
    before_auth: RequestHook | None
    after_auth: RequestHook | None
    token_body: BodyHook | None
    device_body: BodyHook | None

    def __init__(
        self,
        name: str,
        *,
        before_auth: RequestHook | None = None,
        after_auth: RequestHook | None = None,
        token_body: BodyHook | None = None,
        device_body: BodyHook | None = None,
    ) -> None:
        self._set(
            name=name, before_auth=before_auth, after_auth=after_auth, token_body=token_body, device_body=device_body
        )


def _fusio_password_login(exchange: Exchange, request: TokenRequest, out: Outgoing) -> None:
    """Fusio (seed 003): the password login is ``POST /consumer/login`` with JSON
    ``{"username", "password"}`` and no client authentication, instead of RFC 6749 §4.3.
    """
    if exchange.password_login_url and request.params.get("grant_type") == "password" and not request.endpoint:
        out.url = exchange.password_login_url
        out.body = {"username": out.body.get("username", ""), "password": out.body.get("password", "")}
        out.json, out.authenticate = True, False


def _token_field(body: dict[str, Any]) -> dict[str, Any]:
    """Fusio's ``/consumer/login`` answers ``{"token": ...}`` instead of ``access_token`` (RFC 6749 §5.1)."""
    if "access_token" not in body and isinstance(body.get("token"), str):
        return {**body, "access_token": body["token"]}
    return body


def _client_token_for_user_grants(exchange: Exchange, request: TokenRequest, out: Outgoing) -> None:
    """Seed 001: user-grant token requests carry a client_credentials token as ``Bearer``."""
    if request.user_grant and out.authenticate and request.params.get("grant_type") != "client_credentials":
        out.headers["Authorization"] = exchange.client_bearer()


def _verification_url(body: dict[str, Any]) -> dict[str, Any]:
    """Some providers (Google) send ``verification_url`` for RFC 8628 §3.2's ``verification_uri``."""
    if "verification_uri" not in body and "verification_url" in body:
        return {**body, "verification_uri": body["verification_url"]}
    return body


FIXES: dict[str, Fix] = {
    fix.name: fix
    for fix in (
        Fix("fusio_password_login", before_auth=_fusio_password_login),
        Fix("token_field", token_body=_token_field),
        Fix("client_token_for_user_grants", after_auth=_client_token_for_user_grants),
        Fix("verification_url", device_body=_verification_url),
    )
}


def fixes_for(names: tuple[str, ...] | list[str]) -> tuple[Fix, ...]:
    """The :class:`Fix` objects for these names; a typo is a :class:`ConfigurationError`."""
    unknown = [n for n in names if n not in FIXES]
    if unknown:
        raise ConfigurationError(f"unknown compliance fix {unknown[0]!r}; known: {', '.join(sorted(FIXES))}")
    return tuple(FIXES[n] for n in dict.fromkeys(names))
