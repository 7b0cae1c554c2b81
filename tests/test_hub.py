"""JupyterHub auth_state against a real hub: jupyterhub + GenericOAuthenticator (enable_auth_state) +
configurable-http-proxy, logged in at the loopback IdP with the scripted browser (tests/hub).

Two hubs share one IdP: ``steady`` (auth_refresh_age 300 s: keeps answering the token it has) and
``eager`` (auth_refresh_age 1 s: refreshes at the IdP when its token no longer works).
"""

import json

import pytest
from hub.helpers import free_port, start_hub

import nbauth
from nbauth import _clock, _derived, _hub


@pytest.fixture(scope="module")
def hubs(idp_factory, tmp_path_factory):
    ports = {"steady": free_port(), "eager": free_port()}
    uris = ",".join(f"http://127.0.0.1:{p}/hub/oauth_callback" for p in ports.values())
    idp = idp_factory(IDP_HUB_REDIRECT_URIS=uris)
    started = {}
    try:
        for name, age in (("steady", 300), ("eager", 1)):
            started[name] = start_hub(
                idp, tmp_path_factory.mktemp(f"hub-{name}"), port=ports[name], auth_refresh_age=age
            )
        yield idp, started
    finally:
        for hub in started.values():
            hub.stop()


@pytest.fixture
def on_hub(hubs, idp_factory, monkeypatch):
    """Log alice in to a hub (after the IdP reset) and give the kernel a single-user server's environment."""
    idp, started = hubs

    def enter(name="steady", user=("alice", "alice-password")):
        hub = started[name]
        hub.login(*user)
        for key, value in hub.kernel_env(user[0]).items():
            monkeypatch.setenv(key, value)
        return hub

    return idp, enter


@pytest.fixture
def no_waits(monkeypatch):
    waits = []
    monkeypatch.setattr(_clock, "sleep", waits.append)
    return waits


def _provider(idp):
    return nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")


def test_a_hub_login_needs_no_prompt_and_no_token_request(on_hub, nbauth_env):
    idp, enter = on_hub
    enter()
    before = idp.stats()
    s = _derived.hub_login(_provider(idp))
    assert s.user == "alice" and s.login_kind == "jupyterhub"
    assert s.token.refresh_token is None  # the hub's refresh token never reaches the kernel's session
    r = s.get(idp.endpoint("userinfo_endpoint"))
    assert r.status_code == 200 and r.json()["preferred_username"] == "alice"
    after = idp.stats()
    assert {k: v for k, v in after.items() if k.startswith("token:")} == {
        k: v for k, v in before.items() if k.startswith("token:")
    }
    cache = "".join(f.read_text() for f in nbauth_env.cache_dir.rglob("*.json"))
    assert json.loads(cache)["token"]["refresh_token"] is None
    applies, why = _hub.hub_status(_provider(idp))
    assert applies and "alice" in why


def test_user_endpoint_has_no_auth_state_so_users_name_is_read(on_hub):
    _, enter = on_hub
    hub = enter()
    import requests

    token = hub.kernel_env()["JUPYTERHUB_API_TOKEN"]
    assert (
        requests.get(f"{hub.api_url}/user", headers={"Authorization": f"token {token}"}, timeout=10).json()[
            "auth_state"
        ]
        is None
    )


def test_a_hub_for_another_issuer_is_skipped_and_says_why(on_hub, idp):
    _, enter = on_hub
    enter()
    other = _provider(idp)  # the default IdP: another issuer with other keys
    applies, why = _hub.hub_status(other)
    assert not applies and ("another issuer" in why or "JWKS" in why)
    with pytest.raises(nbauth.VerificationError):
        _derived.hub_login(other)


def test_no_hub_environment_is_skipped(monkeypatch, idp):
    for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"):
        monkeypatch.delenv(name, raising=False)
    applies, why = _hub.hub_status(_provider(idp))
    assert not applies and "not on a JupyterHub" in why
    with pytest.raises(nbauth.LoginRequired, match="not on a JupyterHub"):
        _derived.hub_login(_provider(idp))


def test_a_token_without_the_auth_state_scope_is_refused_saying_which_scope(on_hub, monkeypatch):
    idp, enter = on_hub
    hub = enter()
    r = hub.api("POST", "users/alice/tokens", json={"scopes": ["read:users!user"], "expires_in": 600})
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", r.json()["token"])
    with pytest.raises(nbauth.LoginRequired, match="admin:auth_state!user"):
        _derived.hub_login(_provider(idp))


def test_a_hub_that_keeps_an_expired_token_gives_login_required(on_hub, monkeypatch, no_waits):
    idp, enter = on_hub
    enter("steady")
    s = _derived.hub_login(_provider(idp))
    real_now = _clock.now
    monkeypatch.setattr(_clock, "now", lambda: real_now() + 400)  # past the 300-s access token
    with pytest.raises(nbauth.LoginRequired, match="auth_refresh_age"):
        s.get(idp.endpoint("userinfo_endpoint"))
    assert idp.stats().get("token:refresh_token:200") is None  # nobody refreshed: not nbauth, not the hub
    assert no_waits and all(0 < w <= _hub.MIN_INTERVAL for w in no_waits)  # asked the hub no sooner than allowed


def test_renewal_asks_the_hub_which_refreshes_at_the_idp(on_hub, monkeypatch):
    # a real (short) wait: the hub refreshes only when its last refresh is over auth_refresh_age (1 s) old
    monkeypatch.setattr(_hub, "MIN_INTERVAL", 1.5)
    idp, enter = on_hub
    enter("eager")
    s = _derived.hub_login(_provider(idp))
    first = s.token.access_token
    idp.set_clock(400)  # the IdP's token really expired
    real_now = _clock.now
    monkeypatch.setattr(_clock, "now", lambda: real_now() + 400)
    r = s.get(idp.endpoint("userinfo_endpoint"))
    assert r.status_code == 200
    assert s.token.access_token != first and s.token.refresh_token is None
    assert idp.stats().get("token:refresh_token:200") == 1  # the hub's own refresh, once


def test_login_takes_the_hub_link_and_explain_says_so(on_hub, nbauth_env, idp):
    from test_chain import write_profile

    hub_idp, enter = on_hub
    enter()
    write_profile(hub_idp, nbauth_env)
    answer = nbauth.explain("demo")
    assert answer.chosen == "jupyterhub", str(answer)
    s = nbauth.login("demo")
    assert s.login_kind == "jupyterhub" and s.user == "alice"
    write_profile(idp, nbauth_env)  # the same profile name, for another issuer: the hub's tokens are not for it
    skipped = nbauth.explain("demo")
    row = next(r for r in skipped.links if r[0] == "jupyterhub")
    assert not row[1] and ("another issuer" in row[2] or "JWKS" in row[2])


def test_the_hub_token_stays_out_of_reprs_and_errors(on_hub, monkeypatch):
    idp, enter = on_hub
    hub = enter()
    token = hub.kernel_env()["JUPYTERHUB_API_TOKEN"]
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    assert token not in repr(_hub.hub_config())
    monkeypatch.setenv("JUPYTERHUB_USER", "nobody")
    with pytest.raises(nbauth.AuthError) as info:
        _derived.hub_login(_provider(idp))
    assert token not in str(info.value)
