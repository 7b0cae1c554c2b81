"""The loopback servers of the benchmark (all on 127.0.0.1, ephemeral ports).

- IdPs: tests/idp/server.js (node-oidc-provider, Keycloak-shaped URLs, refresh tokens rotated on
  every use, reuse of a rotated one revokes the grant). ``short``: 3-second access tokens and
  600-second refresh tokens (``IDP_TTL_*`` apply to ``public-client``; only ``short-lived-client``
  has per-client TTLs), for the refresh scenarios; ``long``: the defaults (300-second access
  tokens), for the reuse and overhead scenarios.
- :class:`ApiServer`: a protected API that checks every Bearer token by RFC 7662 introspection
  (no cache, so revoked tokens fail too) and counts the requests whose token was invalid.
- The bare "200 OK" server, in a process of its own (``python -m bench.servers ok``), so the
  per-request overhead measures the client and not a GIL shared with the server.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from idp.helpers import IdP, start_idp  # noqa: E402  (tests/idp/helpers.py, the loopback IdP driver)

INTROSPECTION_CLIENT = ("confidential-client", "confidential-secret")
SHORT_IDP_ENV = {"IDP_TTL_AccessToken": "3", "IDP_TTL_IdToken": "3", "IDP_TTL_RefreshToken": "600"}
LONG_IDP_ENV: dict[str, str] = {}


@dataclass(frozen=True)
class Target:
    """What a client needs to log in: the IdP, the public client and the user (picklable, JSON-able)."""

    origin: str
    issuer: str
    token_url: str
    realm: str = "demo"
    client_id: str = "public-client"
    username: str = "alice"
    password: str = "alice-password"
    scope: str = "openid"

    @classmethod
    def of(cls, idp: IdP) -> Target:
        return cls(idp.origin, idp.issuer, idp.endpoint("token_endpoint"), idp.realm or "demo")


def start_idps(workdir: Path) -> tuple[IdP, IdP]:
    """(short, long) IdPs; ``npm ci`` runs first when tests/idp/node_modules is missing."""
    short = start_idp(SHORT_IDP_ENV, workdir / "idp-short")
    try:
        long = start_idp(LONG_IDP_ENV, workdir / "idp-long")
    except Exception:
        short.stop()
        raise
    return short, long


def token_requests(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Token endpoint requests between two ``/_admin/stats`` snapshots: ``{"refresh_token:200": n, ...}``."""
    out = {}
    for key, value in after.items():
        if key.startswith("token:") and value - before.get(key, 0):
            out[key.removeprefix("token:")] = value - before.get(key, 0)
    return dict(sorted(out.items()))


# ------------------------------------------------------------------ the protected API
class _ApiHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _ApiHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        app = self.server.app
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        active = scheme.lower() == "bearer" and bool(token) and app.introspect(token.strip())
        app.count(active)
        body = b'{"ok": true}' if active else b'{"error": "invalid_token"}'
        head = (
            "HTTP/1.1 200 OK\r\n"
            if active
            else ('HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer realm="api", error="invalid_token"\r\n')
        )
        self.wfile.write(f"{head}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)


class _ApiHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, app: ApiServer) -> None:
        self.app = app
        super().__init__(("127.0.0.1", 0), _ApiHandler)


class ApiServer:
    """``GET /api`` answers 200 for an active token, 401 ``invalid_token`` for an expired or revoked one."""

    def __init__(self, introspection_url: str) -> None:
        self.introspection_url = introspection_url
        self._local = threading.local()
        self._lock = threading.Lock()
        self.ok = 0
        self.invalid = 0
        self._httpd = _ApiHTTPServer(self)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/api"
        threading.Thread(target=self._httpd.serve_forever, name="bench-api", daemon=True).start()

    def introspect(self, token: str) -> bool:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.trust_env = False
        r = session.post(
            self.introspection_url,
            data={"token": token, "token_type_hint": "access_token"},
            auth=INTROSPECTION_CLIENT,
            timeout=30,
        )
        return r.status_code == 200 and r.json().get("active") is True

    def count(self, active: bool) -> None:
        with self._lock:
            if active:
                self.ok += 1
            else:
                self.invalid += 1

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.ok, self.invalid

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


# ------------------------------------------------------------------ the bare "200 OK" server
class _OkHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")


class OkServer:
    """The bare server in a child process; ``url`` answers 200 ``{}`` to any GET, without looking at it."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.servers", "ok"], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().split()
        if len(line) != 2 or line[0] != "OK_READY":
            self.stop()
            raise RuntimeError(f"the bare server did not start: {line}")
        self.url = f"http://127.0.0.1:{line[1]}/ok"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


def _serve_ok() -> None:
    class Server(ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 64

    httpd = Server(("127.0.0.1", 0), _OkHandler)
    print("OK_READY", httpd.server_address[1], flush=True)
    httpd.serve_forever()


if __name__ == "__main__" and sys.argv[1:] == ["ok"]:
    _serve_ok()
