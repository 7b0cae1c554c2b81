"""URLs judged as requests/urllib3 read them; loopback never through a proxy; only literal loopback over http."""

import socket
import threading

import pytest

import nbauth
from nbauth._transport import require_secure


@pytest.mark.parametrize(
    "url",
    [
        "http://evil.example.com\\@127.0.0.1/token",  # urllib3: evil.example.com, stdlib: 127.0.0.1
        "http://127.0.0.1:80\\@evil.example.com/token",  # the other way round
        "https://idp.example.com\\@127.0.0.1/",
        "http://127.0.0.1\t.evil.example.com/",
        "http://127.0.0.1 .evil.example.com/",
        "http://127.0.0.1\n@evil.example.com/",
    ],
)
def test_urls_the_two_parsers_read_differently_are_refused(url):
    with pytest.raises(nbauth.ConfigurationError):
        require_secure(url, "token_url")


@pytest.mark.parametrize(
    "url",
    [
        "http://app.localhost/token",
        "http://localhost.evil.example.com/",
        "http://localhost./",
        "http://127.1/",
        "http://0x7f.0.0.1/",
        "http://2130706433/",
        "http://[::ffff:7f00:1]/",
    ],
)
def test_http_only_for_literal_loopback(url):
    with pytest.raises(nbauth.AuthError, match=r"plain http|not a valid|ambiguous"):
        require_secure(url, "token_url")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/t",
        "http://LOCALHOST/t",
        "http://127.0.0.1/t",
        "http://127.8.9.10:1/t",
        "http://[::1]:8080/t",
        "https://idp.example.com/realms/x?a=b\\c".replace("\\c", "c"),
    ],
)
def test_loopback_and_https_still_pass(url):
    assert require_secure(url, "token_url") == url


def test_provider_with_ambiguous_url_is_refused():
    with pytest.raises(nbauth.ConfigurationError, match="backslash"):
        nbauth.Provider(token_url="http://evil.example.com\\@127.0.0.1/token", client_id="c")


class TrapProxy:
    """A real listener standing in for HTTP_PROXY: records every connection, answers 502."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.seen = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    self.seen.append(conn.recv(65536))
                    conn.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.fixture
def trap_proxy(monkeypatch):
    proxy = TrapProxy()
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(name, proxy.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    yield proxy
    proxy.close()


def test_loopback_token_and_api_requests_never_go_through_the_proxy(idp, trap_proxy):
    assert idp.origin.startswith("http://127.0.0.1") or idp.origin.startswith("http://localhost")
    p = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")
    api = p.get_token_by_password("alice", "alice-password", scope="openid profile")  # token + discovery
    assert api.get(p.userinfo_url).json()["sub"]  # the Bearer token to a loopback API
    api.proxies = {"http": trap_proxy.url}  # even a proxy set on the session itself
    assert api.get(p.userinfo_url).status_code == 200
    assert trap_proxy.seen == []
