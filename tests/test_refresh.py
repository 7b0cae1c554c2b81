"""Refresh you can trust: single flight across threads and processes, rotation-safe, proactive, and
nothing lost on failure. Against the real IdP with 3-second access tokens and rotating refresh tokens.

The lock tests come in pairs: the same scenario with nbauth's locks removed must show more than one
refresh, which proves the scenario can catch a missing lock.
"""

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from servers.faulty import json_response, sequence, server_error

import nbauth
from nbauth import _registry, _session
from nbauth._store import Store

WORKER = str(Path(__file__).with_name("refresh_worker.py"))


@pytest.fixture
def short(idp_factory):
    """An IdP whose access tokens live 3 s; refresh tokens rotate on every use, reuse kills the grant."""
    return idp_factory(IDP_TTL_AccessToken=3)


def login(idp, user=("alice", "alice-password")):
    p = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")
    return p.get_token_by_password(*user, scope="openid")


def refreshes(idp):
    s = idp.stats()
    return s.get("token:refresh_token:200", 0), s.get("token:refresh_token:400", 0)


def wait_expired(session):
    time.sleep(max(0.0, session.token.expires_in) + 0.2)


class NoLock:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


@contextlib.contextmanager
def no_file_lock(self, digest, timeout=0):
    yield False


def remove_locks(monkeypatch, session):
    monkeypatch.setattr(session.holder, "lock", NoLock())
    monkeypatch.setattr(Store, "lock", no_file_lock)


def burst(api, url, n=32):
    barrier = threading.Barrier(n)
    statuses = []

    def call():
        barrier.wait()
        try:
            statuses.append(api.get(url).status_code)
        except nbauth.AuthError as exc:
            statuses.append(type(exc).__name__)

    threads = [threading.Thread(target=call) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return statuses


# ---------------------------------------------------------------- threads
def test_32_threads_on_an_expired_token_send_one_refresh(short, resource_api_for):
    api_server = resource_api_for(short)
    api = login(short)
    wait_expired(api)
    statuses = burst(api, api_server.whoami_url)
    assert statuses == [200] * 32
    assert refreshes(short) == (1, 0)
    assert api_server.invalid_token_count == 0  # nobody sent the expired token


def test_without_the_lock_the_same_burst_refreshes_many_times(short, resource_api_for, monkeypatch):
    api_server = resource_api_for(short)
    api = login(short)
    remove_locks(monkeypatch, api)
    wait_expired(api)
    burst(api, api_server.whoami_url)
    ok, rejected = refreshes(short)
    assert ok + rejected > 1  # the scenario catches a missing lock (and rotation makes most of them fail)


def test_several_session_objects_share_one_refresh(short, resource_api_for):
    api_server = resource_api_for(short)
    api = login(short)
    twins = [api, nbauth.session("demo"), _session.Session(api.holder), _session.Session(api.holder)]
    wait_expired(api)
    barrier = threading.Barrier(len(twins) * 4)
    codes = []

    def call(s):
        barrier.wait()
        codes.append(s.get(api_server.whoami_url).status_code)

    threads = [threading.Thread(target=call, args=(s,)) for s in twins * 4]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert codes == [200] * 16 and refreshes(short) == (1, 0)


# ---------------------------------------------------------------- processes
def run_workers(n, name, url, threads, seconds, interval, start_in=1.5, must_succeed=True):
    start_at = time.time() + start_in
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, name, url, str(threads), str(seconds), str(interval), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )
        for _ in range(n)
    ]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        if must_succeed:
            assert p.returncode == 0, err
            results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.slow
def test_processes_on_an_expired_token_send_one_refresh(short, resource_api_for):
    api_server = resource_api_for(short)
    api = login(short)
    wait_expired(api)  # every process starts from the same expired token in the cache
    results = run_workers(6, "demo", api_server.whoami_url, threads=4, seconds=0.0, interval=0.0)
    assert sum(r["failed"] for r in results) == 0, results
    assert sum(r["ok"] for r in results) == 24
    assert refreshes(short) == (1, 0)


@pytest.mark.slow
def test_processes_without_the_file_lock_refresh_more_than_once(short, resource_api_for, tmp_path):
    api_server = resource_api_for(short)
    api = login(short)
    wait_expired(api)
    sitecustomize = tmp_path / "sitecustomize.py"
    sitecustomize.write_text(
        "import contextlib\nfrom nbauth._store import Store\n"
        "@contextlib.contextmanager\ndef _no(self, digest, timeout=0):\n    yield False\nStore.lock = _no\n"
    )
    env_path = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = f"{tmp_path}{os.pathsep}{env_path}"
    try:  # without the lock a late worker may find the grant already dead: that is the failure shown
        run_workers(6, "demo", api_server.whoami_url, threads=4, seconds=0.0, interval=0.0, must_succeed=False)
    finally:
        os.environ["PYTHONPATH"] = env_path
    ok, rejected = refreshes(short)
    assert ok + rejected > 1


@pytest.mark.slow
def test_kernels_share_refreshes_over_several_expiries(short, resource_api_for):
    """4 processes x 4 threads call every 0.3 s for 7 s (two or three token lifetimes)."""
    api_server = resource_api_for(short)
    login(short)
    results = run_workers(4, "demo", api_server.whoami_url, threads=4, seconds=7.0, interval=0.3)
    failed = sum(r["failed"] for r in results)
    ok_refresh, rejected = refreshes(short)
    assert failed == 0, [r["errors"] for r in results]
    assert rejected == 0  # no rotated refresh token was ever replayed
    assert 2 <= ok_refresh <= 8  # one per lifetime-minus-leeway, not one per process or call
    assert api_server.invalid_token_count == 0


def test_a_kernel_with_an_old_token_takes_the_rotated_one_from_the_cache(short, resource_api_for):
    api_server = resource_api_for(short)
    api = login(short)
    old_refresh = api.token.refresh_token
    # another kernel refreshes (rotating the refresh token) through the shared cache
    code = f"import nbauth; s = nbauth.session('demo'); print(s.refresh().refresh_token != {old_refresh!r})"
    out = subprocess.run(
        [sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip() == "True", out.stderr
    assert api.token.refresh_token == old_refresh  # this kernel still holds the old one in memory
    wait_expired(api)
    assert api.get(api_server.whoami_url).status_code == 200
    assert refreshes(short) == (1, 0) or refreshes(short) == (2, 0)
    assert api.token.refresh_token != old_refresh
    assert refreshes(short)[1] == 0  # the replaced refresh token was never sent


# ---------------------------------------------------------------- proactive, skew, 401 retry
def test_calls_every_400ms_for_8s_never_send_an_expired_token(short, resource_api_for):
    api_server = resource_api_for(short)
    api = login(short)
    calls = 0
    end = time.monotonic() + 8
    while time.monotonic() < end:
        assert api.get(api_server.whoami_url).status_code == 200
        calls += 1
        time.sleep(0.4)
    ok, rejected = refreshes(short)
    assert api_server.invalid_token_count == 0
    assert rejected == 0 and 2 <= ok <= 7 and ok < calls / 2  # refresh per lifetime, not per call


def test_leeway_is_configurable(short, resource_api_for, ahead):
    api_server = resource_api_for(short)
    p = nbauth.Keycloak(short.origin, "demo", client_id="public-client", client_auth="none", refresh_leeway=0.2)
    api = p.get_token_by_password("alice", "alice-password")
    assert api.token.leeway(p.refresh_leeway) == 0.2
    ahead(1.7)  # past the default leeway (1.5 s of a 3 s token), not past 0.2 s
    api.get(api_server.whoami_url)
    assert refreshes(short) == (0, 0)


def test_skew_from_the_date_header_corrects_a_jwt_expiry(faulty):
    import base64
    import email.utils

    from servers.faulty import raw

    server_now = time.time() + 3600  # the server's clock is an hour ahead

    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    access = f"{seg({'alg': 'RS256'})}.{seg({'exp': int(server_now) + 300})}.c2ln"
    body = json.dumps({"access_token": access, "token_type": "Bearer"}).encode()
    head = (
        f"HTTP/1.1 200 OK\r\nDate: {email.utils.formatdate(server_now, usegmt=True)}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    faulty.set("POST", "/token", raw(head.encode() + body))
    api = nbauth.Provider(f"{faulty.url}/token", client_id="c", client_secret="s").get_token_by_client_credentials()
    assert 295 <= api.token.expires_in <= 302


def test_one_retry_after_401_invalid_token(short, resource_api_for):
    api_server = resource_api_for(short)
    api = login(short)
    short.set_clock(10)  # the IdP's clock jumps: the access token is dead there, nbauth cannot know
    assert api.get(api_server.whoami_url).status_code == 200
    assert api_server.invalid_token_count == 1 and refreshes(short) == (1, 0)


def test_never_more_than_one_retry(short, faulty):
    faulty.set(
        "GET",
        "/api",
        json_response(
            {"error": "invalid_token"}, status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ),
    )
    api = login(short)
    assert api.get(f"{faulty.url}/api").status_code == 401
    assert faulty.hits("/api") == 2 and refreshes(short) == (1, 0)


def test_no_retry_for_insufficient_scope(short, faulty):
    faulty.set(
        "GET", "/api", json_response({}, status=401, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
    )
    api = login(short)
    assert api.get(f"{faulty.url}/api").status_code == 401
    assert faulty.hits("/api") == 1 and refreshes(short) == (0, 0)


# ---------------------------------------------------------------- nothing lost on failure
def token_body(access, lifetime, refresh="rt-1"):
    return {"access_token": access, "token_type": "Bearer", "expires_in": lifetime, "refresh_token": refresh}


def test_transient_refresh_failure_keeps_the_valid_token_and_honours_retry_after(faulty, ahead):
    faulty.set("GET", "/api", json_response({"ok": True}))
    faulty.set(
        "POST",
        "/token",
        sequence(
            json_response(token_body("at-1", 6)),
            server_error(503, retry_after=2),
            json_response(token_body("at-2", 60, "rt-2")),
        ),
    )
    p = nbauth.Provider(f"{faulty.url}/token", client_id="c", client_secret="s", name="flaky")
    api = p.get_token_by_password("alice", "pw")
    ahead(3.2)  # stale (leeway 3 s of a 6 s token), not expired
    assert api.get(f"{faulty.url}/api").status_code == 200  # refresh failed (503) -> the valid token is used
    assert faulty.hits("/token") == 2
    assert api.get(f"{faulty.url}/api").status_code == 200  # within Retry-After: no new attempt
    assert faulty.hits("/token") == 2
    ahead(2.1)
    api.get(f"{faulty.url}/api")
    assert faulty.hits("/token") == 3 and api.token.access_token == "at-2"
    auths = [r.headers["Authorization"] for r in faulty.requests_to("/api")]
    assert auths == ["Bearer at-1", "Bearer at-1", "Bearer at-2"]


def test_refresh_failure_after_expiry_is_a_provider_error_and_the_next_call_retries(faulty, ahead):
    faulty.set("GET", "/api", json_response({"ok": True}))
    faulty.set(
        "POST",
        "/token",
        sequence(
            json_response(token_body("at-1", 1)), server_error(503), json_response(token_body("at-2", 60, "rt-2"))
        ),
    )
    api = nbauth.Provider(f"{faulty.url}/token", client_id="c", client_secret="s").get_token_by_password("a", "pw")
    ahead(1.1)
    with pytest.raises(nbauth.ProviderError, match="503"):
        api.get(f"{faulty.url}/api")
    assert not faulty.was_requested("/api")  # nothing was sent with the expired token
    assert api.get(f"{faulty.url}/api").status_code == 200
    assert api.token.access_token == "at-2"


def test_failed_login_never_overwrites_a_good_cache_entry(idp, nbauth_env):
    p = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")
    api = p.get_token_by_password("alice", "alice-password")
    before = {f.name: f.read_bytes() for f in nbauth_env.cache_dir.glob("*.json")}
    with pytest.raises(nbauth.InvalidGrant):
        p.get_token_by_password("alice", "wrong", force=True)
    after = {f.name: f.read_bytes() for f in nbauth_env.cache_dir.glob("*.json")}
    assert before == after
    _registry.clear_registry()
    assert nbauth.session("demo").token.access_token == api.token.access_token


def test_failed_refresh_never_overwrites_a_good_cache_entry(faulty, nbauth_env, ahead):
    faulty.set("POST", "/token", sequence(json_response(token_body("at-1", 1)), server_error(500)))
    api = nbauth.Provider(f"{faulty.url}/token", client_id="c", client_secret="s").get_token_by_password("a", "pw")
    before = {f.name: f.read_bytes() for f in nbauth_env.cache_dir.glob("*.json")}
    ahead(1.1)
    with pytest.raises(nbauth.ProviderError):
        api.refresh()
    assert {f.name: f.read_bytes() for f in nbauth_env.cache_dir.glob("*.json")} == before
