"""Scale-out on a real dask cluster: LocalCluster worker *processes*, each with its own empty cache, against
the loopback IdP's short-lived-client (3 s access tokens, refresh tokens rotated on every use, reuse of an
old one revokes the grant) and the introspecting API stand-in (it counts requests sent with a bad token).

One cluster per module. "One refresh per expiry": at most one token request per (lifetime - leeway) =
1.5 s of use, for the whole cluster.
"""

import concurrent.futures
import multiprocessing
import os
import pickle
import time
from pathlib import Path

import cloudpickle
import dask
import distributed
import pytest
from dask_tasks import EmptyCache, cache_files, call, call_blob, loop_until_error

import nbauth
import nbauth.dask
from nbauth import _scaleout

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
PERIOD = 1.5  # lifetime 3 s - leeway min(60, 3 / 2)
WORKERS = 3


def _cluster(n):
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "NBAUTH_CACHE": "on"}
    return distributed.LocalCluster(
        n_workers=n, threads_per_worker=3, processes=True, dashboard_address=None, env=env, silence_logs=40
    )


@pytest.fixture(scope="module")
def cluster():
    with _cluster(WORKERS) as c:
        yield c


@pytest.fixture
def client(cluster):
    with distributed.Client(cluster) as c:
        c.register_plugin(EmptyCache())
        c.wait_for_workers(WORKERS)
        yield c


@pytest.fixture
def idp(idp_factory):
    """3-second access tokens, long-lived rotating refresh tokens: a slow cluster restart on a busy machine
    must not outlive the grant (short-lived-client's 6-second refresh tokens would)."""
    return idp_factory(IDP_TTL_AccessToken=3)


@pytest.fixture
def api(idp, client):
    provider = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none", name="short")
    session = provider.get_token_by_password("alice", "alice-password", scope="openid")
    yield session
    nbauth.dask.unshare(session)


@pytest.fixture
def url(resource_api):
    return resource_api.whoami_url


def token_requests(idp):
    return sum(v for k, v in idp.stats().items() if k.startswith("token:") and not k.startswith("token:password"))


def secrets_of(session):
    token = session.token
    return [s for s in (token.access_token, token.refresh_token, token.id_token) if s]


# ------------------------------------------------------------------------------ pickling without a cluster
def test_pickles_hold_no_secret(idp, resource_api):
    provider = nbauth.Keycloak(idp.origin, "demo", client_id="confidential-client", client_secret="confidential-secret")
    api = provider.get_token_by_password("alice", "alice-password", scope="openid")
    grants = [
        nbauth.Password("alice", "alice-password"),
        nbauth.ClientCredentials("c", "client-secret-x"),
        nbauth.RefreshToken(api.token.refresh_token),
        nbauth.AuthorizationCode("code-x", None, "verifier-x"),
        nbauth.Custom({"grant_type": "x", "password": "alice-password", "assertion": "assertion-x"}),
    ]
    secrets = [
        *secrets_of(api),
        "confidential-secret",
        "alice-password",
        "client-secret-x",
        "code-x",
        "verifier-x",
        "assertion-x",
    ]
    assert len(secrets_of(api)) == 3  # access, refresh and id token: the scan looks for each
    for dumps in (pickle.dumps, cloudpickle.dumps):
        # a Token, an Entry and a TokenRequest are Records whose secrets are Secret strings: dropped too
        for obj in (api, provider, *grants, [api, {"s": api}], api.token, api.entry, grants[0].request()):
            blob = dumps(obj)
            assert not [s for s in secrets if s.encode() in blob], obj
    back = pickle.loads(pickle.dumps(provider))
    assert back.token_url == provider.token_url and back.client_secret == "confidential-secret"  # the live one's
    assert pickle.loads(pickle.dumps(grants[0])) == nbauth.Password("alice", None)
    back_token = pickle.loads(pickle.dumps(api.token))  # a Token unpickles without any of its tokens
    assert (back_token.access_token, back_token.refresh_token, back_token.id_token) == ("", None, None)
    assert pickle.loads(pickle.dumps(api)) is api  # in the owning kernel: the live session
    assert pickle.loads(pickle.dumps(api)).get(resource_api.whoami_url).status_code == 200


def test_a_process_pool_restores_from_its_cache(idp_factory, resource_api_for):
    """Same host without dask (spawned processes, like loky): from the cache, with no token request."""
    idp = idp_factory()  # 300-second tokens: starting the pool must not make the token due
    resource_api = resource_api_for(idp)
    provider = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none", name="pool")
    api = provider.get_token_by_password("alice", "alice-password", scope="openid")
    before = token_requests(idp)
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as pool:
        codes = list(pool.map(call, [api] * 4, [resource_api.whoami_url] * 4))
    assert codes == [200] * 4
    assert token_requests(idp) == before and resource_api.invalid_token_count == 0


# ------------------------------------------------------------------------------ the cluster
def test_hundreds_of_tasks_one_refresh_per_expiry(idp, client, api, url, resource_api):
    first = client.gather(client.map(call, [api] * 9, [url] * 9, pure=False))
    assert first == [200] * 9 and token_requests(idp) == 0  # the first requests wait for no refresh
    assert "dask " + client.id in str(nbauth.sessions())  # the "shared" column
    started = time.monotonic()
    codes = client.gather(client.map(call, [api] * 400, [url] * 400, [0.15] * 400, pure=False))
    elapsed = time.monotonic() - started
    assert codes == [200] * 400  # 0 failed tasks
    assert resource_api.invalid_token_count == 0  # 0 requests sent with an expired token
    renewals = token_requests(idp)
    assert elapsed > 2 * PERIOD and renewals >= 2  # several token lifetimes passed
    assert renewals <= elapsed / PERIOD + 2, (renewals, elapsed)
    assert set(map(tuple, client.run(cache_files).values())) == {()}  # workers needed no cache


def test_the_count_catches_a_missing_owner_single_flight(idp, client, api, url, monkeypatch):
    """The same workload with the owner renewing on every request it gets: the count must fail."""
    real = _scaleout.ensure_token
    monkeypatch.setattr(_scaleout, "ensure_token", lambda holder, force, seen: real(holder, force=True, seen=None))
    started = time.monotonic()
    codes = client.gather(client.map(call, [api] * 600, [url] * 600, [0.15] * 600, pure=False))
    elapsed = time.monotonic() - started
    assert token_requests(idp) > elapsed / PERIOD + 2 or any(c != 200 for c in codes)


def test_task_specs_and_events_hold_no_secret(client, api, url):
    secrets = secrets_of(api)
    futures = [client.submit(call, api, url, pure=False), dask.delayed(call)(api, url).persist()]
    assert client.gather(futures[0]) == 200 and futures[1].compute() == 200

    def dump_tasks(dask_scheduler):
        return [cloudpickle.dumps(ts.run_spec) + repr(ts.run_spec).encode() for ts in dask_scheduler.tasks.values()]

    blobs = client.run_on_scheduler(dump_tasks)
    assert blobs and not [s for s in secrets if any(s.encode() in b for b in blobs)]
    events = repr(client.get_events()).encode()
    assert not [s for s in secrets if s.encode() in events]
    metadata = repr(client.get_metadata(["nbauth"])).encode()  # access tokens may pass the scheduler
    assert api.token.refresh_token.encode() not in metadata and api.token.id_token.encode() not in metadata


def test_a_401_on_the_workers_asks_for_one_forced_renewal(idp, client, api, url, resource_api):
    api.token = api.token.replace(access_token="revoked-elsewhere")  # looks fresh, the API rejects it
    nbauth.dask.share(api, client)
    codes = client.gather(client.map(call, [api] * 9, [url] * 9, pure=False))
    assert codes == [200] * 9
    assert idp.stats().get("token:refresh_token:200", 0) == 1  # N workers, the same rejected token: one renewal
    assert 1 <= resource_api.invalid_token_count <= 9


def calls_arrive(resource_api, n, timeout=60.0):
    """Wait (polling, not a fixed sleep: the workers may be slow to start on a busy machine) until the API
    has answered ``n`` calls with 200."""
    deadline = time.monotonic() + timeout
    while resource_api.ok_count < n:
        assert time.monotonic() < deadline, f"only {resource_api.ok_count} of {n} calls arrived"
        time.sleep(0.05)


def login_required_after_calls(client, futures):
    """The (time, message) of each loop's end: every loop made only good calls (together at least the ones
    waited for), then got LoginRequired."""
    results = client.gather(futures)
    assert sum(len(codes) for *_, codes in results) >= 2 * WORKERS
    for _when, kind, _message, codes in results:
        assert kind == "LoginRequired" and set(codes) <= {200}
    return [(when, message) for when, _kind, message, _codes in results]


def test_logout_raises_login_required_in_time(client, api, url, resource_api):
    resource_api.reset()
    futures = client.map(loop_until_error, [api] * WORKERS, [url] * WORKERS, [40] * WORKERS, pure=False)
    calls_arrive(resource_api, 2 * WORKERS)
    api.logout()
    logged_out = time.time()
    for when, message in login_required_after_calls(client, futures):
        assert when - logged_out < 30 and "'short'" in message and f"pid {os.getpid()}" in message


def test_a_closed_owner_client_raises_login_required_in_time(cluster, client, api, url, resource_api):
    owner = distributed.Client(cluster, set_as_default=False)
    with owner.as_current():
        blob = cloudpickle.dumps(api)  # shared with the owner's client, not with `client`
    resource_api.reset()
    futures = client.map(loop_until_error, [blob] * WORKERS, [url] * WORKERS, [45] * WORKERS, pure=False)
    calls_arrive(resource_api, 2 * WORKERS)
    owner_id = owner.id
    owner.close()
    closed = time.time()
    for when, message in login_required_after_calls(client, futures):
        assert when - closed < 30 and owner_id in message and "has not been heard from" in message


def test_unshare_stops_the_workers(client, api, url):
    blob = pickle.dumps(api)  # shared with `client` (the current one)
    assert client.submit(call_blob, blob, url, pure=False).result() == 200
    assert nbauth.dask.unshare(api, client)
    result = client.submit(call_blob, blob, url, pure=False).result()
    assert result.startswith("LoginRequired")


def test_restarted_and_late_workers(idp, cluster, client, api, url, resource_api):
    assert client.gather(client.map(call, [api] * 6, [url] * 6, pure=False)) == [200] * 6
    first = sorted(client.scheduler_info()["workers"])[0]
    client.restart_workers([first])
    cluster.scale(WORKERS + 1)
    client.wait_for_workers(WORKERS + 1)
    try:
        workers = sorted(client.scheduler_info()["workers"])
        codes = [client.submit(call, api, url, 0.5, workers=[w], pure=False) for w in workers for _ in range(3)]
        assert client.gather(codes) == [200] * len(codes)
        assert resource_api.invalid_token_count == 0
    finally:
        cluster.scale(WORKERS)


def test_two_clusters_share_one_refresh(idp, client, api, url, resource_api):
    with _cluster(1) as other, distributed.Client(other, set_as_default=False) as second:
        second.register_plugin(EmptyCache())
        nbauth.dask.share(api, second)
        nbauth.dask.share(api, client)
        assert len(nbauth.sessions()[0]["shared"]) == 2
        started = time.monotonic()
        with second.as_current():
            there = second.map(call, [api] * 60, [url] * 60, [0.15] * 60, pure=False)
        here = client.map(call, [api] * 120, [url] * 120, [0.15] * 120, pure=False)
        codes = client.gather(here) + second.gather(there)
        elapsed = time.monotonic() - started
    assert codes == [200] * 180 and resource_api.invalid_token_count == 0
    assert token_requests(idp) <= elapsed / PERIOD + 2
