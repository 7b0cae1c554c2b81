"""The token exchange grant (RFC 8693) as a plain data object - no I/O here.

``TokenExchange(subject_token, audience=..., scope=..., resource=...)`` asks the token
endpoint for a token meant for another API (RFC 8693 §2.1), acting for the subject of
``subject_token``. ``resource`` (an absolute URI, RFC 8707 §2) and ``audience`` (a logical
name the server knows, RFC 8693 §2.1) name the target; a refusal is the server's OAuth error
(``invalid_target``, ``invalid_grant`` for a bad subject token, §2.2.2).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._errors import ConfigurationError
from ._grants import TokenRequest
from ._record import Record
from ._scope import Scope, join_scope, scope_items

__all__ = ["ACCESS_TOKEN_TYPE", "TOKEN_EXCHANGE_GRANT", "TokenExchange", "resource_tuple"]

TOKEN_EXCHANGE_GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
#: RFC 8693 §3 token type identifiers.
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
TOKEN_TYPES = frozenset(
    {
        ACCESS_TOKEN_TYPE,
        "urn:ietf:params:oauth:token-type:refresh_token",
        "urn:ietf:params:oauth:token-type:id_token",
        "urn:ietf:params:oauth:token-type:jwt",
        "urn:ietf:params:oauth:token-type:saml1",
        "urn:ietf:params:oauth:token-type:saml2",
    }
)


def resource_tuple(resource: str | Sequence[str] | None) -> tuple[str, ...]:
    """``resource=`` as a tuple of absolute URIs without fragment (RFC 8707 §2)."""
    if resource is None:
        return ()
    items = [resource] if isinstance(resource, str) else list(resource)
    out: list[str] = []
    for item in items:
        if not isinstance(item, str) or ":" not in item or "#" in item:
            raise ConfigurationError(
                f"resource={item!r} must be an absolute URI without a fragment"
                ", e.g. 'https://api.example.com/' or 'urn:example:api'"
            )
        out.append(item)
    return tuple(dict.fromkeys(out))


def _targets(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


class TokenExchange(Record):
    """Token exchange (RFC 8693 §2.1): a token for ``audience`` / ``resource`` from a subject token."""

    __slots__ = ("audience", "requested_token_type", "resource", "scope", "subject_token", "subject_token_type")
    _hidden = frozenset({"subject_token"})
    subject_token: str
    subject_token_type: str
    audience: str | Sequence[str] | None
    scope: Scope
    resource: str | Sequence[str] | None
    requested_token_type: str | None

    def __init__(
        self,
        subject_token: str,
        subject_token_type: str = ACCESS_TOKEN_TYPE,
        *,
        audience: str | Sequence[str] | None = None,
        scope: Scope = None,
        resource: str | Sequence[str] | None = None,
        requested_token_type: str | None = None,
    ) -> None:
        if not isinstance(subject_token, str) or not subject_token:
            raise ConfigurationError("TokenExchange needs the subject_token (e.g. session.token.access_token)")
        for name, value in (("subject_token_type", subject_token_type), ("requested_token_type", requested_token_type)):
            if value is not None and value not in TOKEN_TYPES:
                raise ConfigurationError(
                    f"{name}={value!r} is not a token type of token exchange; use e.g. {ACCESS_TOKEN_TYPE!r}"
                )
        resource_tuple(resource)  # RFC 8707 §2: absolute URIs, checked here so the error names the argument
        self._set(
            subject_token=subject_token,
            subject_token_type=subject_token_type,
            audience=audience,
            scope=scope,
            resource=resource,
            requested_token_type=requested_token_type,
        )

    def request(self, separator: str = " ") -> TokenRequest:
        params = {
            "grant_type": TOKEN_EXCHANGE_GRANT,
            "subject_token": self.subject_token,
            "subject_token_type": self.subject_token_type,
        }
        joined = join_scope(self.scope, separator)
        if joined:
            params["scope"] = joined
        for name, values in (("audience", _targets(self.audience)), ("resource", _targets(self.resource))):
            if len(values) > 1:
                raise ConfigurationError(f"{name}: send one value; a form body cannot repeat a field here")
            if values:
                params[name] = values[0]
        if self.requested_token_type:
            params["requested_token_type"] = self.requested_token_type
        return TokenRequest(params, scope=scope_items(self.scope), secrets=(self.subject_token,))
