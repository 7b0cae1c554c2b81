"""Token parsing quirks (RFC 6749 §5.1) and expiry, without any server."""

import base64
import json
import time

import pytest

import nbauth
from nbauth import _clock
from nbauth._tokens import MAX_LIFETIME, TokenState, parse_scope, parse_token_response


def fake_jwt(payload: dict) -> str:
    def seg(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{seg({'alg': 'RS256', 'typ': 'JWT'})}.{seg(payload)}.c2ln"


NOW = 1_800_000_000.0


def parse(body, **kw):
    return parse_token_response(body, received_at=NOW, **kw)


def test_relative_expires_in_and_bearer_case():
    t = parse({"access_token": "abc", "token_type": "bearer", "expires_in": 300})
    assert t.token_type == "Bearer"
    assert t.expires_at == NOW + 300
    assert t.lifetime == 300


def test_expires_in_as_string():
    assert parse({"access_token": "abc", "expires_in": "3600"}).expires_at == NOW + 3600
    assert parse({"access_token": "abc", "expires_in": " 60.5 "}).expires_at == NOW + 60.5


def test_expires_in_absolute_epoch_fusio():
    # seed 003's example: "expires_in": 1553280735 is an absolute time, not 49 years
    t = parse({"access_token": "abc", "token_type": "bearer", "expires_in": int(NOW) + 1200})
    assert t.expires_at == NOW + 1200


def test_absolute_expires_in_is_corrected_by_server_clock_skew():
    # the server's clock runs 100 s ahead: its absolute expiry is 100 s later than ours
    t = parse({"access_token": "abc", "expires_in": int(NOW) + 1300}, server_time=NOW + 100)
    assert t.expires_at == pytest.approx(NOW + 1200)


def test_missing_expires_in_uses_jwt_exp_without_trusting_claims():
    access = fake_jwt({"sub": "mallory", "exp": int(NOW) + 600, "preferred_username": "admin"})
    t = parse({"access_token": access})
    assert t.expires_at == NOW + 600
    assert t.claims == {}  # unverified claims are never presented as the user
    assert t.user is None


def test_missing_expires_in_jwt_exp_corrected_by_iat_skew():
    access = fake_jwt({"iat": int(NOW) - 3600, "exp": int(NOW) - 3600 + 300})  # server clock 1 h behind
    t = parse({"access_token": access})
    assert t.expires_at == pytest.approx(NOW + 300)


def test_missing_expires_in_opaque_token_is_unknown():
    t = parse({"access_token": "opaque"})
    assert t.expires_at is None
    assert t.state() is TokenState.FRESH
    assert t.expires_in is None


@pytest.mark.parametrize("token_type", ["mac", "N_A", ""])
def test_non_bearer_token_type_refused(token_type):
    body = {"access_token": "abc", "token_type": token_type}
    if token_type == "":
        assert parse(body).token_type == "Bearer"  # missing -> Bearer (Fusio consumer login)
        return
    with pytest.raises(nbauth.ProviderError, match="sends only Bearer"):
        parse(body)


@pytest.mark.parametrize("token_type", ["DPoP", "dpop"])
def test_dpop_token_type_accepted(token_type):
    # RFC 9449 §5: a DPoP-bound token is token_type DPoP; it is sent with a proof, never as Bearer
    t = parse({"access_token": "abc", "token_type": token_type})
    assert t.token_type == "DPoP" and t.sender_constrained


@pytest.mark.parametrize("value", [-5, "-5", "soon", float("nan"), float("inf"), True, [300], {"s": 1}])
def test_bad_expires_in_is_a_provider_error(value):
    with pytest.raises(nbauth.ProviderError, match="expires_in"):
        parse({"access_token": "abc", "expires_in": value})


def test_huge_expires_in_is_capped():
    assert parse({"access_token": "abc", "expires_in": 900_000_000}).expires_at == NOW + MAX_LIFETIME
    assert parse({"access_token": "abc", "expires_in": 10**15}).expires_at == NOW + MAX_LIFETIME


def test_absolute_expires_in_in_the_past_is_refused():
    with pytest.raises(nbauth.ProviderError, match="past"):
        parse({"access_token": "abc", "expires_in": int(NOW) - 10})


def test_zero_expires_in_means_unknown_not_refresh_forever():
    assert parse({"access_token": "abc", "expires_in": 0}).expires_at is None


@pytest.mark.parametrize(
    "body",
    [
        None,
        [],
        "token",
        {"token_type": "Bearer"},
        {"access_token": ""},
        {"access_token": 42},
        {"access_token": "a b"},
        {"access_token": "a\r\nX: y"},
        {"access_token": "é"},
    ],
)
def test_unusable_bodies(body):
    with pytest.raises(nbauth.ProviderError):
        parse(body)


def test_fusio_consumer_login_token_field():
    access = fake_jwt({"sub": "x", "exp": int(NOW) + 3600})
    from nbauth._fixes import FIXES

    with pytest.raises(nbauth.ProviderError, match="no access_token"):
        parse({"token": access})  # not RFC 6749 §5.1: only Fusio's preset carries the fix
    t = parse(FIXES["token_field"].token_body({"token": access}))
    assert t.access_token == access
    assert t.expires_at == NOW + 3600


def test_scope_forms():
    assert parse_scope("a b  c") == ("a", "b", "c")
    assert parse_scope("authorization,backend", ",") == ("authorization", "backend")
    assert parse_scope(["openid", "profile", "openid"]) == ("openid", "profile")
    t = parse({"access_token": "x"}, requested_scope=("openid",))
    assert t.scope == ("openid",)  # omitted scope = the requested one (RFC 6749 §5.1)


def test_state_and_leeway(monkeypatch):
    t = nbauth.Token("abc", expires_at=NOW + 300, issued_at=NOW)
    assert t.leeway() == 60
    assert t.state(now=NOW + 200) is TokenState.FRESH
    assert t.state(now=NOW + 241) is TokenState.STALE
    assert t.state(now=NOW + 300) is TokenState.EXPIRED
    short = nbauth.Token("abc", expires_at=NOW + 3, issued_at=NOW)
    assert short.leeway() == 1.5  # half the lifetime for 3-second tokens
    assert short.state(now=NOW + 1) is TokenState.FRESH
    assert short.state(now=NOW + 2) is TokenState.STALE
    assert t.leeway(10) == 10
    monkeypatch.setattr(_clock, "now", lambda: NOW + 100)
    assert t.expires_in == 200


def test_repr_and_str_hide_secrets():
    t = nbauth.Token(
        "ACCESS-SECRET",
        refresh_token="REFRESH-SECRET",
        id_token="ID-SECRET",
        expires_at=time.time() + 60,
        claims={"preferred_username": "alice"},
    )
    for text in (repr(t), str(t), f"{t}", repr([t]), repr({"t": t})):
        assert "SECRET" not in text
    assert "alice" in repr(t)


def test_mapping_interface_like_requests_oauthlib():
    t = nbauth.Token("abc", refresh_token="r", scope=("a", "b"), expires_at=time.time() + 100)
    assert t["access_token"] == "abc"
    assert t.get("refresh_token") == "r"
    assert t["scope"] == ["a", "b"]
    assert "id_token" not in t
    assert 98 <= t["expires_in"] <= 100


def test_merged_with_keeps_what_refresh_left_out():
    old = nbauth.Token("a1", refresh_token="r1", id_token="i1", scope=("s",), claims={"sub": "x"})
    new = old.merged_with(nbauth.Token("a2"))
    assert (new.access_token, new.refresh_token, new.id_token, new.scope, new.claims["sub"]) == (
        "a2",
        "r1",
        "i1",
        ("s",),
        "x",
    )
    rotated = old.merged_with(nbauth.Token("a3", refresh_token="r2"))
    assert rotated.refresh_token == "r2"


def test_cache_round_trip_and_validation():
    t = nbauth.Token(
        "abc", refresh_token="r", id_token="i", scope=("x",), expires_at=NOW, issued_at=NOW - 1, claims={"sub": "s"}
    )
    assert nbauth.Token.from_cache(t.to_cache()) == t
    for bad in (
        {},
        {"access_token": 1},
        {"access_token": "a", "scope": "x"},
        {"access_token": "a", "claims": []},
        {"access_token": "a", "expires_at": "soon"},
        {"access_token": "a", "expires_at": float("nan")},
    ):
        with pytest.raises((ValueError, nbauth.ProviderError)):
            nbauth.Token.from_cache(bad)


def test_clock_patch_affects_state(monkeypatch):
    t = nbauth.Token("abc", expires_at=NOW + 10, issued_at=NOW)
    monkeypatch.setattr(_clock, "now", lambda: NOW + 11)
    assert t.state() is TokenState.EXPIRED
