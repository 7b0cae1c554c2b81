"""The loopback redirect listener against hostile local clients (real sockets, real threads)."""

from __future__ import annotations

import io
import re
import socket
import threading
import time

import pytest
import requests
from idp.helpers import browse
from ui.helpers import sso_fixture  # noqa: F401 - fixture

import nbauth
from nbauth import _clock
from nbauth._loopback import LoopbackListener, PortInUse


class Trickler:
    """A local client that sends one byte of a request line every ``every`` seconds, forever."""

    def __init__(self, port: int, every: float = 0.5) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.stop = threading.Event()
        self.closed_by_server = threading.Event()
        threading.Thread(target=self._run, args=(every,), daemon=True).start()

    def _run(self, every: float) -> None:
        line = b"GET /callback?state=" + b"x" * 10_000
        for byte in line:
            if self.stop.wait(every):
                return
            try:
                self.sock.send(bytes([byte]))
            except OSError:
                self.closed_by_server.set()
                return

    def close(self) -> None:
        self.stop.set()
        self.sock.close()


@pytest.fixture
def listener():
    lo = LoopbackListener("the-state")
    lo.start()
    yield lo
    lo.close()


def test_a_trickling_client_does_not_block_the_callback(listener):
    tricklers = [Trickler(listener.port) for _ in range(3)]
    time.sleep(0.3)  # they are connected and mid-request
    r = requests.get(listener.redirect_uri, params={"state": "the-state", "code": "c0de"}, timeout=5)
    assert r.status_code == 200
    assert listener.wait(_clock.monotonic() + 5) == {"state": "the-state", "code": "c0de"}
    for t in tricklers:
        t.close()


def test_a_stuck_connection_is_cut_after_its_deadline(monkeypatch):
    from nbauth import _loopback

    monkeypatch.setattr(_loopback, "CONNECTION_DEADLINE", 0.5)
    lo = LoopbackListener("s")
    lo.start()
    t = Trickler(lo.port, every=0.05)
    try:
        assert t.closed_by_server.wait(10), "the server never cut the trickling connection"
    finally:
        t.close()
        lo.close()


def test_wrong_host_header_is_refused(listener):
    r = requests.get(
        listener.redirect_uri,
        params={"state": "the-state", "code": "c"},
        headers={"Host": f"attacker.example:{listener.port}"},
        timeout=5,
    )
    assert r.status_code == 400
    with pytest.raises(nbauth.LoginRequired):
        listener.wait(_clock.monotonic() + 0.3)


def test_no_connection_is_accepted_after_the_first_valid_callback(listener):
    ok = requests.get(listener.redirect_uri, params={"state": "the-state", "code": "first"}, timeout=5)
    assert ok.status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.get(listener.redirect_uri, params={"state": "the-state", "code": "second"}, timeout=5)
    assert listener.wait(_clock.monotonic() + 1)["code"] == "first"
    assert listener.redirects.empty()


def test_a_fixed_port_in_use_is_a_typed_error():
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse, match=f"port {port} is in use.*port=0"):
            LoopbackListener("s").start(port)
        assert issubclass(PortInUse, nbauth.ConfigurationError)
        lo = LoopbackListener("s")
        free = socket.create_server(("127.0.0.1", 0))
        second = free.getsockname()[1]
        free.close()
        assert lo.start([port, second]) == f"http://127.0.0.1:{second}/callback"  # the first free of a list
        lo.close()


def test_wait_is_cancellable(listener):
    start = time.monotonic()
    with pytest.raises(nbauth.LoginCancelled):
        listener.wait(_clock.monotonic() + 30, cancelled=lambda: time.monotonic() - start > 0.3)
    assert time.monotonic() - start < 5


def run_browser_login(sso, timeout):
    out = io.StringIO()
    box = {}

    def go():
        try:
            box["session"] = sso.browser_login("openid profile", timeout=timeout, open_browser=False, out=out)
        except BaseException as exc:
            box["error"] = exc
        box["end"] = time.monotonic()

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not re.search(r"http://127\.0\.0\.1:\d+/callback", out.getvalue()):
        assert time.monotonic() < deadline, out.getvalue()
        time.sleep(0.02)
    port = int(re.search(r"127\.0\.0\.1:(\d+)/callback", out.getvalue()).group(1))
    return thread, box, out, port


def test_browser_login_timeout_holds_with_a_trickling_client(sso):
    thread, box, _out, port = run_browser_login(sso, timeout=5)
    start = time.monotonic()
    trickler = Trickler(port, every=1.0)
    thread.join(20)
    trickler.close()
    assert isinstance(box.get("error"), nbauth.LoginRequired), box
    assert box["end"] - start < 7.5, f"returned after {box['end'] - start:.1f} s"


def test_browser_login_signs_in_past_a_trickling_client(sso):
    thread, box, out, port = run_browser_login(sso, timeout=60)
    trickler = Trickler(port, every=1.0)
    url = re.search(r"^    (\S+)$", out.getvalue(), re.M).group(1)
    _, last = browse(requests.Session(), url, None)  # follows the redirect to the listener
    assert last.status_code == 200
    thread.join(20)
    trickler.close()
    assert box.get("session") is not None and box["session"].user == "alice", box
