"""A tiny protected API (resource server) in front of any OAuth2 server with RFC 7662 introspection.

``GET /api/whoami`` reads ``Authorization: Bearer <token>``, asks the introspection endpoint about it
(authenticated as a confidential client) and answers:

- 200 with the introspection JSON when ``active`` is true (and ``required_scope``, if set, is granted);
- 401 + ``WWW-Authenticate: Bearer realm="api", error="invalid_token"`` when the token is expired/invalid
  (RFC 6750 section 3), 401 + ``WWW-Authenticate: Bearer realm="api"`` (no error) when there is no token;
- 403 ``insufficient_scope`` when ``required_scope`` is missing from the token;
- 502 when the introspection call itself fails.

Opaque tokens only with the loopback IdP: oidc-provider does not introspect its JWT access tokens
(those issued with ``resource=urn:demo:api``); they come back inactive.
"""

from __future__ import annotations

import base64
import json
import threading
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from ._base import Handler, RecordedRequest, StandInServer


class ResourceServer(StandInServer):
    """Start with ``ResourceServer(introspection_url, client_id, client_secret).start()`` or as a context manager."""

    def __init__(
        self,
        introspection_url: str,
        client_id: str,
        client_secret: str,
        auth_method: str = "client_secret_basic",
        required_scope: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(host, port)
        if auth_method not in ("client_secret_basic", "client_secret_post"):
            raise ValueError(f"unsupported auth_method {auth_method!r}")
        self.introspection_url = introspection_url
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_method = auth_method
        self.required_scope = required_scope
        self.timeout = timeout
        self._counts = threading.Lock()
        self.authorization_headers: list[str | None] = []  # Authorization header of each /api request, in order
        self.ok_count = 0
        self.invalid_token_count = 0  # requests whose token was expired/revoked/unknown (introspection inactive)
        self.missing_token_count = 0  # requests without a Bearer token
        self.introspections: list[dict[str, Any]] = []  # introspection responses, in order

    def reset(self) -> None:
        super().reset()
        with self._counts:
            self.authorization_headers.clear()
            self.introspections.clear()
            self.ok_count = self.invalid_token_count = self.missing_token_count = 0

    @property
    def whoami_url(self) -> str:
        return f"{self.url}/api/whoami"

    def introspect(self, token: str) -> dict[str, Any]:
        """POST the token to the introspection endpoint; returns its JSON (raises urllib errors)."""
        data = {"token": token, "token_type_hint": "access_token"}
        headers = {"Accept": "application/json", "Content-Type": "application/x-www-form-urlencoded"}
        if self.auth_method == "client_secret_basic":  # RFC 6749 s2.3.1: form-encode, then Base64
            raw = f"{urllib.parse.quote_plus(self.client_id)}:{urllib.parse.quote_plus(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(raw.encode()).decode()
        else:
            data.update(client_id=self.client_id, client_secret=self.client_secret)
        req = urllib.request.Request(
            self.introspection_url, data=urllib.parse.urlencode(data).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            body: dict[str, Any] = json.loads(resp.read())
        return body

    def handle(self, h: Handler, req: RecordedRequest) -> None:
        if req.path != "/api/whoami" or req.method not in ("GET", "POST"):
            h.send_json(404, {"error": "not_found"})
            return
        with self._counts:
            self.authorization_headers.append(req.authorization)
        token = req.bearer()
        if token is None:
            with self._counts:
                self.missing_token_count += 1
            h.send_json(
                401,
                {"error": "unauthorized", "error_description": "Bearer token required"},
                {"WWW-Authenticate": 'Bearer realm="api"'},
            )
            return
        try:
            info = self.introspect(token)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            h.send_json(502, {"error": "introspection_failed", "error_description": repr(exc)})
            return
        with self._counts:
            self.introspections.append(info)
        if not info.get("active"):
            with self._counts:
                self.invalid_token_count += 1
            why = "The access token is invalid or expired"
            h.send_json(
                401,
                {"error": "invalid_token", "error_description": why},
                {"WWW-Authenticate": f'Bearer realm="api", error="invalid_token", error_description="{why}"'},
            )
            return
        if self.required_scope and self.required_scope not in str(info.get("scope", "")).split():
            h.send_json(
                403,
                {"error": "insufficient_scope", "scope": self.required_scope},
                {"WWW-Authenticate": f'Bearer realm="api", error="insufficient_scope", scope="{self.required_scope}"'},
            )
            return
        with self._counts:
            self.ok_count += 1
        h.send_json(200, info)
