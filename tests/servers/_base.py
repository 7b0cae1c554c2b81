"""Common machinery of the stand-in servers: a recording ThreadingHTTPServer in a daemon thread.

Standard library only. Every server binds 127.0.0.1 on an ephemeral port, records each request it
receives (``RecordedRequest``), and stops fast - even while a handler is sleeping or streaming -
because handlers wait on ``stopping`` and ``stop()`` shuts every open connection down.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

JSON = "application/json"
_S = TypeVar("_S", bound="StandInServer")


@dataclass
class RecordedRequest:
    """One request as the server saw it.

    ``headers`` is an ``email.message.Message`` (case-insensitive ``headers["authorization"]``,
    None when missing); ``body`` the raw bytes; ``json``/``form`` the parsed body when it was
    JSON / form-encoded (else None); ``parsed`` whichever applies.
    """

    method: str
    target: str  # the request target as sent: path plus query
    path: str  # without the query string
    query: dict[str, str]
    headers: Message
    body: bytes
    json: Any = None
    form: dict[str, str] | None = None
    time: float = field(default_factory=time.time)
    client_address: tuple[str, int] = ("", 0)

    @property
    def parsed(self) -> Any:
        return self.json if self.json is not None else self.form

    @property
    def content_type(self) -> str:
        return (self.headers.get("content-type") or "").split(";", 1)[0].strip().lower()

    @property
    def authorization(self) -> str | None:
        value = self.headers.get("authorization")
        return None if value is None else str(value)

    def bearer(self) -> str | None:
        """The Bearer token of the Authorization header, or None."""
        value = self.authorization or ""
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        return token.strip()

    def basic(self) -> tuple[str, str] | None:
        """(user, password) of an HTTP Basic Authorization header, NOT form-decoded; None if absent/invalid."""
        value = self.authorization or ""
        scheme, _, b64 = value.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            raw = base64.b64decode(b64.strip(), validate=True).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return None
        user, sep, password = raw.partition(":")
        return (user, password) if sep else None


def parse_body(content_type: str, body: bytes) -> tuple[Any, dict[str, str] | None]:
    """(json, form) of a request body by content type (None for what it is not / does not parse)."""
    ctype = content_type.split(";", 1)[0].strip().lower()
    js: Any = None
    form: dict[str, str] | None = None
    if ctype == JSON or ctype.endswith("+json"):
        with contextlib.suppress(ValueError, RecursionError):
            js = json.loads(body.decode("utf-8"))
    elif ctype == "application/x-www-form-urlencoded":
        with contextlib.suppress(ValueError):
            form = dict(urllib.parse.parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    return js, form


class Handler(BaseHTTPRequestHandler):
    """Reads and records each request, then calls ``app.handle(self, request)``."""

    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "StandIn/1.0"
    sys_version = ""
    timeout = 30  # an idle keep-alive connection is dropped after this many seconds

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _dispatch(self) -> None:
        app = self.server.app
        body = self._read_body()
        split = urllib.parse.urlsplit(self.path)
        js, form = parse_body(self.headers.get("content-type") or "", body)
        rec = RecordedRequest(
            method=self.command,
            target=self.path,
            path=split.path,
            query=dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True)),
            headers=self.headers,
            body=body,
            json=js,
            form=form,
            client_address=(str(self.client_address[0]), int(self.client_address[1])),
        )
        app._record(rec)
        try:
            app.handle(self, rec)
        except (ConnectionError, BrokenPipeError, OSError):
            self.close_connection = True
        except Exception as exc:  # a bug in a stand-in: answer 500 and keep serving
            app.errors.append(exc)
            with contextlib.suppress(OSError):
                self.send_json(500, {"error": "server_error", "error_description": f"stand-in bug: {exc!r}"})

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    # ---- response helpers
    def send_bytes(
        self,
        status: int,
        body: bytes,
        content_type: str | None = "application/octet-stream",
        headers: dict[str, str] | None = None,
    ) -> None:
        """A complete response with Content-Length."""
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(obj).encode(), "application/json", headers)

    @property
    def stopping(self) -> threading.Event:
        return self.server.app.stopping


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, app: StandInServer, address: tuple[str, int]) -> None:
        self.app = app
        self.open_sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.open_sockets.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.lock:
            self.open_sockets.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Clients that give up (timeouts in the fault tests) are expected: no traceback on stderr."""
        import sys

        if not isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError, OSError)):
            super().handle_error(request, client_address)


class StandInServer:
    """Base class: ``start()``/``stop()`` or ``with Server(...) as srv:``; ``url``, ``requests``, ``reset()``.

    Subclasses implement ``handle(handler, request)`` and may extend ``reset()``.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._port = port
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []  # exceptions raised by handlers (stand-in bugs)
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle
    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("server not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:43567 (no trailing slash)."""
        return f"http://{self.host}:{self.port}"

    def start(self: _S) -> _S:
        if self._httpd is not None:
            return self
        self.stopping.clear()
        self._httpd = _HTTPServer(self, (self.host, self._port))
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving and drop every open connection (wakes sleeping/streaming handlers)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self.stopping.set()
        httpd.shutdown()
        with httpd.lock:
            sockets = list(httpd.open_sockets)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- recording
    def _record(self, rec: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(rec)

    def reset(self) -> None:
        """Forget recorded requests (subclasses also reset their state)."""
        with self._lock:
            self.requests.clear()
            self.errors.clear()

    def requests_to(self, path: str, method: str | None = None) -> list[RecordedRequest]:
        """Recorded requests for ``path`` (without query), optionally only one method."""
        with self._lock:
            return [r for r in self.requests if r.path == path and (method is None or r.method == method.upper())]

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self.requests[-1] if self.requests else None

    def handle(self, h: Handler, req: RecordedRequest) -> None:
        raise NotImplementedError

    def now(self) -> float:
        """The server's clock (subclasses add a test-controlled offset)."""
        return time.time()


# ---------------------------------------------------------------------- tiny JWT (HS256) without deps
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def jwt_hs256(claims: dict[str, Any], key: bytes, headers: dict[str, Any] | None = None) -> str:
    """A compact JWS (HS256) over ``claims``."""
    header = {"typ": "JWT", "alg": "HS256", **(headers or {})}
    signing_input = (
        f"{b64url(json.dumps(header, separators=(',', ':')).encode())}."
        f"{b64url(json.dumps(claims, separators=(',', ':')).encode())}"
    )
    sig = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(sig)}"


def jwt_decode_hs256(token: str, key: bytes) -> dict[str, Any] | None:
    """Claims of an HS256 JWT whose signature verifies with ``key`` (expiry NOT checked), else None."""
    try:
        h, p, s = token.split(".")
        expected = hmac.new(key, f"{h}.{p}".encode("ascii"), hashlib.sha256).digest()
        if not hmac.compare_digest(expected, b64url_decode(s)):
            return None
        claims = json.loads(b64url_decode(p))
    except (ValueError, UnicodeError):
        return None
    return claims if isinstance(claims, dict) else None


def jwt_claims(token: str) -> dict[str, Any]:
    """Unverified payload of a JWT (for test assertions)."""
    claims: dict[str, Any] = json.loads(b64url_decode(token.split(".")[1]))
    return claims


def oauth_error(
    h: Handler, status: int, error: str, description: str = "", headers: dict[str, str] | None = None, **extra: Any
) -> None:
    """An RFC 6749 section 5.2 error response."""
    body: dict[str, Any] = {"error": error}
    if description:
        body["error_description"] = description
    body.update(extra)
    h.send_json(status, body, {"Cache-Control": "no-store", "Pragma": "no-cache", **(headers or {})})
