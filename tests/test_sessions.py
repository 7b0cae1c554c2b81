"""Sessions across cells, kernels and restarts: reuse, restore, logout, and what is (never) stored."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import requests

import nbauth
from nbauth import _registry


def kc(idp, **kw):
    args = {"client_id": "confidential-client", "client_secret": "confidential-secret"}
    args.update(kw)
    return nbauth.Keycloak(idp.origin, "demo", **args)


def public(idp, client_id="public-client", **kw):
    return nbauth.Keycloak(idp.origin, "demo", client_id=client_id, client_auth="none", **kw)


def token_requests(idp):
    return sum(v for k, v in idp.stats().items() if k.startswith("token:"))


def new_kernel():
    """Forget everything in memory, as a kernel restart does."""
    _registry.clear_registry()


def cache_text(env):
    return "".join(p.read_text() for p in env.cache_dir.glob("*.json"))


def test_same_login_again_makes_no_token_request(idp):
    p = public(idp)
    api = p.get_token_by_password("alice", "alice-password", scope="openid profile")
    before = token_requests(idp)
    assert p.get_token_by_password("alice", "alice-password", scope="profile openid") is api
    assert token_requests(idp) == before
    # a wrong password is never answered from the cache: the provider judges it
    with pytest.raises(nbauth.InvalidGrant):
        p.get_token_by_password("alice", "wrong-password", scope="openid profile")
    assert token_requests(idp) == before + 1
    # a different user, scope or force=True logs in anew
    assert p.get_token_by_password("bob", "bob-password", scope="openid profile") is not api
    assert p.get_token_by_password("alice", "alice-password", scope="openid") is not api
    p.get_token_by_password("alice", "alice-password", scope="openid profile", force=True)
    assert token_requests(idp) == before + 4


def test_restore_after_kernel_restart_zero_token_requests(idp, resource_api):
    public(idp).get_token_by_password("alice", "alice-password", scope="openid profile")
    new_kernel()
    before = token_requests(idp)
    api = nbauth.session("demo")
    assert api.user == "alice"
    assert api.get(resource_api.whoami_url).status_code == 200
    assert token_requests(idp) == before
    assert nbauth.session() is api  # the most recent one


def test_login_cell_rerun_in_new_kernel_proves_the_password_once(idp):
    """A password is never stored, so a new kernel cannot tell a right one from a wrong one without
    asking the provider: one token request, and the entry is the same one (no duplicate session).
    """
    first = public(idp).get_token_by_password("alice", "alice-password", scope="openid")
    new_kernel()
    before = token_requests(idp)
    api = public(idp).get_token_by_password("alice", "alice-password", scope="openid")
    assert api.token.refresh_token and token_requests(idp) == before + 1 and api.key == first.key
    assert public(idp).get_token_by_password("alice", "alice-password", scope="openid") is api
    assert token_requests(idp) == before + 1  # proven in this kernel: reused from now on


def test_new_process_reuses_the_login(idp, nbauth_env):
    public(idp).get_token_by_password("alice", "alice-password", scope="openid profile")
    before = token_requests(idp)
    code = textwrap.dedent(f"""
        import nbauth
        api = nbauth.session("demo")
        r = api.get({idp["userinfo_endpoint"]!r})
        print(r.status_code, r.json()["preferred_username"])
    """)
    out = subprocess.run(
        [sys.executable, "-c", code], env=os.environ.copy(), capture_output=True, text=True, timeout=60
    )
    assert out.stdout.split() == ["200", "alice"], out.stderr
    assert token_requests(idp) == before


def test_restored_session_refreshes_with_the_cached_refresh_token(idp):
    public(idp).get_token_by_password("alice", "alice-password")
    new_kernel()
    api = nbauth.session("demo")
    old = api.token.refresh_token
    assert api.refresh().refresh_token != old
    stored = json.loads(next(iter(_cache_files())).read_text())
    assert stored["token"]["refresh_token"] == api.token.refresh_token  # rotation persisted


def _cache_files():
    from nbauth._store import current_store

    return current_store().directory.glob("*.json")


def test_password_and_client_secret_are_never_written(idp, nbauth_env):
    kc(idp).get_token_by_password("alice", "alice-password", scope="openid")
    kc(idp).get_token_by_client_credentials()
    text = cache_text(nbauth_env)
    assert text and "alice-password" not in text and "confidential-secret" not in text
    for path in nbauth_env.cache_dir.iterdir():
        assert "alice-password" not in path.read_bytes().decode(errors="replace")


def test_restored_confidential_session_refreshes_with_env_secret(idp, monkeypatch):
    kc(idp).get_token_by_password("alice", "alice-password")
    new_kernel()
    import gc

    gc.collect()  # the provider object of the "old kernel" is gone
    api = nbauth.session("demo")
    with pytest.raises(nbauth.LoginRequired, match="NBAUTH_CLIENT_SECRET"):
        api.refresh()  # no secret in this kernel: say how to supply it, send nothing
    new_kernel()
    monkeypatch.setenv("NBAUTH_CLIENT_SECRET", "confidential-secret")
    monkeypatch.setenv("NBAUTH_CLIENT_ID", "confidential-client")
    api = nbauth.session("demo")
    with pytest.raises(nbauth.LoginRequired):
        api.refresh()  # the environment does not say which issuer the secret is for: not sent
    new_kernel()
    monkeypatch.setenv("NBAUTH_ISSUER", idp.issuer)
    api = nbauth.session("demo")
    assert api.refresh().access_token


def test_restored_client_credentials_session_renews_with_the_live_provider(idp, monkeypatch, resource_api):
    from nbauth import _clock

    p = kc(idp)
    p.get_token_by_client_credentials()
    new_kernel()
    api = nbauth.session("demo")
    real = _clock.now
    monkeypatch.setattr(_clock, "now", lambda: real() + 400)  # past expiry: client_credentials again
    before = idp.stats().get("token:client_credentials:200", 0)
    assert api.get(resource_api.whoami_url).status_code == 200
    assert idp.stats().get("token:client_credentials:200", 0) == before + 1


def test_session_by_name_and_errors(idp):
    with pytest.raises(nbauth.LoginRequired, match="log in first"):
        nbauth.session()
    public(idp, name="sales").get_token_by_password("alice", "alice-password")
    public(idp, name="hr").get_token_by_password("bob", "bob-password")
    assert nbauth.session("sales").name == "sales"
    with pytest.raises(nbauth.LoginRequired, match=r"known: hr#\w{6}, sales#\w{6}"):
        nbauth.session("marketing")


def test_keycloak_session_is_named_after_the_realm(idp):
    assert kc(idp).get_token_by_client_credentials().name == "demo"
    assert kc(idp, name="analytics").get_token_by_client_credentials(force=True).name == "analytics"


def test_sessions_table_text_and_html(idp):
    public(idp).get_token_by_password("alice", "alice-password", scope="openid profile")
    table = nbauth.sessions()
    assert len(table) == 1 and table[0]["user"] == "alice"
    text = str(table)
    assert "alice" in text and "demo" in text and "yes" in text
    html = table._repr_html_()
    assert html.startswith("<table") and ">alice</td>" in html and "text-align:left" in html
    assert table[0]["refreshable"] is True
    assert "resource" not in table.columns and "resource" not in text  # shown only when a login named one
    assert all(secret not in text + html for secret in (_registry.holders().__next__().token.access_token,))
    new_kernel()
    assert nbauth.sessions()[0]["where"] == "cache"


def test_logout_revokes_and_forgets(idp, nbauth_env):
    p = public(idp)
    api = p.get_token_by_password("alice", "alice-password", scope="openid")
    token = api.token
    api.logout()
    assert list(nbauth_env.cache_dir.glob("*.json")) == []
    r = requests.post(
        idp["token_endpoint"],
        data={"grant_type": "refresh_token", "client_id": "public-client", "refresh_token": token.refresh_token},
        timeout=10,
    )
    assert r.json()["error"] == "invalid_grant"  # revoked at the provider (RFC 7009)
    with pytest.raises(nbauth.LoginRequired):
        nbauth.session("demo")
    with pytest.raises(nbauth.LoginRequired, match="logged out"):
        api.refresh()
    # logging in again works and is a real login
    assert p.get_token_by_password("alice", "alice-password", scope="openid") is not api


def test_revoked_refresh_token_becomes_login_required_with_the_cell_to_rerun(idp_factory, monkeypatch):
    short = idp_factory(IDP_TTL_AccessToken=2)
    p = public(short)
    api = p.get_token_by_password("alice", "alice-password")
    requests.post(
        short["revocation_endpoint"],
        data={"token": api.token.refresh_token, "client_id": "public-client", "token_type_hint": "refresh_token"},
        timeout=10,
    )
    from nbauth import _clock

    real = _clock.now
    monkeypatch.setattr(_clock, "now", lambda: real() + 2.2)  # expired to nbauth, without sleeping
    with pytest.raises(nbauth.LoginRequired, match=r"get_token_by_password\(\) again"):
        api.get(short["userinfo_endpoint"])
    # the dead grant is not offered again as "refreshable": a new login really logs in
    before = token_requests(short)
    again = p.get_token_by_password("alice", "alice-password")
    assert token_requests(short) == before + 1 and again.token.refresh_token


def test_requests_api_still_works(idp):
    api = kc(idp).get_token_by_password("alice", "alice-password", scope="openid profile")
    assert api.authorized
    r = api.request("GET", idp["userinfo_endpoint"])
    assert r.json()["preferred_username"] == "alice"
    r = api.get(idp["userinfo_endpoint"], withhold_token=True)
    assert r.status_code in (400, 401)
    assert api.token["access_token"] == api.access_token
    with pytest.raises(nbauth.ConfigurationError):
        api.fetch_token("x")


def test_bearer_token_never_goes_to_plain_http_hosts(idp):
    api = kc(idp).get_token_by_client_credentials()
    with pytest.raises(nbauth.InsecureTransport):
        api.get("http://data.example.com/v1/sales")


def test_session_repr_hides_tokens(idp):
    api = kc(idp).get_token_by_password("alice", "alice-password", scope="openid profile")
    for text in (repr(api), str(api), repr(api.token), str(api.status())):
        assert api.token.access_token not in text and api.token.refresh_token not in text


def test_logout_revokes_with_the_client_that_got_the_token(idp):
    p = public(idp)  # a public provider; the grant brings its own confidential client
    api = p.get_token_by_client_credentials("confidential-client", "confidential-secret")
    token = api.token.access_token
    api.logout()  # RFC 7009 §2.1: only that client may revoke its token
    r = requests.post(
        idp["introspection_endpoint"],
        data={"token": token},
        auth=("confidential-client", "confidential-secret"),
        timeout=10,
    )
    assert r.json()["active"] is False


def test_reuse_through_a_provider_with_another_name_adopts_the_name(idp):
    public(idp).get_token_by_password("alice", "alice-password")
    before = token_requests(idp)
    api = public(idp, name="sales").get_token_by_password("alice", "alice-password")
    assert token_requests(idp) == before and api.name == "sales"
    new_kernel()
    assert nbauth.session("sales").user == api.user


def test_runs_on_oauthlib_4_and_requests_oauthlib_2(idp, resource_api):
    import oauthlib
    import requests_oauthlib

    assert int(oauthlib.__version__.split(".")[0]) >= 4 or oauthlib.__version__.startswith("3.2")
    assert requests_oauthlib.__version__.startswith("2.")
    api = kc(idp).get_token_by_client_credentials()
    assert isinstance(api, requests_oauthlib.OAuth2Session)
    seen = []

    def hook(url, headers, data):  # requests-oauthlib's compliance hook still runs on every request
        seen.append(headers["Authorization"].split()[0])
        return url, {**headers, "X-Hooked": "1"}, data

    api.register_compliance_hook("protected_request", hook)
    assert api.get(resource_api.whoami_url).status_code == 200
    assert seen == ["Bearer"]


def test_whoami_completes_bare_claims_with_userinfo(idp):
    api = public(idp).get_token_by_password("alice", "alice-password", scope="openid profile")
    assert api.whoami()["preferred_username"] == "alice"
    assert idp.stats().get("userinfo:200", 0) == 0  # named claims: no UserInfo request
    bare = public(idp).get_token_by_password("bob", "bob-password", scope="openid")
    assert "name" not in bare.token.claims
    who = bare.whoami()  # no name in the id_token: the provider's UserInfo is asked (OIDC Core §5.3)
    assert who["sub"] == bare.token.claims["sub"]
    assert idp.stats().get("userinfo:200", 0) == 1
