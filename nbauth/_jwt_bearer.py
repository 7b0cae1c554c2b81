"""The JWT bearer authorization grant (RFC 7523 §2.1) as a plain data object - no I/O here.

``JWTBearer(assertion, scope=...)`` presents a JWT that a party the authorization server trusts
has issued (a Kubernetes service-account token, a CI job's OIDC token) as the grant itself. The
server checks the assertion (§3: ``iss``, ``sub``, ``aud``, ``exp``, its signature) and answers
with an access token for its ``sub``; a refused assertion is ``invalid_grant`` (§3.1).
"""

from __future__ import annotations

from ._errors import ConfigurationError
from ._grants import TokenRequest
from ._record import Record
from ._scope import Scope, join_scope, scope_items
from ._secret import Secret

__all__ = ["JWT_BEARER_GRANT", "JWTBearer"]

JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


class JWTBearer(Record):
    """JWT bearer grant (RFC 7523 §2.1): a token for the ``sub`` of ``assertion``, a JWT the server trusts."""

    __slots__ = ("assertion", "scope")
    _hidden = frozenset({"assertion"})
    assertion: Secret
    scope: Scope

    def __init__(self, assertion: str, scope: Scope = None) -> None:
        if not isinstance(assertion, str) or not assertion.strip():
            raise ConfigurationError("JWTBearer needs the assertion: a JWT the authorization server trusts")
        self._set(assertion=Secret(assertion), scope=scope)

    def request(self, separator: str = " ") -> TokenRequest:
        params = {"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion}
        joined = join_scope(self.scope, separator)
        if joined:
            params["scope"] = joined
        return TokenRequest(params, scope=scope_items(self.scope), secrets=(self.assertion,))
