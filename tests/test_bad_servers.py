"""Hostile and broken token endpoints: every one ends in a typed error, fast, with no secret shown."""

import datetime
import logging
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from servers.faulty import (
    deep_json,
    empty,
    gzip_bomb,
    html,
    huge,
    json_response,
    no_answer,
    redirect,
    reset_connection,
    sequence,
    server_error,
    text,
    trickle,
)

import nbauth

SECRET = "client-secret-7f3a9"
PASSWORD = "user-password-c41d"


def provider(faulty, timeout=2.0, **kw):
    return nbauth.Provider(f"{faulty.url}/token", client_id="app", client_secret=SECRET, timeout=timeout, **kw)


def login(faulty, **kw):
    return provider(faulty, **kw).get_token_by_password("alice", PASSWORD)


def assert_clean(err):
    text_ = f"{err!s} {err!r} {err.args}"
    assert SECRET not in text_ and PASSWORD not in text_


@pytest.mark.parametrize(
    ("behaviour", "match"),
    [
        (html(), "HTML page"),
        (html(status=500), "HTTP 500"),
        (empty(), "empty body"),
        (text("ok, not json"), "not JSON"),
        (text("{'broken': json", content_type="application/json"), "not JSON"),
        (deep_json(), "nested too deeply|not JSON"),
        (json_response({"token_type": "Bearer"}), "no access_token"),
        (json_response({"access_token": "x", "token_type": "mac"}), "Bearer"),
        (json_response({"access_token": "x", "expires_in": -10}), "negative"),
        (json_response({"access_token": "x", "expires_in": "tomorrow"}), "not a number"),
        (json_response({"hello": "world"}, status=404), "HTTP 404"),
        (json_response([1, 2, 3]), "not a JSON object"),
    ],
)
def test_unusable_answers_are_provider_errors(faulty, behaviour, match):
    faulty.set("POST", "/token", behaviour)
    with pytest.raises(nbauth.ProviderError, match=match) as err:
        login(faulty)
    assert err.value.url and "/token" in err.value.url
    assert_clean(err.value)


def test_huge_body_is_not_read_into_memory(faulty):
    faulty.set("POST", "/token", huge(50 * 1024 * 1024))
    start = time.monotonic()
    with pytest.raises(nbauth.ProviderError, match="more than 1024 KiB"):
        login(faulty)
    assert time.monotonic() - start < 5


def test_decompression_bomb_is_capped(faulty):
    faulty.set("POST", "/token", gzip_bomb(512 * 1024 * 1024))
    with pytest.raises(nbauth.ProviderError, match="more than"):
        login(faulty)


@pytest.mark.parametrize("behaviour", [no_answer(60), trickle(0.5), trickle(0.5, headers_first=False)])
def test_silent_or_trickling_server_times_out(faulty, behaviour):
    faulty.set("POST", "/token", behaviour)
    start = time.monotonic()
    with pytest.raises(nbauth.ProviderError, match=r"timeout|did not answer"):
        login(faulty, timeout=1.5)
    assert time.monotonic() - start < 1.5 + 6


def test_reset_connection(faulty):
    faulty.set("POST", "/token", reset_connection())
    with pytest.raises(nbauth.ProviderError, match=r"connection|broke"):
        login(faulty)


def test_refused_connection():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    p = nbauth.Provider(f"http://127.0.0.1:{port}/token", client_id="a", client_secret=SECRET, timeout=2)
    with pytest.raises(nbauth.ProviderError, match="could not connect") as err:
        p.get_token_by_client_credentials()
    assert err.value.status is None


def test_redirect_is_never_followed(faulty):
    faulty.set("POST", "/token", redirect(f"{faulty.url}/elsewhere?x=1", status=307))
    with pytest.raises(nbauth.ProviderError, match="redirect") as err:
        login(faulty)
    assert not faulty.was_requested("/elsewhere")
    assert err.value.status == 307
    assert_clean(err.value)


@pytest.mark.parametrize(("retry_after", "expected"), [(None, None), (7, 7.0), (100000, 120.0)])
def test_5xx_is_a_provider_error_with_retry_after(faulty, retry_after, expected):
    faulty.set("POST", "/token", server_error(503, retry_after=retry_after))
    with pytest.raises(nbauth.ProviderError) as err:
        login(faulty)
    assert err.value.status == 503 and err.value.retry_after == expected


def test_5xx_with_oauth_error_body_is_a_provider_error(faulty):
    faulty.set("POST", "/token", json_response({"error": "server_error"}, status=500))
    with pytest.raises(nbauth.ProviderError, match="500"):
        login(faulty)


def test_error_description_echoing_secrets_is_redacted(faulty):
    echo = {"error": "invalid_grant", "error_description": f"bad password {PASSWORD} for client secret {SECRET}"}
    faulty.set("POST", "/token", json_response(echo, status=400))
    with pytest.raises(nbauth.InvalidGrant) as err:
        login(faulty)
    assert_clean(err.value)
    assert "***" in str(err.value)


def test_401_without_body_is_invalid_client(faulty):
    faulty.set("POST", "/token", empty(status=401))
    with pytest.raises(nbauth.InvalidClient):
        login(faulty)


def test_200_with_error_body_is_still_the_error(faulty):
    faulty.set("POST", "/token", json_response({"error": "invalid_grant"}, status=200))
    with pytest.raises(nbauth.InvalidGrant):
        login(faulty)


def test_hostile_error_text_is_sanitised(faulty):
    evil = {"error": "invalid_grant\u202e", "error_description": "x" * 100_000 + "\x1b[31m"}
    faulty.set("POST", "/token", json_response(evil, status=400))
    with pytest.raises(nbauth.OAuthError) as err:
        login(faulty)
    assert len(str(err.value)) < 800 and "\x1b" not in str(err.value) and "\u202e" not in str(err.value)


def test_no_secret_in_debug_logs_on_failure(faulty, caplog):
    faulty.set("POST", "/token", json_response({"error": "invalid_grant", "error_description": PASSWORD}, 400))
    with caplog.at_level(logging.DEBUG), pytest.raises(nbauth.InvalidGrant):
        login(faulty)
    assert PASSWORD not in caplog.text and SECRET not in caplog.text


# ---------------------------------------------------------------- TLS with a private CA
@pytest.fixture(scope="module")
def tls_server(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = d / "ca.pem"
    key_pem = d / "key.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = b'{"access_token": "tls-ok", "token_type": "Bearer", "expires_in": 60}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert_pem, key_pem)
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}", str(cert_pem)
    server.shutdown()


def test_tls_failure_says_which_ca_setting_to_use(tls_server, monkeypatch):
    url, _ = tls_server
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(nbauth.ProviderError, match=r"verify=.*REQUESTS_CA_BUNDLE"):
        nbauth.Provider(f"{url}/token", client_id="a", client_secret=SECRET).get_token_by_client_credentials()


def test_private_ca_bundle_by_argument(tls_server):
    url, ca = tls_server
    p = nbauth.Provider(f"{url}/token", client_id="a", client_secret=SECRET, verify=ca)
    assert p.get_token_by_client_credentials().token.access_token == "tls-ok"


def test_private_ca_bundle_from_requests_environment(tls_server, monkeypatch):
    url, ca = tls_server
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", ca)
    p = nbauth.Provider(f"{url}/token", client_id="b", client_secret=SECRET)
    assert p.get_token_by_client_credentials().token.access_token == "tls-ok"


def test_https_proxy_environment_is_honoured(faulty, monkeypatch, tls_server):
    # a proxy that is not there: the error names the proxy settings; loopback never goes through it
    url, ca = tls_server
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    remote = nbauth.Provider("https://idp.example.invalid/token", client_id="c", client_secret=SECRET, timeout=3)
    with pytest.raises(nbauth.ProviderError, match="proxy"):
        remote.get_token_by_client_credentials()
    p = nbauth.Provider(f"{url}/token", client_id="c", client_secret=SECRET, verify=ca, timeout=3)
    assert p.get_token_by_client_credentials(force=True).token.access_token == "tls-ok"


# ---------------------------------------------------------------- misbehaving device endpoints (RFC 8628)
@pytest.fixture
def fake_time(monkeypatch):
    """Zero the waits (stamina's testing switch idea): sleeping advances a fake monotonic clock."""
    from nbauth import _clock

    now = [1000.0]
    monkeypatch.setattr(_clock, "monotonic", lambda: now[0])
    monkeypatch.setattr(_clock, "sleep", lambda s: now.__setitem__(0, now[0] + s))
    return now


DEVICE = {
    "device_code": "dev-code-123",
    "user_code": "WXYZ-1234",
    "verification_uri": "https://idp.example/device",
    "expires_in": 60,
}


def device_provider(faulty):
    return nbauth.Provider(
        f"{faulty.url}/token",
        device_authorization_url=f"{faulty.url}/device",
        client_id="pub",
        client_auth="none",
        timeout=2,
    )


def run_device(faulty):
    from nbauth.ui._text import device_login_text

    return device_login_text(device_provider(faulty), None, out=__import__("io").StringIO())


@pytest.mark.parametrize("interval", [None, 0])
def test_device_missing_or_zero_interval_polls_every_5s(faulty, fake_time, interval):
    body = dict(DEVICE) if interval is None else dict(DEVICE, interval=interval)
    faulty.set("POST", "/device", json_response(body))
    pending = json_response({"error": "authorization_pending"}, status=400)
    faulty.set("POST", "/token", sequence(pending, pending, json_response({"access_token": "ok", "expires_in": 60})))
    start = fake_time[0]
    assert run_device(faulty).token.access_token == "ok"
    assert fake_time[0] - start == 15  # three waits of 5 s


def test_device_repeated_slow_down(faulty, fake_time):
    faulty.set("POST", "/device", json_response(dict(DEVICE, interval=1, expires_in=600)))
    slow = json_response({"error": "slow_down"}, status=400)
    faulty.set("POST", "/token", sequence(slow, slow, slow, json_response({"access_token": "ok"})))
    start = fake_time[0]
    run_device(faulty)
    assert fake_time[0] - start == 1 + 6 + 11 + 16


def test_device_unknown_error_code(faulty, fake_time):
    faulty.set("POST", "/device", json_response(DEVICE))
    faulty.set("POST", "/token", json_response({"error": "something_new", "error_description": "dev-code-123"}, 400))
    with pytest.raises(nbauth.OAuthError) as err:
        run_device(faulty)
    assert err.value.error == "something_new" and "dev-code-123" not in str(err.value)


def test_device_verification_uri_must_be_http(faulty, fake_time):
    faulty.set("POST", "/device", json_response(dict(DEVICE, verification_uri="javascript:alert(1)")))
    with pytest.raises(nbauth.ProviderError, match="verification_uri"):
        run_device(faulty)
    assert not faulty.was_requested("/token")


def test_device_code_expiry_ends_polling(faulty, fake_time):
    faulty.set("POST", "/device", json_response(dict(DEVICE, expires_in=20, interval=5)))
    faulty.set("POST", "/token", json_response({"error": "authorization_pending"}, status=400))
    with pytest.raises(nbauth.ExpiredToken):
        run_device(faulty)
    assert faulty.hits("/token") == 3


def test_device_endpoint_html(faulty, fake_time):
    faulty.set("POST", "/device", html())
    with pytest.raises(nbauth.ProviderError, match="HTML"):
        run_device(faulty)
