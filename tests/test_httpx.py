"""nbauth.httpx_auth.SessionAuth with real httpx clients against the loopback IdP and a protected API."""

import asyncio
import threading

import httpx
import pytest

import nbauth
from nbauth.httpx_auth import SessionAuth


def clock_ahead(monkeypatch, seconds):
    """Move nbauth's clock (not the IdP's) ``seconds`` ahead instead of sleeping: holds on a busy machine."""
    from nbauth import _clock

    real = _clock.now
    monkeypatch.setattr(_clock, "now", lambda: real() + seconds)


def confidential(idp):
    return nbauth.Keycloak(idp.origin, "demo", client_id="confidential-client", client_secret="confidential-secret")


def short_lived(idp):
    """3-second access tokens with refresh tokens (password grant, public client)."""
    provider = nbauth.Keycloak(idp.origin, "demo", client_id="short-lived-client", client_auth="none", name="short")
    return provider.get_token_by_password("alice", "alice-password", scope="openid")


def refreshes(idp):
    return idp.stats().get("token:refresh_token:200", 0)


def reject_access_token(api):
    """The access token looks fresh but the API will not take it (revoked elsewhere): 401 invalid_token."""
    api.token = api.token.replace(access_token="revoked-elsewhere")


def test_client_shares_the_sessions_token(idp, resource_api):
    api = confidential(idp).get_token_by_password("alice", "alice-password", scope="openid")
    before = sum(v for k, v in idp.stats().items() if k.startswith("token:"))
    with httpx.Client(auth=SessionAuth("demo")) as client:
        r = client.get(resource_api.whoami_url)
    assert r.status_code == 200 and r.json()["client_id"] == "confidential-client"
    assert resource_api.authorization_headers[-1] == f"Bearer {api.token.access_token}"
    assert sum(v for k, v in idp.stats().items() if k.startswith("token:")) == before
    assert "Bearer" not in repr(SessionAuth(api)) and api.token.access_token not in repr(SessionAuth(api))


def test_stale_token_is_refreshed_before_the_request(idp, resource_api, monkeypatch):
    api = short_lived(idp)
    old = api.token.access_token
    clock_ahead(monkeypatch, 1.7)  # under half of the 3 s lifetime left: due
    with httpx.Client(auth=SessionAuth(api)) as client:
        r = client.get(resource_api.whoami_url)
    assert r.status_code == 200 and refreshes(idp) == 1
    assert resource_api.invalid_token_count == 0  # no request went out with the old token
    assert api.token.access_token != old  # the requests session sees the renewed token too
    assert resource_api.authorization_headers == [f"Bearer {api.token.access_token}"]


def test_401_invalid_token_refreshes_once_and_retries(idp, resource_api):
    api = confidential(idp).get_token_by_password("alice", "alice-password", scope="openid")
    reject_access_token(api)
    with httpx.Client(auth=SessionAuth(api)) as client:
        r = client.post(resource_api.whoami_url, json={"q": 1})
    assert r.status_code == 200 and refreshes(idp) == 1
    assert resource_api.invalid_token_count == 1 and len(resource_api.authorization_headers) == 2


def test_streamed_body_is_not_replayed(idp, resource_api):
    api = confidential(idp).get_token_by_password("alice", "alice-password", scope="openid")
    reject_access_token(api)

    def body():
        yield b"chunk"

    with httpx.Client(auth=SessionAuth(api)) as client:
        r = client.post(resource_api.whoami_url, content=body())
    assert r.status_code == 401 and refreshes(idp) == 0


def test_threads_share_one_refresh(idp, resource_api, monkeypatch):
    api = short_lived(idp)
    clock_ahead(monkeypatch, 1.7)
    auth = SessionAuth(api)
    statuses = []
    barrier = threading.Barrier(8)

    def call():
        with httpx.Client(auth=auth) as client:
            barrier.wait()
            statuses.append(client.get(resource_api.whoami_url).status_code)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert statuses == [200] * 8 and refreshes(idp) == 1


def test_async_client_refreshes_once_without_blocking_the_loop(idp, resource_api, monkeypatch):
    api = short_lived(idp)
    clock_ahead(monkeypatch, 1.7)
    auth = SessionAuth(api)

    async def main():
        ticks = 0
        done = asyncio.Event()

        async def ticker():
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        tick_task = asyncio.create_task(ticker())
        async with httpx.AsyncClient(auth=auth) as client:
            responses = await asyncio.gather(*(client.get(resource_api.whoami_url) for _ in range(8)))
        done.set()
        await tick_task
        return [r.status_code for r in responses], ticks

    statuses, ticks = asyncio.run(main())
    assert statuses == [200] * 8 and refreshes(idp) == 1 and ticks > 0


def test_async_401_retry(idp, resource_api):
    api = confidential(idp).get_token_by_password("alice", "alice-password", scope="openid")
    reject_access_token(api)

    async def main():
        async with httpx.AsyncClient(auth=SessionAuth(api)) as client:
            return await client.get(resource_api.whoami_url)

    assert asyncio.run(main()).status_code == 200 and refreshes(idp) == 1


def test_auth_flow_is_a_plain_generator(idp):
    api = confidential(idp).get_token_by_client_credentials()
    flow = SessionAuth(api).auth_flow(httpx.Request("GET", "https://api.example.com/v1/sales"))
    request = next(flow)
    assert request.headers["Authorization"] == f"Bearer {api.token.access_token}"
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(200))
    flow = SessionAuth(api).auth_flow(httpx.Request("GET", "https://api.example.com/v1/sales"))
    next(flow)
    denied = httpx.Response(401, headers={"WWW-Authenticate": 'Bearer error="insufficient_scope"'})
    with pytest.raises(StopIteration):  # not a token problem: no refresh, no retry
        flow.send(denied)


def test_token_never_goes_over_plain_http_to_a_remote_host(idp):
    api = confidential(idp).get_token_by_client_credentials()
    with httpx.Client(auth=SessionAuth(api)) as client, pytest.raises(nbauth.InsecureTransport):
        client.get("http://data.example.com/v1/sales")


def test_unknown_session_name(idp):
    with pytest.raises(nbauth.LoginRequired):
        SessionAuth("nobody")
