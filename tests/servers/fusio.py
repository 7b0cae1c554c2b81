"""A Fusio stand-in (seed 003): ``/consumer/login`` (JSON) and the OAuth2 endpoint ``/authorization/token``.

Fusio's quirks, reproduced on purpose:

- scopes are COMMA-separated (``scope=authorization,backend``) in requests and responses;
  the granted scope is the requested list filtered by what the app may have (no valid scope -> invalid_scope);
  a space-separated request is one unknown scope name;
- ``token_type`` is ``"bearer"`` (lower case);
- ``expires_in`` is an ABSOLUTE epoch timestamp (now + ttl), not a lifetime;
- refresh tokens rotate; reusing an old one is ``400 {"error": "invalid_grant"}``;
- the client authenticates with HTTP Basic ``client_id:client_secret`` (Base64 of the raw values,
  no form-decoding) or, as the seed shows for refresh_token, client_id/client_secret in the body.

``GET /backend/whoami`` accepts ``Authorization: Bearer <token issued here>`` (OAuth2 or consumer login)
and answers who the subject is; 401 otherwise (unknown, expired or revoked token).
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ._base import Handler, RecordedRequest, StandInServer, jwt_hs256, oauth_error

#: the client of the seed document (its app may only have the "authorization" scope, as in the seed's answer)
SEED_CLIENT_ID = "6c613945-8d5a-4a0d-b660-09de5fbdb753"
SEED_CLIENT_SECRET = "31e093f98ead22efc21b38a87a2a5bd71fc12bede3379f5eae6c6f7da9dabc5f"


@dataclass
class FusioApp:
    """An app (OAuth2 client) of a Fusio user."""

    client_id: str
    client_secret: str
    scopes: tuple[str, ...] = ("authorization", "backend", "consumer")
    user: str = "admin"  # the user a client_credentials token is issued for


@dataclass
class FusioToken:
    """What the server knows about a token it issued."""

    token: str
    kind: str  # "access" | "refresh" | "login"
    username: str
    sub: str
    scopes: list[str]
    client_id: str | None
    exp: int
    used: bool = False  # refresh tokens: rotated away
    extra: dict[str, Any] = field(default_factory=dict)


DEFAULT_USERS: dict[str, str] = {"test": "test-password", "admin": "admin-password"}
DEFAULT_APPS: tuple[FusioApp, ...] = (
    FusioApp(SEED_CLIENT_ID, SEED_CLIENT_SECRET, scopes=("authorization", "consumer"), user="admin"),
    FusioApp("fusio-app", "fusio-secret", scopes=("authorization", "backend", "consumer"), user="test"),
)


class FusioServer(StandInServer):
    """The Fusio stand-in. Start with ``start()`` or ``with FusioServer() as fusio:``; ``fusio.url`` is the base."""

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        apps: Iterable[FusioApp] | None = None,
        access_ttl: int = 3600,
        refresh_ttl: int = 86400,
        login_ttl: int = 3600,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.users: dict[str, str] = dict(DEFAULT_USERS if users is None else users)
        self.apps: dict[str, FusioApp] = {a.client_id: a for a in (DEFAULT_APPS if apps is None else apps)}
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.login_ttl = login_ttl
        self.clock_offset = 0.0  # seconds added to the server's clock
        self.key = secrets.token_bytes(32)  # HS256 key of the JWTs
        self.tokens: dict[str, FusioToken] = {}
        self.codes: dict[str, dict[str, Any]] = {}
        self._subs: dict[str, str] = {}
        self._state = threading.Lock()

    # ---- test controls
    def reset(self) -> None:
        super().reset()
        with self._state:
            self.tokens.clear()
            self.codes.clear()
        self.clock_offset = 0.0

    def now(self) -> float:
        return super().now() + self.clock_offset

    def sub_of(self, username: str) -> str:
        """The stable subject id of a user."""
        return self._subs.setdefault(username, str(uuid.uuid5(uuid.NAMESPACE_URL, f"fusio:{username}")))

    def register_code(
        self,
        code: str | None = None,
        username: str = "test",
        scope: str = "authorization",
        client_id: str | None = None,
        redirect_uri: str | None = None,
    ) -> str:
        """Make ``code`` (random when None) redeemable once with grant_type=authorization_code.

        ``scope`` is comma-separated; client_id / redirect_uri, when given, must match the token request.
        """
        code = code or secrets.token_urlsafe(16)
        with self._state:
            self.codes[code] = {
                "username": username,
                "scope": scope,
                "client_id": client_id,
                "redirect_uri": redirect_uri,
            }
        return code

    def expire_access_tokens(self) -> None:
        """Make every access token issued so far expired (refresh tokens stay valid)."""
        with self._state:
            for t in self.tokens.values():
                if t.kind in ("access", "login"):
                    t.exp = int(self.now()) - 1

    def revoke_refresh_tokens(self) -> None:
        with self._state:
            for t in self.tokens.values():
                if t.kind == "refresh":
                    t.used = True

    def token_info(self, token: str) -> FusioToken | None:
        return self.tokens.get(token)

    # ---- HTTP
    def handle(self, h: Handler, req: RecordedRequest) -> None:
        route = (req.method, req.path)
        if route == ("POST", "/consumer/login"):
            self._login(h, req)
        elif route == ("POST", "/authorization/token"):
            self._token(h, req)
        elif route == ("GET", "/backend/whoami"):
            self._whoami(h, req)
        else:
            h.send_json(404, {"success": False, "title": "Not Found", "message": f"Unknown location {req.path}"})

    def _issue_jwt(self, username: str, ttl: int) -> tuple[str, int, int]:
        iat = int(self.now())
        exp = iat + ttl
        claims = {
            "iss": self.url,
            "sub": self.sub_of(username),
            "iat": iat,
            "exp": exp,
            "name": username,
            "jti": secrets.token_hex(8),
        }
        return jwt_hs256(claims, self.key), iat, exp

    def _login(self, h: Handler, req: RecordedRequest) -> None:
        body = req.json
        if (
            not isinstance(body, dict)
            or not isinstance(body.get("username"), str)
            or not isinstance(body.get("password"), str)
        ):
            h.send_json(
                400,
                {
                    "success": False,
                    "error": "invalid_request",
                    "message": "JSON body with username and password required",
                },
            )
            return
        username, password = body["username"], body["password"]
        pw = self.users.get(username)
        if pw is None or not secrets.compare_digest(pw.encode(), password.encode()):
            h.send_json(401, {"success": False, "error": "invalid_credentials", "message": "Invalid name or password"})
            return
        token, _, exp = self._issue_jwt(username, self.login_ttl)
        with self._state:
            self.tokens[token] = FusioToken(token, "login", username, self.sub_of(username), ["consumer"], None, exp)
        h.send_json(200, {"token": token})

    def _client(self, h: Handler, req: RecordedRequest, form: dict[str, str]) -> FusioApp | None:
        basic = req.basic()
        if basic is not None:
            cid, secret = basic
        elif "client_id" in form:
            cid, secret = form["client_id"], form.get("client_secret", "")
        else:
            oauth_error(
                h, 401, "invalid_client", "Client authentication required", {"WWW-Authenticate": 'Basic realm="Fusio"'}
            )
            return None
        app = self.apps.get(cid)
        if app is None or not secrets.compare_digest(app.client_secret.encode(), secret.encode()):
            oauth_error(
                h,
                401,
                "invalid_client",
                "Unknown client or invalid client secret",
                {"WWW-Authenticate": 'Basic realm="Fusio"'} if basic is not None else None,
            )
            return None
        return app

    @staticmethod
    def split_scope(scope: str) -> list[str]:
        return [s.strip() for s in scope.split(",") if s.strip()]

    def _token(self, h: Handler, req: RecordedRequest) -> None:
        if req.form is None:
            oauth_error(h, 400, "invalid_request", "Content-Type must be application/x-www-form-urlencoded")
            return
        form = req.form
        app = self._client(h, req, form)
        if app is None:
            return
        grant = form.get("grant_type", "")
        requested: list[str] | None = self.split_scope(form["scope"]) if "scope" in form else None
        now = int(self.now())
        with self._state:
            if grant == "client_credentials":
                username = app.user
            elif grant == "password":
                if not form.get("username") or "password" not in form:
                    oauth_error(h, 400, "invalid_request", "username and password required")
                    return
                pw = self.users.get(form["username"])
                if pw is None or not secrets.compare_digest(pw.encode(), form["password"].encode()):
                    oauth_error(h, 400, "invalid_grant", "Invalid username or password")
                    return
                username = form["username"]
            elif grant == "refresh_token":
                old = self.tokens.get(form.get("refresh_token", ""))
                if old is None or old.kind != "refresh" or old.used or old.exp < now or old.client_id != app.client_id:
                    oauth_error(h, 400, "invalid_grant", "Invalid refresh token")
                    return
                old.used = True
                username = old.username
                requested = old.scopes
            elif grant == "authorization_code":
                code = self.codes.get(form.get("code", ""))
                if (
                    code is None
                    or (code["client_id"] and code["client_id"] != app.client_id)
                    or (code["redirect_uri"] and code["redirect_uri"] != form.get("redirect_uri"))
                ):
                    oauth_error(h, 400, "invalid_grant", "Invalid code")
                    return
                del self.codes[form["code"]]
                username = code["username"]
                requested = self.split_scope(code["scope"])
            elif not grant:
                oauth_error(h, 400, "invalid_request", "grant_type missing")
                return
            else:
                oauth_error(h, 400, "unsupported_grant_type", f"Invalid grant type {grant}")
                return
            granted = [s for s in (app.scopes if requested is None else requested) if s in app.scopes]
            if not granted:
                oauth_error(h, 400, "invalid_scope", "No valid scope given")
                return
            access, _, exp = self._issue_jwt(username, self.access_ttl)
            refresh = f"{secrets.token_hex(10)}-{secrets.token_hex(28)}-{secrets.token_hex(5)}"
            sub = self.sub_of(username)
            self.tokens[access] = FusioToken(access, "access", username, sub, granted, app.client_id, exp)
            self.tokens[refresh] = FusioToken(
                refresh, "refresh", username, sub, granted, app.client_id, now + self.refresh_ttl
            )
        h.send_json(
            200,
            {
                "access_token": access,
                "token_type": "bearer",
                "expires_in": exp,  # ABSOLUTE epoch seconds, like Fusio
                "refresh_token": refresh,
                "scope": ",".join(granted),
            },
            {"Cache-Control": "no-store"},
        )

    def _whoami(self, h: Handler, req: RecordedRequest) -> None:
        token = req.bearer()
        info = self.tokens.get(token or "")
        if info is None or info.kind == "refresh" or info.exp <= self.now():
            why = (
                "missing" if token is None else "expired" if info is not None and info.kind != "refresh" else "invalid"
            )
            h.send_json(
                401,
                {"success": False, "title": "Unauthorized", "message": f"Access token {why}"},
                {
                    "WWW-Authenticate": 'Bearer realm="Fusio"'
                    if token is None
                    else 'Bearer realm="Fusio", error="invalid_token"'
                },
            )
            return
        h.send_json(
            200,
            {
                "sub": info.sub,
                "name": info.username,
                "username": info.username,
                "scope": info.scopes,
                "client_id": info.client_id,
                "exp": info.exp,
            },
        )
