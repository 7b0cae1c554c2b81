"""A scriptable misbehaving HTTP server for fault-injection tests.

    with FaultyServer() as srv:                       # or the ``faulty`` fixture
        srv.set("POST", "/token", html("<h1>Login</h1>"))
        srv.set("GET", "/slow", no_answer(30))        # stop() interrupts the sleep
        srv.set("*", "/flaky", sequence(server_error(503, retry_after=1), json_response({"ok": True})))
        requests.post(srv.url + "/token", timeout=5)
        srv.requests[-1].form                          # what the client sent

A behaviour is any callable ``(handler, request) -> None`` (see ``Behaviour``); the helpers below build
the usual ones. Routes are matched on (METHOD, path without query); method ``"*"`` matches any method.
Unmatched requests get ``404 {"error": "not_found"}`` (change ``srv.default``).

Every blocking behaviour waits on ``handler.stopping`` and ``stop()`` shuts all open connections
down, so teardown is fast even while a trickle / no-answer / huge-body handler is running.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import struct
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._base import Handler, RecordedRequest, StandInServer

Behaviour = Callable[[Handler, RecordedRequest], None]

MB = 1024 * 1024


# ------------------------------------------------------------------------------ behaviours
@dataclass
class Respond:
    """A complete response with Content-Length."""

    status: int = 200
    body: bytes = b""
    content_type: str | None = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    def __call__(self, h: Handler, req: RecordedRequest) -> None:
        h.send_bytes(self.status, self.body, self.content_type, dict(self.headers))


def json_response(
    obj: Any, status: int = 200, headers: Mapping[str, str] | None = None, content_type: str = "application/json"
) -> Respond:
    """``obj`` as JSON with any status and headers (e.g. an OAuth error, or a token without access_token)."""
    return Respond(status, json.dumps(obj).encode(), content_type, dict(headers or {}))


def html(
    body: str = "<!DOCTYPE html><html><body><h1>Sign in</h1><form></form></body></html>",
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Respond:
    """An HTML page (a login page / captive portal / proxy error instead of JSON)."""
    return Respond(status, body.encode(), "text/html; charset=utf-8", dict(headers or {}))


def empty(status: int = 200, headers: Mapping[str, str] | None = None, content_type: str | None = None) -> Respond:
    """An empty body (Content-Length: 0), by default without Content-Type."""
    return Respond(status, b"", content_type, dict(headers or {}))


def text(
    body: str = "this is not JSON",
    status: int = 200,
    content_type: str = "text/plain; charset=utf-8",
    headers: Mapping[str, str] | None = None,
) -> Respond:
    """A non-JSON text body (set content_type="application/json" for a lying Content-Type)."""
    return Respond(status, body.encode(), content_type, dict(headers or {}))


def deep_json(depth: int = 100_000, status: int = 200) -> Respond:
    """A valid but deeply nested JSON document: ``[[[...]]]`` with ``depth`` levels (json.loads: RecursionError)."""
    return Respond(status, b"[" * depth + b"]" * depth, "application/json")


@dataclass
class Raw:
    """Write these raw bytes to the socket (no status line added), then close the connection."""

    data: bytes

    def __call__(self, h: Handler, req: RecordedRequest) -> None:
        h.close_connection = True
        h.wfile.write(self.data)
        h.wfile.flush()


def raw(data: bytes) -> Raw:
    """Raw bytes, e.g. ``raw(b"HTTP/1.1 200 OK\\r\\nContent-Length: 10\\r\\n\\r\\nabc")`` (truncated body)."""
    return Raw(data)


@dataclass
class Huge:
    """A body of ``size`` bytes streamed in chunks (never built in memory at once)."""

    size: int = 50 * MB
    content_type: str = "application/json"
    fill: bytes = b"a"
    prefix: bytes = b""
    chunk_size: int = 64 * 1024
    send_length: bool = True  # False: no Content-Length, the body ends when the connection closes
    status: int = 200

    def __call__(self, h: Handler, req: RecordedRequest) -> None:
        h.send_response(self.status)
        h.send_header("Content-Type", self.content_type)
        if self.send_length:
            h.send_header("Content-Length", str(self.size))
        else:
            h.send_header("Connection", "close")
            h.close_connection = True
        h.end_headers()
        chunk = (self.fill * (self.chunk_size // max(len(self.fill), 1) + 1))[: self.chunk_size]
        remaining = self.size
        first = self.prefix[: self.size]
        h.wfile.write(first)
        remaining -= len(first)
        while remaining > 0 and not h.stopping.is_set():
            part = chunk if remaining >= len(chunk) else chunk[:remaining]
            h.wfile.write(part)
            remaining -= len(part)
        h.wfile.flush()


def huge(
    size: int = 50 * MB,
    content_type: str = "application/json",
    fill: bytes = b"a",
    prefix: bytes = b"",
    send_length: bool = True,
) -> Huge:
    """A huge body (default 50 MB) streamed in 64 KiB chunks; ``prefix`` e.g. ``b'{"access_token": "'``."""
    return Huge(size, content_type, fill, prefix, send_length=send_length)


@functools.lru_cache(maxsize=4)
def gzip_bomb_bytes(inflated_size: int = 1024 * MB, fill: bytes = b" ") -> bytes:
    """A gzip stream (~1/1000 of the size) that inflates to ``inflated_size`` bytes of ``fill``.

    Built from one full-flushed deflate block of 1 MiB repeated (fast: ~0.3 s per GiB, for the CRC).
    """
    block = (fill * (MB // len(fill) + 1))[:MB]
    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    segment = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)
    n, rest = divmod(inflated_size, MB)
    last = comp.compress(block[:rest]) + comp.flush(zlib.Z_FINISH)
    crc = 0
    for _ in range(n):
        crc = zlib.crc32(block, crc)
    crc = zlib.crc32(block[:rest], crc)
    header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
    return header + segment * n + last + struct.pack("<II", crc & 0xFFFFFFFF, inflated_size & 0xFFFFFFFF)


@dataclass
class GzipBomb:
    """``Content-Encoding: gzip`` body that is small on the wire and inflates to ``inflated_size`` bytes."""

    inflated_size: int = 1024 * MB
    content_type: str = "application/json"
    status: int = 200

    def __call__(self, h: Handler, req: RecordedRequest) -> None:
        data = gzip_bomb_bytes(self.inflated_size)
        h.send_bytes(self.status, data, self.content_type, {"Content-Encoding": "gzip"})


def gzip_bomb(inflated_size: int = 1024 * MB, content_type: str = "application/json") -> GzipBomb:
    """A decompression bomb: ~1 MB of gzip inflating to ``inflated_size`` (default 1 GiB) of spaces."""
    return GzipBomb(inflated_size, content_type)


@dataclass
class NoAnswer:
    """Send nothing for ``seconds`` (interrupted by stop()); then run ``then``, or close without answering."""

    seconds: float = 3600.0
    then: Behaviour | None = None

    def __call__(self, h: Handler, req: RecordedRequest) -> None:
        if h.stopping.wait(self.seconds) or self.then is None:
            h.close_connection = True
            return
        self.then(h, req)


def no_answer(seconds: float = 3600.0, then: Behaviour | None = None) -> NoAnswer:
    """No response at all for ``seconds`` (a read timeout test); afterwards ``then`` or a silent close."""
    return NoAnswer(seconds, then)


def hang_up() -> NoAnswer:
    """Close the connection (FIN) without sending a response: requests raises ConnectionError."""
    return NoAnswer(0.0, None)


@dataclass
class Trickle:
    """One byte every ``interval`` seconds, forever (until the client goes away or the server stops).

    headers_first=True: a complete header block (Content-Length: 1 GB) then the body trickles;
    False: even the status line and headers trickle, so no response ever completes.
    """

    interval: float = 1.0
    headers_first: bool = True
    byte: bytes = b" "
    content_type: str = "application/json"

    def __call__(self, h: Handler, req: RecordedRequest) -> None:
        h.close_connection = True
        if self.headers_first:
            h.send_response(200)
            h.send_header("Content-Type", self.content_type)
            h.send_header("Content-Length", str(1 << 30))
            h.end_headers()
            h.wfile.flush()
            source = iter(lambda: self.byte[:1], b"")  # endless
        else:
            head = b"HTTP/1.1 200 OK\r\nX-Trickle: "
            source = (head[i : i + 1] if i < len(head) else b"a" for i in range(1 << 62))
        for b in source:
            h.wfile.write(b)
            h.wfile.flush()
            if h.stopping.wait(self.interval):
                return


def trickle(interval: float = 1.0, headers_first: bool = True, byte: bytes = b" ") -> Trickle:
    """A slow trickle: one byte every ``interval`` s forever (defeats per-read timeouts)."""
    return Trickle(interval, headers_first, byte)


@dataclass
class Reset:
    """Abort the connection with a TCP RST (SO_LINGER 0 close) before sending anything."""

    def __call__(self, h: Handler, req: RecordedRequest) -> None:
        h.close_connection = True
        sock: socket.socket = h.connection
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        with contextlib.suppress(OSError):
            h.rfile.close()  # drop the makefile() reference so close() really closes the fd now
        sock.close()


def reset_connection() -> Reset:
    """An abrupt connection reset before any response (requests: ConnectionError / ConnectionResetError)."""
    return Reset()


def redirect(location: str, status: int = 302, headers: Mapping[str, str] | None = None) -> Respond:
    """A 3xx to ``location`` (relative or absolute); check ``srv.was_requested(path)`` afterwards."""
    return Respond(status, b"", None, {"Location": location, **dict(headers or {})})


def server_error(
    status: int = 503, retry_after: int | str | None = None, body: Any = None, headers: Mapping[str, str] | None = None
) -> Respond:
    """A 5xx with a JSON body (default ``{"error": "temporarily_unavailable"}``), optionally ``Retry-After``."""
    hdrs = dict(headers or {})
    if retry_after is not None:
        hdrs["Retry-After"] = str(retry_after)
    payload = {"error": "temporarily_unavailable"} if body is None else body
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return Respond(status, data, "application/json", hdrs)


class SequenceBehaviour:
    """Use ``behaviours`` one after another, one per request; the last one repeats."""

    def __init__(self, behaviours: Sequence[Behaviour]) -> None:
        if not behaviours:
            raise ValueError("sequence() needs at least one behaviour")
        self.behaviours = list(behaviours)
        self.calls = 0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"sequence({', '.join(map(repr, self.behaviours))})"

    def __call__(self, h: Handler, req: RecordedRequest) -> None:
        with self._lock:
            b = self.behaviours[min(self.calls, len(self.behaviours) - 1)]
            self.calls += 1
        b(h, req)


def sequence(*behaviours: Behaviour) -> SequenceBehaviour:
    """``sequence(server_error(503), json_response(token))``: first request 503, then the token forever."""
    return SequenceBehaviour(behaviours)


NOT_FOUND = json_response({"error": "not_found"}, status=404)


# ------------------------------------------------------------------------------ server
class FaultyServer(StandInServer):
    """``set(method, path, behaviour)``; ``requests``; ``reset()`` (routes AND recorded requests)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.routes: dict[tuple[str, str], Behaviour] = {}
        self.default: Behaviour = NOT_FOUND

    def set(self, method: str, path: str, behaviour: Behaviour) -> FaultyServer:
        """Route (method, path) to ``behaviour``; method "*" = any method. Returns self (chainable)."""
        if not path.startswith("/"):
            raise ValueError("path must start with '/'")
        self.routes[(method.upper(), path)] = behaviour
        return self

    def reset(self) -> None:
        super().reset()
        self.routes.clear()
        self.default = NOT_FOUND

    def was_requested(self, path: str, method: str | None = None) -> bool:
        return bool(self.requests_to(path, method))

    def hits(self, path: str, method: str | None = None) -> int:
        return len(self.requests_to(path, method))

    def handle(self, h: Handler, req: RecordedRequest) -> None:
        behaviour = self.routes.get((req.method, req.path)) or self.routes.get(("*", req.path)) or self.default
        behaviour(h, req)
