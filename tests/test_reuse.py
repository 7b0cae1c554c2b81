"""Reuse is a trust decision (issue 9): each defect that came from taking it with too little information.

Every test here failed on the code before the login pipeline: a cached session answered a call it
should not have, a secret went to the wrong place, or one user's entry replaced another's.
"""

import io
import re
import threading

import pytest

import nbauth
from nbauth import _login, _registry
from nbauth._entries import load_entries
from nbauth.ui._text import device_login_text


def token_requests(idp):
    return sum(v for k, v in idp.stats().items() if k.startswith("token:"))


def confidential(idp, **kw):
    return nbauth.Keycloak(
        idp.origin, "demo", client_id="confidential-client", client_secret="confidential-secret", **kw
    )


def public(idp, **kw):
    return nbauth.Keycloak(idp.origin, "demo", client_id="public-client", **kw)


def test_a_wrong_password_is_judged_by_the_provider_not_answered_from_the_cache(idp):
    p = public(idp)
    api = p.get_token_by_password("alice", "alice-password", scope="openid")
    with pytest.raises(nbauth.InvalidGrant):
        p.get_token_by_password("alice", "not-her-password", scope="openid")
    assert p.get_token_by_password("alice", "alice-password", scope="openid") is api


def test_client_credentials_never_get_a_users_session(idp):
    p = confidential(idp)
    user = p.get_token_by_password("alice", "alice-password", scope="profile")
    before = token_requests(idp)
    service = p.get_token_by_client_credentials(scope="profile")
    assert service is not user and service.login_kind == "client_credentials" and service.user is None
    assert token_requests(idp) == before + 1
    assert p.get_token_by_client_credentials(scope="profile") is service  # its own entry is reused
    with pytest.raises(nbauth.InvalidClient):
        p.get_token_by_client_credentials("confidential-client", "a-wrong-secret", scope="profile")


def test_a_changed_token_url_gets_no_refresh_token_and_no_secret(idp, faulty):
    public(idp).get_token_by_password("alice", "alice-password", scope="openid")
    _registry.clear_registry()  # a new kernel
    moved = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", token_url=faulty.url + "/token")
    assert _login.reusable("device_login", moved, "openid") is None
    restored = nbauth.session("demo")  # restored with the entry's own endpoints, not the moved provider's
    assert restored.provider.token_url == public(idp).token_url
    restored.refresh()
    assert faulty.hits("/token") == 0
    assert restored.renew_with(moved) is False and restored.provider.token_url != moved.token_url


def test_an_environment_secret_goes_only_to_its_own_issuer(idp, idp_factory, monkeypatch):
    other = idp_factory(IDP_REALM="other")
    confidential(idp).get_token_by_password("alice", "alice-password")
    _registry.clear_registry()
    import gc

    gc.collect()
    monkeypatch.setenv("NBAUTH_CLIENT_ID", "confidential-client")
    monkeypatch.setenv("NBAUTH_CLIENT_SECRET", "confidential-secret")
    monkeypatch.setenv("NBAUTH_ISSUER", other.issuer)  # meant for another service
    before = token_requests(idp)
    with pytest.raises(nbauth.LoginRequired, match="NBAUTH_CLIENT_SECRET"):
        nbauth.session("demo").refresh()
    assert token_requests(idp) == before  # nothing was sent


def test_namesakes_from_two_issuers_are_never_picked_silently(idp, idp_factory):
    other = idp_factory(IDP_PATH_PREFIX="/auth")  # another server, the same realm name
    a = public(idp).get_token_by_password("alice", "alice-password")
    b = nbauth.Keycloak(other.origin + "/auth", "demo", client_id="public-client").get_token_by_password(
        "bob", "bob-password"
    )
    assert a.name == b.name == "demo" and a.id != b.id
    with pytest.raises(nbauth.ConfigurationError, match=re.escape(a.id)) as err:
        nbauth.session("demo")
    assert b.id in str(err.value)
    assert nbauth.session(a.id) is a and nbauth.session(b.id) is b
    assert len({row["id"] for row in nbauth.sessions()}) == 2


class Approve(io.StringIO):
    def __init__(self, idp, username):
        super().__init__()
        self.idp, self.username = idp, username

    def write(self, s):
        m = re.search(r"enter the code (\S+)", s)
        if m:
            threading.Timer(0.2, self.idp.approve, (m.group(1), self.username)).start()
        return super().write(s)


def test_device_logins_without_openid_never_replace_each_other(idp):
    p = public(idp)
    first = device_login_text(p, "profile", out=Approve(idp, "alice"))
    second = device_login_text(p, "profile", out=Approve(idp, "bob"))
    assert first.key != second.key
    assert {e.key for e in load_entries()} == {first.key, second.key}
    assert first.token.access_token != second.token.access_token
    assert nbauth.session(first.id) is first and nbauth.session(second.id) is second
