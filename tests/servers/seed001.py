"""A stand-in for the "moodhood"-style JSON token API of seed 001.

- ``POST /v1/auth/token`` accepts ONLY ``Content-Type: application/json`` bodies; anything else
  (a form body ...) is ``415`` with a JSON error, malformed JSON is ``400``.
- ``grant_type=client_credentials`` + client_id/client_secret in the JSON body -> a *client token*:
  ``{"token_type": "Bearer", "access_token": <JWT>, "refresh_token": <JWT>}`` - no ``expires_in``;
  the access token JWT carries ``exp``.
- ``grant_type=password`` needs ``Authorization: Bearer <valid client token of the same client>`` AND
  client_id/client_secret/username/password in the JSON body -> a *user token* (same shape).
  Without (or with a bad) client Bearer: ``401 {"error": "unauthorized", ...}``.
- ``grant_type=refresh_token`` + client_id/client_secret/refresh_token (JSON) -> new tokens of the same
  kind; refresh tokens rotate (reuse -> 400 invalid_grant).
- ``GET /v1/rooms``: any valid token (client or user); ``GET /v1/me``: user tokens only
  (a client token -> 403 ``insufficient_scope``); missing/invalid/expired -> 401.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._base import Handler, RecordedRequest, StandInServer, jwt_hs256

CLIENT_ID = "john-smith"
CLIENT_SECRET = "VTytkTR7ZHH5nLhoWCLjymrUJjKBzfs4"
USERNAME = "test_user@test.test"
PASSWORD = "123456"


@dataclass
class Seed001Token:
    token: str
    kind: str  # "client" | "user"
    type: str  # "accessToken" | "refreshToken"
    client_id: str
    username: str | None
    exp: int
    used: bool = False


class Seed001Server(StandInServer):
    """The seed-001 API stand-in; ``url`` is the base (``POST {url}/v1/auth/token``)."""

    def __init__(
        self,
        clients: Mapping[str, str] | None = None,
        users: Mapping[str, str] | None = None,
        access_ttl: int = 604800,
        refresh_ttl: int = 2592000,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, port)
        self.clients: dict[str, str] = dict({CLIENT_ID: CLIENT_SECRET} if clients is None else clients)
        self.users: dict[str, str] = dict({USERNAME: PASSWORD} if users is None else users)
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl
        self.clock_offset = 0.0
        self.key = secrets.token_bytes(32)
        self.tokens: dict[str, Seed001Token] = {}
        self.rooms: list[dict[str, Any]] = [
            {"id": "60c8c6f0a60f5c748d1ef27e", "name": "Lobby", "public": True},
            {"id": "62ab5a84b0ce6ee31b0997b3", "name": "Quiet room", "public": True},
        ]
        self._state = threading.Lock()

    # ---- test controls
    def reset(self) -> None:
        super().reset()
        with self._state:
            self.tokens.clear()
        self.clock_offset = 0.0

    def now(self) -> float:
        return super().now() + self.clock_offset

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is expired from now on (refresh tokens stay valid)."""
        with self._state:
            for t in self.tokens.values():
                if t.type == "accessToken":
                    t.exp = int(self.now()) - 1

    @staticmethod
    def oid(name: str) -> str:
        """A stable Mongo-ObjectId-looking id for a client or user name."""
        return uuid.uuid5(uuid.NAMESPACE_URL, f"seed001:{name}").hex[:24]

    # ---- HTTP
    @staticmethod
    def _error(h: Handler, status: int, error: str, description: str, headers: dict[str, str] | None = None) -> None:
        h.send_json(
            status,
            {"statusCode": status, "error": error, "error_description": description, "message": description},
            headers,
        )

    def handle(self, h: Handler, req: RecordedRequest) -> None:
        route = (req.method, req.path)
        if route == ("POST", "/v1/auth/token"):
            self._token(h, req)
        elif route == ("GET", "/v1/rooms"):
            if self._auth(h, req) is not None:
                h.send_json(200, {"data": self.rooms})
        elif route == ("GET", "/v1/me"):
            tok = self._auth(h, req)
            if tok is None:
                return
            if tok.kind != "user" or tok.username is None:
                self._error(
                    h,
                    403,
                    "insufficient_scope",
                    "a user token is required",
                    {"WWW-Authenticate": 'Bearer error="insufficient_scope"'},
                )
                return
            h.send_json(
                200,
                {
                    "id": self.oid(tok.username),
                    "username": tok.username,
                    "email": tok.username,
                    "clientId": tok.client_id,
                },
            )
        else:
            self._error(h, 404, "not_found", f"Cannot {req.method} {req.path}")

    def _auth(self, h: Handler, req: RecordedRequest) -> Seed001Token | None:
        token = req.bearer()
        tok = self.tokens.get(token or "")
        if tok is None or tok.type != "accessToken" or tok.exp <= self.now():
            www = "Bearer" if token is None else 'Bearer error="invalid_token"'
            self._error(
                h,
                401,
                "unauthorized",
                "missing token"
                if token is None
                else "token expired"
                if tok is not None and tok.type == "accessToken"
                else "invalid token",
                {"WWW-Authenticate": www},
            )
            return None
        return tok

    def _issue(self, kind: str, client_id: str, username: str | None) -> dict[str, str]:
        iat = int(self.now())
        sub = self.oid(username) if username else self.oid(client_id)
        out: dict[str, str] = {"token_type": "Bearer"}
        for typ, ttl, key in (
            ("accessToken", self.access_ttl, "access_token"),
            ("refreshToken", self.refresh_ttl, "refresh_token"),
        ):
            claims = {
                "sub": sub,
                "aud": "user" if kind == "client" else "client",
                "type": typ,
                "cId": self.oid(client_id),
                "jti": secrets.token_urlsafe(12),
                "iat": iat,
                "exp": iat + ttl,
            }
            token = jwt_hs256(claims, self.key)
            self.tokens[token] = Seed001Token(token, kind, typ, client_id, username, iat + ttl)
            out[key] = token
        return out

    def _token(self, h: Handler, req: RecordedRequest) -> None:
        if req.content_type != "application/json":
            self._error(h, 415, "unsupported_media_type", "Content-Type must be application/json")
            return
        body = req.json
        if not isinstance(body, dict):
            self._error(h, 400, "invalid_request", "the body must be a JSON object")
            return
        cid, secret = body.get("client_id"), body.get("client_secret")
        if not isinstance(cid, str) or not isinstance(secret, str):
            self._error(h, 400, "invalid_request", "client_id and client_secret are required")
            return
        known = self.clients.get(cid)
        if known is None or not secrets.compare_digest(known.encode(), secret.encode()):
            self._error(h, 401, "invalid_client", "invalid client credentials")
            return
        grant = body.get("grant_type")
        with self._state:
            if grant == "client_credentials":
                h.send_json(200, self._issue("client", cid, None))
            elif grant == "password":
                bearer = self.tokens.get(req.bearer() or "")
                if (
                    bearer is None
                    or bearer.kind != "client"
                    or bearer.type != "accessToken"
                    or bearer.exp <= self.now()
                    or bearer.client_id != cid
                ):
                    self._error(
                        h,
                        401,
                        "unauthorized",
                        "a valid client token is required in the Authorization header (Bearer)",
                        {"WWW-Authenticate": "Bearer"},
                    )
                    return
                username, password = body.get("username"), body.get("password")
                if not isinstance(username, str) or not isinstance(password, str):
                    self._error(h, 400, "invalid_request", "username and password are required")
                    return
                pw = self.users.get(username)
                if pw is None or not secrets.compare_digest(pw.encode(), password.encode()):
                    self._error(h, 400, "invalid_grant", "invalid username or password")
                    return
                h.send_json(200, self._issue("user", cid, username))
            elif grant == "refresh_token":
                old = self.tokens.get(str(body.get("refresh_token", "")))
                if (
                    old is None
                    or old.type != "refreshToken"
                    or old.used
                    or old.exp <= self.now()
                    or old.client_id != cid
                ):
                    self._error(h, 400, "invalid_grant", "invalid refresh token")
                    return
                old.used = True
                h.send_json(200, self._issue(old.kind, cid, old.username))
            else:
                self._error(h, 400, "unsupported_grant_type", f"unsupported grant_type {grant!r}")
