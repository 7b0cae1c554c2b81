"""Token exchange (RFC 8693) and resource indicators (RFC 8707) against the loopback IdP.

``exchange-client`` may exchange; targets are ``urn:demo:downstream`` and ``urn:demo:api``, both JWT
access tokens whose ``aud`` names the target (tests/idp/protocols.js).
"""

import jwt
import pytest

import nbauth
from nbauth import _registry

EXCHANGE = "token:urn:ietf:params:oauth:grant-type:token-exchange:200"


def _parent(idp, **kwargs):
    p = nbauth.Keycloak(idp.origin, "demo", client_id="exchange-client", client_secret="exchange-secret", **kwargs)
    return p, p.get_token_by_password("alice", "alice-password", scope="openid profile")


def _claims(token):
    return jwt.decode(token.access_token, options={"verify_signature": False})


def test_exchange_gives_a_session_for_the_downstream_api(idp):
    _p, parent = _parent(idp)  # _p stays alive: it holds the client secret
    child = parent.exchange(audience="urn:demo:downstream", scope="downstream:read")
    claims = _claims(child.token)
    assert claims["aud"] == "urn:demo:downstream" and claims["scope"] == "downstream:read"
    assert claims["sub"] == parent.token.claims["sub"]  # acting for the same user
    assert child.token.access_token != parent.token.access_token
    assert child.key != parent.key and "urn:demo:downstream" in child.name
    assert idp.stats().get(EXCHANGE) == 1
    assert "subject_token=" not in repr(nbauth.TokenExchange(parent.token.access_token, audience="x"))
    assert parent.token.access_token not in repr(nbauth.TokenExchange(parent.token.access_token, audience="x"))


def test_the_child_is_renewed_by_exchanging_again_from_the_parent(idp):
    _p, parent = _parent(idp)  # _p stays alive: it holds the client secret
    child = parent.exchange(resource="urn:demo:api")
    first = child.token.access_token
    assert child.token.refresh_token is None
    renewed = child.refresh()
    assert renewed.access_token != first and _claims(renewed)["aud"] == "urn:demo:api"
    stats = idp.stats()
    assert stats.get(EXCHANGE) == 2 and stats.get("token:refresh_token:200") is None  # the parent was fresh


def test_after_a_restart_the_parent_is_restored_from_the_cache(idp, monkeypatch):
    p, parent = _parent(idp)
    child = parent.exchange(audience="urn:demo:downstream")
    name = child.name
    del p, parent, child
    _registry.clear_registry()  # a new kernel; the secret comes from the environment, as nbauth never stores it
    monkeypatch.setenv("NBAUTH_CLIENT_ID", "exchange-client")
    monkeypatch.setenv("NBAUTH_CLIENT_SECRET", "exchange-secret")
    restored = nbauth.session(name)
    assert _claims(restored.refresh())["aud"] == "urn:demo:downstream"
    assert idp.stats().get(EXCHANGE) == 2


def test_a_logged_out_parent_stops_the_child(idp):
    _p, parent = _parent(idp)  # _p stays alive: it holds the client secret
    child = parent.exchange(audience="urn:demo:downstream")
    parent.logout()
    with pytest.raises(nbauth.LoginRequired, match=r"parent session.*log in again"):
        child.refresh()


def test_an_exchange_the_idp_refuses_is_typed(idp):
    p, parent = _parent(idp)
    with pytest.raises(nbauth.InvalidTarget, match="resource / audience"):
        parent.exchange(audience="urn:demo:not-allowed")
    with pytest.raises(nbauth.InvalidGrant):
        p.get_token(nbauth.TokenExchange("not-a-token", audience="urn:demo:downstream"))
    with pytest.raises(nbauth.ConfigurationError, match="audience"):
        parent.exchange()
    with pytest.raises(nbauth.ConfigurationError, match="token type of token exchange"):
        nbauth.TokenExchange("t", subject_token_type="access_token")


def test_the_grant_object_with_get_token(idp):
    p, parent = _parent(idp)
    s = p.get_token(nbauth.TokenExchange(parent.token.access_token, audience="urn:demo:downstream"))
    assert _claims(s.token)["aud"] == "urn:demo:downstream"


def test_resource_on_the_provider_is_sent_on_login_and_on_refresh_after_a_restart(idp):
    p = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none", resource="urn:demo:api")
    s = p.get_token_by_password("alice", "alice-password", scope="openid api:read")
    assert _claims(s.token)["aud"] == "urn:demo:api"
    del p, s
    _registry.clear_registry()
    restored = nbauth.session("demo")
    assert restored.provider.resource == ("urn:demo:api",)  # kept in the cache entry
    assert _claims(restored.refresh())["aud"] == "urn:demo:api"


def test_resource_must_be_an_absolute_uri():
    with pytest.raises(nbauth.ConfigurationError, match="absolute URI"):
        nbauth.Provider("https://idp.example/token", resource="api")


def test_one_resource_per_login():
    with pytest.raises(nbauth.ConfigurationError, match=r"names 2 APIs.*once per API"):
        nbauth.Provider("https://idp.example/token", resource=["urn:a:api", "urn:b:api"])
    p = nbauth.Provider("https://idp.example/token", resource=["urn:a:api", "urn:a:api"])  # the same one twice
    assert p.resource == ("urn:a:api",)
    with pytest.raises(nbauth.ConfigurationError, match="names 2 APIs"):
        p.for_resource(["urn:a:api", "urn:b:api"])


def test_resource_per_login_is_its_own_session_and_is_kept_for_refreshes(idp):
    """RFC 8707 §2: a token for one API is no answer to a login for another; each keeps its resource."""
    p = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")
    api = p.get_token_by_password("alice", "alice-password", scope="openid api:read", resource="urn:demo:api")
    down = p.get_token_by_password("alice", "alice-password", scope="openid api:read", resource="urn:demo:downstream")
    assert _claims(api.token)["aud"] == "urn:demo:api" and _claims(down.token)["aud"] == "urn:demo:downstream"
    assert api.key != down.key and api.key.resource == "urn:demo:api"
    assert p.resource == () and down.provider.resource == ("urn:demo:downstream",)  # the user's object unchanged
    assert idp.stats().get("token:password:200") == 2
    again = p.get_token_by_password("alice", "alice-password", scope="openid api:read", resource="urn:demo:api")
    assert again.key == api.key and idp.stats().get("token:password:200") == 2  # reused
    assert _claims(down.refresh())["aud"] == "urn:demo:downstream"  # the refresh asks for it again (§2.2)
    del p, api, down, again
    _registry.clear_registry()  # a new kernel: two sessions named demo, one per API
    with pytest.raises(nbauth.ConfigurationError, match="2 sessions are named 'demo'"):
        nbauth.session("demo")
    table = nbauth.sessions()
    rows = {r["id"] for r in table}
    assert "resource" in table.columns and "urn:demo:downstream" in str(table) and "urn:demo:api" in str(table)
    assert ">urn:demo:api</td>" in table._repr_html_()
    restored = [nbauth.session(i) for i in sorted(rows)]
    assert sorted(_claims(s.refresh())["aud"] for s in restored) == ["urn:demo:api", "urn:demo:downstream"]


def test_a_dpop_provider_is_not_answered_with_a_bearer_session(idp):
    """dpop=True asks for a sender-constrained token (RFC 9449 §5): a cached Bearer one does not do."""
    bearer = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")
    first = bearer.get_token_by_password("alice", "alice-password", scope="openid")
    assert first.token.token_type == "Bearer"
    dpop = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none", dpop=True)
    bound = dpop.get_token_by_password("alice", "alice-password", scope="openid")
    assert bound.token.token_type == "DPoP" and idp.stats().get("token:password:200") == 2
    # the other way round a DPoP-bound session is a fine answer (it is what the server gave)
    assert bearer.get_token_by_password("alice", "alice-password", scope="openid").token.token_type == "DPoP"
