"""Tests of the stand-in servers themselves (tests/servers): requests only, no nbauth."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import zlib
from typing import Any

import pytest
import requests
from servers import jwt_claims
from servers.faulty import (
    FaultyServer,
    deep_json,
    empty,
    gzip_bomb,
    hang_up,
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
from servers.fusio import SEED_CLIENT_ID, SEED_CLIENT_SECRET, FusioServer
from servers.seed001 import CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME, Seed001Server

# ====================================================================== Fusio (seed 003)
FUSIO_APP = ("fusio-app", "fusio-secret")


def test_fusio_consumer_login(fusio: FusioServer) -> None:
    r = requests.post(f"{fusio.url}/consumer/login", json={"username": "test", "password": "test-password"}, timeout=5)
    assert r.status_code == 200 and set(r.json()) == {"token"}
    token = r.json()["token"]
    header = json.loads(base64.urlsafe_b64decode(token.split(".")[0] + "=="))
    assert header["alg"] == "HS256"
    claims = jwt_claims(token)
    assert {"sub", "iat", "exp", "name"} <= claims.keys() and claims["name"] == "test"
    assert claims["exp"] - claims["iat"] == fusio.login_ttl
    who = requests.get(f"{fusio.url}/backend/whoami", headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert who.status_code == 200 and who.json()["name"] == "test"

    bad = requests.post(f"{fusio.url}/consumer/login", json={"username": "test", "password": "x"}, timeout=5)
    assert bad.status_code == 401 and bad.json()["success"] is False
    form = requests.post(f"{fusio.url}/consumer/login", data={"username": "test", "password": "x"}, timeout=5)
    assert form.status_code == 400 and "error" in form.json()
    assert fusio.requests[0].json == {"username": "test", "password": "test-password"}


def test_fusio_client_credentials_like_the_seed(fusio: FusioServer) -> None:
    basic = base64.b64encode(f"{SEED_CLIENT_ID}:{SEED_CLIENT_SECRET}".encode()).decode()
    before = time.time()
    r = requests.post(
        f"{fusio.url}/authorization/token",
        timeout=5,
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/x-www-form-urlencoded"},
        data="grant_type=client_credentials&scope=authorization,backend",
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token", "scope"}
    assert body["token_type"] == "bearer"
    assert body["scope"] == "authorization"  # the seed's app may only have "authorization"
    # expires_in is an ABSOLUTE epoch timestamp
    assert before + fusio.access_ttl - 2 <= body["expires_in"] <= time.time() + fusio.access_ttl + 2
    assert jwt_claims(body["access_token"])["exp"] == body["expires_in"]
    rec = fusio.requests[-1]
    assert rec.form == {"grant_type": "client_credentials", "scope": "authorization,backend"}
    assert rec.basic() == (SEED_CLIENT_ID, SEED_CLIENT_SECRET)


def test_fusio_comma_scopes(fusio: FusioServer) -> None:
    url = f"{fusio.url}/authorization/token"
    r = requests.post(
        url, auth=FUSIO_APP, data={"grant_type": "client_credentials", "scope": "authorization,backend"}, timeout=5
    )
    assert r.json()["scope"] == "authorization,backend"
    spaced = requests.post(
        url, auth=FUSIO_APP, timeout=5, data={"grant_type": "client_credentials", "scope": "authorization backend"}
    )
    assert spaced.status_code == 400 and spaced.json()["error"] == "invalid_scope"
    unscoped = requests.post(url, auth=FUSIO_APP, data={"grant_type": "client_credentials"}, timeout=5)
    assert unscoped.json()["scope"] == "authorization,backend,consumer"


def test_fusio_password_refresh_rotation(fusio: FusioServer) -> None:
    url = f"{fusio.url}/authorization/token"
    r = requests.post(
        url,
        auth=FUSIO_APP,
        timeout=5,
        data={"grant_type": "password", "username": "test", "password": "test-password", "scope": "backend"},
    )
    assert r.status_code == 200, r.text
    t1 = r.json()
    bad = requests.post(
        url, auth=FUSIO_APP, timeout=5, data={"grant_type": "password", "username": "test", "password": "nope"}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"

    def refresh(token):  # as in the seed: client credentials in the body
        body = {"grant_type": "refresh_token", "refresh_token": token["refresh_token"]}
        return requests.post(url, timeout=5, data={**body, "client_id": FUSIO_APP[0], "client_secret": FUSIO_APP[1]})

    r = refresh(t1)
    assert r.status_code == 200, r.text
    t2 = r.json()
    assert t2["refresh_token"] != t1["refresh_token"] and t2["scope"] == "backend"
    reuse = refresh(t1)
    assert reuse.status_code == 400 and reuse.json() == {
        "error": "invalid_grant",
        "error_description": "Invalid refresh token",
    }
    # whoami: valid / missing / expired
    who = requests.get(
        f"{fusio.url}/backend/whoami", headers={"Authorization": f"Bearer {t2['access_token']}"}, timeout=5
    )
    assert who.status_code == 200 and who.json()["name"] == "test" and who.json()["scope"] == ["backend"]
    assert requests.get(f"{fusio.url}/backend/whoami", timeout=5).status_code == 401
    fusio.expire_access_tokens()
    expired = requests.get(
        f"{fusio.url}/backend/whoami", headers={"Authorization": f"Bearer {t2['access_token']}"}, timeout=5
    )
    assert expired.status_code == 401 and "invalid_token" in expired.headers["WWW-Authenticate"]


def test_fusio_authorization_code_and_errors(fusio: FusioServer) -> None:
    url = f"{fusio.url}/authorization/token"
    code = fusio.register_code(username="admin", scope="authorization,consumer", redirect_uri="http://127.0.0.1/cb")
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": "http://127.0.0.1/cb"}
    r = requests.post(url, auth=FUSIO_APP, data=data, timeout=5)
    assert r.status_code == 200 and r.json()["scope"] == "authorization,consumer"
    again = requests.post(url, auth=FUSIO_APP, data=data, timeout=5)
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    wrong = requests.post(url, auth=("fusio-app", "wrong"), data={"grant_type": "client_credentials"}, timeout=5)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
    nogrant = requests.post(url, auth=FUSIO_APP, data={"grant_type": "implicit"}, timeout=5)
    assert nogrant.status_code == 400 and nogrant.json()["error"] == "unsupported_grant_type"
    as_json = requests.post(url, auth=FUSIO_APP, json={"grant_type": "client_credentials"}, timeout=5)
    assert as_json.status_code == 400 and as_json.json()["error"] == "invalid_request"


def test_fusio_configurable_ttl_and_reset() -> None:
    with FusioServer(users={"u": "p"}, access_ttl=5) as srv:
        r = requests.post(
            f"{srv.url}/authorization/token",
            auth=FUSIO_APP,
            timeout=5,
            data={"grant_type": "password", "username": "u", "password": "p"},
        )
        assert abs(r.json()["expires_in"] - (time.time() + 5)) < 2
        srv.reset()
        assert srv.requests == [] and srv.tokens == {}


# ====================================================================== seed 001 JSON API
def test_seed001_rejects_form_bodies(seed001: Seed001Server) -> None:
    r = requests.post(
        f"{seed001.url}/v1/auth/token",
        timeout=5,
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
    )
    assert r.status_code == 415 and r.json()["error"] == "unsupported_media_type"
    bad_json = requests.post(
        f"{seed001.url}/v1/auth/token", data=b"{nope", timeout=5, headers={"Content-Type": "application/json"}
    )
    assert bad_json.status_code == 400


def test_seed001_client_then_user_token(seed001: Seed001Server) -> None:
    url = f"{seed001.url}/v1/auth/token"
    r = requests.post(
        url,
        json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials"},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    client = r.json()
    assert set(client) == {"token_type", "access_token", "refresh_token"} and client["token_type"] == "Bearer"
    claims = jwt_claims(client["access_token"])
    assert claims["exp"] - claims["iat"] == 604800 and claims["type"] == "accessToken"

    user_body = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "grant_type": "password",
        "username": USERNAME,
        "password": PASSWORD,
    }
    no_bearer = requests.post(url, json=user_body, timeout=5)
    assert no_bearer.status_code == 401 and no_bearer.json()["error"] == "unauthorized"
    r = requests.post(url, json=user_body, headers={"Authorization": f"Bearer {client['access_token']}"}, timeout=5)
    assert r.status_code == 200, r.text
    user = r.json()
    assert "expires_in" not in user and user["token_type"] == "Bearer"
    wrong = requests.post(
        url,
        json={**user_body, "password": "x"},
        timeout=5,
        headers={"Authorization": f"Bearer {client['access_token']}"},
    )
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"

    def get(path: str, token: str | None) -> requests.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return requests.get(f"{seed001.url}{path}", headers=headers, timeout=5)

    assert get("/v1/rooms", client["access_token"]).status_code == 200
    assert get("/v1/rooms", user["access_token"]).json()["data"]
    assert get("/v1/rooms", None).status_code == 401
    assert get("/v1/me", client["access_token"]).status_code == 403
    me = get("/v1/me", user["access_token"])
    assert me.status_code == 200 and me.json()["username"] == USERNAME

    # refresh: JSON body, rotation
    refresh = {"grant_type": "refresh_token", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    r = requests.post(url, json={**refresh, "refresh_token": user["refresh_token"]}, timeout=5)
    assert r.status_code == 200 and get("/v1/me", r.json()["access_token"]).status_code == 200
    reuse = requests.post(url, json={**refresh, "refresh_token": user["refresh_token"]}, timeout=5)
    assert reuse.status_code == 400 and reuse.json()["error"] == "invalid_grant"
    seed001.expire_access_tokens()
    assert get("/v1/me", r.json()["access_token"]).status_code == 401
    assert seed001.requests[0].content_type == "application/json"


def test_seed001_configurable_lifetime() -> None:
    with Seed001Server(access_ttl=2) as srv:
        r = requests.post(
            f"{srv.url}/v1/auth/token",
            timeout=5,
            json={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials"},
        )
        claims = jwt_claims(r.json()["access_token"])
        assert claims["exp"] - claims["iat"] == 2
        srv.clock_offset = 3
        rooms = requests.get(
            f"{srv.url}/v1/rooms", timeout=5, headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        )
        assert rooms.status_code == 401


# ====================================================================== faulty server
def test_faulty_simple_bodies(faulty: FaultyServer) -> None:
    faulty.set("POST", "/json", json_response({"error": "invalid_grant"}, status=400, headers={"X-Test": "1"}))
    faulty.set("GET", "/html", html())
    faulty.set("*", "/empty", empty(status=200))
    faulty.set("GET", "/text", text("oops", status=200))
    faulty.set("GET", "/lying", text("<html>", content_type="application/json"))
    r = requests.post(f"{faulty.url}/json?x=1", data={"a": "b"}, timeout=5)
    assert r.status_code == 400 and r.json() == {"error": "invalid_grant"} and r.headers["X-Test"] == "1"
    r = requests.get(f"{faulty.url}/html", timeout=5)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html") and "<h1>" in r.text
    r = requests.delete(f"{faulty.url}/empty", timeout=5)
    assert r.status_code == 200 and r.content == b"" and "Content-Type" not in r.headers
    with pytest.raises(requests.JSONDecodeError):
        requests.get(f"{faulty.url}/text", timeout=5).json()
    with pytest.raises(requests.JSONDecodeError):
        requests.get(f"{faulty.url}/lying", timeout=5).json()
    assert requests.get(f"{faulty.url}/unset", timeout=5).status_code == 404
    rec = faulty.requests[0]
    assert (rec.method, rec.path, rec.target, rec.query) == ("POST", "/json", "/json?x=1", {"x": "1"})
    assert rec.form == {"a": "b"} and rec.body == b"a=b" and rec.parsed == {"a": "b"}
    assert rec.headers["content-type"] == "application/x-www-form-urlencoded"
    faulty.reset()
    assert faulty.requests == [] and requests.get(f"{faulty.url}/html", timeout=5).status_code == 404


def test_faulty_deep_json(faulty: FaultyServer) -> None:
    faulty.set("GET", "/deep", deep_json(100_000))
    r = requests.get(f"{faulty.url}/deep", timeout=5)
    assert len(r.content) == 200_000
    with pytest.raises(RecursionError):
        json.loads(r.content)


def test_faulty_huge_body_streamed(faulty: FaultyServer) -> None:
    size = 50 * 1024 * 1024
    faulty.set("GET", "/huge", huge(size, prefix=b'{"access_token": "'))
    with requests.get(f"{faulty.url}/huge", stream=True, timeout=10) as r:
        assert int(r.headers["Content-Length"]) == size
        first = next(r.iter_content(64))
        assert first.startswith(b'{"access_token": "aaa')
        total = len(first) + sum(len(c) for c in r.iter_content(1024 * 1024))
    assert total == size


def test_faulty_gzip_bomb(faulty: FaultyServer) -> None:
    inflated = 64 * 1024 * 1024
    faulty.set("GET", "/bomb", gzip_bomb(inflated))
    with requests.get(f"{faulty.url}/bomb", stream=True, timeout=10) as r:
        assert r.headers["Content-Encoding"] == "gzip"
        wire = r.raw.read(decode_content=False)
    assert len(wire) < inflated / 500
    d = zlib.decompressobj(31)
    total = 0
    for i in range(0, len(wire), 65536):
        total += len(d.decompress(wire[i : i + 65536]))
    assert total == inflated and d.eof


def test_faulty_no_answer_and_hang_up(faulty: FaultyServer) -> None:
    faulty.set("POST", "/token", no_answer(30))
    t0 = time.monotonic()
    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{faulty.url}/token", timeout=(2, 0.5))
    assert time.monotonic() - t0 < 3
    faulty.set("POST", "/late", no_answer(0.2, then=json_response({"ok": True})))
    assert requests.post(f"{faulty.url}/late", timeout=5).json() == {"ok": True}
    faulty.set("GET", "/hangup", hang_up())
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{faulty.url}/hangup", timeout=5)


def test_faulty_trickle_defeats_read_timeout(faulty: FaultyServer) -> None:
    faulty.set("GET", "/trickle", trickle(0.2))
    t0 = time.monotonic()
    with requests.get(f"{faulty.url}/trickle", stream=True, timeout=(2, 0.5)) as r:
        got = b""
        for chunk in r.iter_content(1):  # each byte arrives within the 0.5 s read timeout...
            got += chunk
            if len(got) == 5:
                break
    assert got == b"     " and 0.6 < time.monotonic() - t0 < 3  # ...so only a total deadline stops it


def test_faulty_trickle_headers(faulty: FaultyServer) -> None:
    faulty.set("GET", "/slowhead", trickle(0.05, headers_first=False))
    with socket.create_connection(("127.0.0.1", faulty.port), timeout=2) as s:
        s.sendall(b"GET /slowhead HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        t0 = time.monotonic()
        while len(got) < 12:
            got += s.recv(1)
    assert got == b"HTTP/1.1 200" and time.monotonic() - t0 > 0.3


def test_faulty_reset(faulty: FaultyServer) -> None:
    faulty.set("POST", "/token", reset_connection())
    with pytest.raises(requests.ConnectionError) as exc:
        requests.post(f"{faulty.url}/token", data={"a": "b"}, timeout=5)
    assert "reset" in str(exc.value).lower()
    assert faulty.hits("/token") == 1


def test_faulty_redirect(faulty: FaultyServer) -> None:
    faulty.set("POST", "/token", redirect("/elsewhere", status=307))
    faulty.set("POST", "/elsewhere", json_response({"moved": True}))
    faulty.set("GET", "/abs", redirect(f"{faulty.url}/target"))
    r = requests.post(f"{faulty.url}/token", data={"x": "1"}, allow_redirects=False, timeout=5)
    assert r.status_code == 307 and r.headers["Location"] == "/elsewhere"
    assert not faulty.was_requested("/elsewhere")
    r = requests.post(f"{faulty.url}/token", data={"x": "1"}, timeout=5)
    assert r.json() == {"moved": True} and faulty.was_requested("/elsewhere", "POST")
    assert faulty.requests_to("/elsewhere")[0].form == {"x": "1"}  # 307 keeps the body
    requests.get(f"{faulty.url}/abs", timeout=5)
    assert faulty.was_requested("/target")


def test_faulty_5xx_and_sequence(faulty: FaultyServer) -> None:
    faulty.set("GET", "/a", server_error(503, retry_after=2))
    faulty.set("GET", "/b", server_error(500))
    r = requests.get(f"{faulty.url}/a", timeout=5)
    assert r.status_code == 503 and r.headers["Retry-After"] == "2"
    r = requests.get(f"{faulty.url}/b", timeout=5)
    assert r.status_code == 500 and "Retry-After" not in r.headers
    faulty.set("*", "/seq", sequence(server_error(502), html(status=200), json_response({"n": 3})))
    got = [requests.post(f"{faulty.url}/seq", timeout=5) for _ in range(5)]
    assert [g.status_code for g in got] == [502, 200, 200, 200, 200]
    assert got[1].headers["Content-Type"].startswith("text/html") and got[4].json() == {"n": 3}


def test_faulty_custom_behaviour(faulty: FaultyServer) -> None:
    def echo(h: Any, req: Any) -> None:
        h.send_json(200, {"auth": req.authorization, "json": req.json})

    faulty.set("POST", "/echo", echo)
    r = requests.post(f"{faulty.url}/echo", json={"a": 1}, headers={"Authorization": "Bearer t"}, timeout=5)
    assert r.json() == {"auth": "Bearer t", "json": {"a": 1}}


def test_faulty_stops_fast_while_handlers_block() -> None:
    srv = FaultyServer().start()
    port = srv.port
    srv.set("GET", "/trickle", trickle(0.5))
    srv.set("GET", "/slowhead", trickle(0.5, headers_first=False))
    srv.set("GET", "/never", no_answer(3600))
    srv.set("GET", "/huge", huge(500 * 1024 * 1024))  # the client stalls: the server blocks in send
    outcomes: dict[str, str] = {}
    stall = threading.Event()

    def client(path: str) -> None:
        try:
            with requests.get(f"{srv.url}{path}", stream=True, timeout=(2, 30)) as r:
                for _ in r.iter_content(1024 * 1024):
                    if path == "/huge":
                        stall.wait(10)  # stop reading until the server has been stopped
            outcomes[path] = "eof"
        except requests.RequestException as exc:
            outcomes[path] = type(exc).__name__

    threads = [threading.Thread(target=client, args=(p,), daemon=True) for p in ("/trickle", "/never", "/huge")]
    for t in threads:
        t.start()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"GET /slowhead HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + 5
        while len(srv.requests) < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(srv.requests) == 4
        time.sleep(0.3)  # let the huge body fill the socket buffers
        t0 = time.monotonic()
        srv.stop()
        assert time.monotonic() - t0 < 1.0
        stall.set()
        for t in threads:
            t.join(5)
            assert not t.is_alive()
        received = b""
        while chunk := raw.recv(100):  # what trickled so far, then EOF
            received += chunk
        assert received.startswith(b"H") and len(received) < 10
    assert outcomes["/never"] == "ConnectionError"  # closed without an answer
    assert outcomes["/trickle"] in ("ChunkedEncodingError", "ConnectionError")  # body cut short
    assert outcomes["/huge"] in ("ChunkedEncodingError", "ConnectionError")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/x", timeout=1)
