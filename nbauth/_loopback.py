"""The loopback redirect listener of a browser sign-in (RFC 8252 §7.3), below any UI.

``LoopbackListener(state)``: :meth:`~LoopbackListener.start` binds ``127.0.0.1`` (an
ephemeral port, a fixed one, or the first free one of a list) and returns the
``redirect_uri``; :meth:`~LoopbackListener.wait` blocks until the redirect carrying the
expected ``state`` arrives (returns its query parameters), the deadline passes
(:class:`LoginRequired`) or the login is cancelled (:class:`LoginCancelled`);
:meth:`~LoopbackListener.close` frees the port. Redirects are also put on ``redirects`` (a
queue) for callers that wait on several sources (a pasted address, a widget).

Hostile local clients (any process of any user can connect to 127.0.0.1) cannot hold it:

- every connection runs in its own thread, so a stuck or trickling client never blocks the
  real callback, and at most :data:`MAX_CONNECTIONS` are served at once;
- every connection has a socket timeout and a hard total deadline (:data:`CONNECTION_DEADLINE`)
  after which its socket is shut;
- the ``Host`` header must name this listener (``127.0.0.1:PORT`` / ``localhost:PORT``),
  which defeats DNS rebinding from a web page (RFC 8252 §8.3 uses the IP literal);
- after the first valid callback no connection is accepted any more;
- a port that is already in use gives :class:`PortInUse`, not an ``OSError``.
"""

from __future__ import annotations

import contextlib
import http.server
import queue
import secrets
import socket
import threading
import urllib.parse
from collections.abc import Callable, Sequence
from typing import Any

from . import _clock
from ._errors import ConfigurationError, LoginCancelled, LoginRequired

__all__ = ["CALLBACK_PATH", "LoopbackListener", "PortInUse"]

CALLBACK_PATH = "/callback"
MAX_CONNECTIONS = 16
CONNECTION_DEADLINE = 10.0
READ_TIMEOUT = 5.0

_PAGE = """<!DOCTYPE html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">
<meta name="color-scheme" content="light dark"><title>{title}</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 36em; margin: 4em auto; line-height: 1.5">
<h1 style="font-size: 1.4em">{title}</h1><p>{text}</p></body></html>"""


class PortInUse(ConfigurationError):
    """The fixed redirect port asked for is taken by another program."""


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True  # never wait for a stuck handler, not even on close
    block_on_close = False
    allow_reuse_address = False  # a port in use must say so

    def __init__(self, port: int, listener: LoopbackListener) -> None:
        self.listener = listener
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(("127.0.0.1", port), _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return not self.listener.done.is_set()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):  # too many at once: drop this one
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        timer = threading.Timer(CONNECTION_DEADLINE, _shut, (request,))
        timer.daemon = True
        timer.start()
        try:
            super().process_request_thread(request, client_address)
        finally:
            timer.cancel()
            self.slots.release()


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


class _Handler(http.server.BaseHTTPRequestHandler):
    timeout = READ_TIMEOUT  # each read of a silent client
    server: _Server

    def do_GET(self) -> None:
        self.server.listener.handle(self)

    def log_message(self, format: str, *args: Any) -> None:
        return


class LoopbackListener:
    """A one-shot HTTP listener on 127.0.0.1 for one authorization redirect (RFC 8252 §7.3).

    Only ``GET /callback`` with the expected ``state`` (RFC 6749 §10.12) and this listener's
    ``Host`` is accepted; anything else (a stale tab of an earlier attempt, a favicon, a page
    that rebinds a DNS name to 127.0.0.1) gets an error page and is ignored.
    """

    def __init__(self, state: str, redirects: queue.Queue[str] | None = None) -> None:
        self._state = state
        self.redirects: queue.Queue[str] = redirects if redirects is not None else queue.Queue()
        self.done = threading.Event()
        self._server: _Server | None = None
        self.port = 0
        self.redirect_uri = ""

    def start(self, port: int | Sequence[int] = 0) -> str:
        """Listen on ``port`` (0: any free one; a list: the first free one) and return the redirect URI."""
        ports = [port] if isinstance(port, int) else list(port)
        if not ports or any(isinstance(p, bool) or not isinstance(p, int) or not 0 <= p <= 65535 for p in ports):
            raise ConfigurationError("port must be 0 (any free port), a port number or a list of port numbers")
        for candidate in ports:
            try:
                self._server = _Server(candidate, self)
                break
            except OSError:
                continue
        else:
            raise PortInUse(
                f"the redirect port {', '.join(map(str, ports))} is in use by another program: close "
                "it, or pass port=0 (any free port) if the provider allows any loopback port"
            )
        self.port = self._server.server_address[1]
        self.redirect_uri = f"http://127.0.0.1:{self.port}{CALLBACK_PATH}"
        threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="nbauth-loopback", daemon=True
        ).start()
        return self.redirect_uri

    def wait(self, deadline: float, cancelled: Callable[[], bool] | None = None) -> dict[str, str]:
        """The callback's query parameters, waiting until ``deadline`` (``_clock.monotonic()`` seconds)."""
        while True:
            if cancelled is not None and cancelled():
                raise LoginCancelled("the browser sign-in was cancelled")
            left = deadline - _clock.monotonic()
            if left <= 0:
                raise LoginRequired("no browser sign-in came back in time: run the login again")
            try:
                url = self.redirects.get(timeout=min(0.2, left))
            except queue.Empty:
                continue
            return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query, keep_blank_values=True))

    def _host_ok(self, host: str | None) -> bool:
        return (host or "").strip().lower() in (f"127.0.0.1:{self.port}", f"localhost:{self.port}")

    def handle(self, request: http.server.BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(request.path)
        params = dict(urllib.parse.parse_qsl(parts.query, keep_blank_values=True))
        if not self._host_ok(request.headers.get("Host")):
            self._answer(request, 400, "Wrong address", "This listener answers only at 127.0.0.1.")
        elif parts.path != CALLBACK_PATH:
            self._answer(request, 404, "Not found", "This address is not part of the sign-in.")
        elif not secrets.compare_digest(params.get("state", "").encode(), self._state.encode()):
            self._answer(
                request,
                400,
                "Sign-in link out of date",
                "This answer belongs to another sign-in attempt. Go back to your notebook and use the "
                "link it shows now.",
            )
        elif self.done.is_set():
            self._answer(request, 409, "Already signed in", "This sign-in was completed already.")
        else:
            self.done.set()  # the first valid callback wins; no connection is accepted after it
            if "error" in params:
                self._answer(
                    request,
                    200,
                    "Sign-in not completed",
                    "The provider did not sign you in. Go back to your notebook to see why.",
                )
            else:
                self._answer(request, 200, "Signed in", "You can close this tab and go back to your notebook.")
            self.redirects.put(f"http://127.0.0.1:{self.port}{request.path}")

    @staticmethod
    def _answer(request: http.server.BaseHTTPRequestHandler, status: int, title: str, text: str) -> None:
        body = _PAGE.format(title=title, text=text).encode()
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("Referrer-Policy", "no-referrer")
        request.send_header("Connection", "close")
        request.end_headers()
        request.wfile.write(body)
        request.close_connection = True

    def close(self) -> None:
        """Stop listening now (handlers still running are daemon threads with their own deadline)."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
