"""DPoP (RFC 9449) against the loopback IdP: proofs on token, refresh and API requests, nonces, the key
in the cache entry, a server that demands DPoP, a nonce loop, and tools that cannot sign refusing the token.

The IdP's userinfo endpoint is the protected API: oidc-provider checks the proof there (``ath``, ``jkt``).
"""

import asyncio
import base64
import hashlib
import json
import os
import stat
import subprocess
import sys

import httpx
import jwt
import pytest
import requests

import nbauth
from nbauth import _dpop, _registry
from nbauth._dpop import DPoPKey
from nbauth.httpx_auth import SessionAuth


@pytest.fixture(autouse=True)
def _no_remembered_nonces():
    _dpop._NONCES.clear()
    yield
    _dpop._NONCES.clear()


def _login(idp, *, client_id="public-client", **kwargs):
    p = nbauth.Keycloak(idp.origin, "demo", client_id=client_id, client_auth="none", **kwargs)
    return p.get_token_by_password("alice", "alice-password", scope="openid profile")


def test_dpop_login_binds_the_token_and_api_requests_carry_proofs(idp):
    s = _login(idp, dpop=True)
    token = s.token
    assert token.token_type == "DPoP" and token.sender_constrained and token.dpop_key is not None
    userinfo = idp.endpoint("userinfo_endpoint")
    r = s.get(userinfo)
    assert r.status_code == 200 and r.json()["preferred_username"] == "alice"
    sent = r.request.headers
    assert sent["Authorization"] == f"DPoP {token.access_token}"
    header = jwt.get_unverified_header(sent["DPoP"])
    proof = jwt.decode(sent["DPoP"], options={"verify_signature": False})
    assert header["typ"] == "dpop+jwt" and header["alg"] == "ES256" and "d" not in header["jwk"]
    assert proof["htm"] == "GET" and proof["htu"] == userinfo
    digest = hashlib.sha256(token.access_token.encode()).digest()
    assert proof["ath"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    # the same token as Bearer, or without a proof, is refused: the binding is real
    for headers in ({"Authorization": f"Bearer {token.access_token}"}, {"Authorization": f"DPoP {token.access_token}"}):
        assert requests.get(userinfo, headers=headers, timeout=10).status_code in (400, 401)


def test_a_dpop_refresh_token_survives_a_restart_and_needs_the_same_key(idp, nbauth_env):
    s = _login(idp, dpop=True)
    thumbprint = s.token.dpop_key.thumbprint
    files = list(nbauth_env.cache_dir.rglob("*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert json.loads(files[0].read_text())["token"]["dpop_jwk"]["d"]  # the key lives with the entry
    assert "d=" not in repr(s.token.dpop_key) and thumbprint[:8] in repr(s.token.dpop_key)
    _registry.clear_registry()  # a new kernel
    restored = nbauth.session("demo")
    assert restored.token.dpop_key.thumbprint == thumbprint
    renewed = restored.refresh()
    assert renewed.token_type == "DPoP" and renewed.dpop_key.thumbprint == thumbprint
    assert restored.get(idp.endpoint("userinfo_endpoint")).status_code == 200
    # with another key the bound refresh token is refused (RFC 9449 §5: jkt checked)
    with pytest.raises(nbauth.InvalidGrant):
        restored.provider.refresh(renewed.replace(dpop_key=DPoPKey.generate()))


def test_a_server_that_demands_dpop_gets_it_without_dpop_true(idp):
    s = _login(idp, client_id="dpop-client")  # registered with dpop_bound_access_tokens
    assert s.token.token_type == "DPoP"
    stats = idp.stats()
    assert stats.get("token:password:400") == 1 and stats.get("token:password:200") == 1
    assert s.get(idp.endpoint("userinfo_endpoint")).status_code == 200


def test_bearer_answers_stay_accepted(idp_factory):
    plain = idp_factory(IDP_DPOP="off")
    s = _login(plain, dpop=True)
    assert s.token.token_type == "Bearer" and not s.token.sender_constrained
    r = s.get(plain.endpoint("userinfo_endpoint"))
    assert r.status_code == 200 and r.request.headers["Authorization"].startswith("Bearer ")
    assert "DPoP" not in r.request.headers


def test_server_nonces_are_answered_and_remembered(idp_factory):
    strict = idp_factory(IDP_DPOP_NONCE=1)
    s = _login(strict, dpop=True)
    assert s.token.token_type == "DPoP"
    assert strict.stats().get("token:password:400") == 1  # use_dpop_nonce, then the retry with the nonce
    s.refresh()
    assert strict.stats().get("token:refresh_token:400") is None  # the remembered nonce was used at once
    _dpop._NONCES.clear()  # the API asks for a nonce itself (RFC 9449 §9): one retry
    r = s.get(strict.endpoint("userinfo_endpoint"))
    assert r.status_code == 200
    assert strict.stats().get("userinfo:401") == 1 and strict.stats().get("userinfo:200") == 1


def test_a_nonce_loop_is_bounded_and_typed(idp_factory):
    looping = idp_factory(IDP_DPOP_NONCE="loop")
    p = nbauth.Keycloak(
        looping.origin,
        "demo",
        client_id="service-client",
        client_secret="service-secret",
        client_auth="client_secret_post",
        dpop=True,
    )
    with pytest.raises(nbauth.UseDPoPNonce, match="never accepted") as info:
        p.get_token_by_client_credentials()
    assert "service-secret" not in str(info.value)
    assert looping.stats().get("dpop_nonce_loop") == 1 + _dpop.MAX_NONCE_RETRIES


def test_nbauth_token_refuses_to_print_a_dpop_token(idp, nbauth_env):
    s = _login(idp, dpop=True)
    out = subprocess.run(
        [sys.executable, "-m", "nbauth", "token", "demo"],
        env=os.environ.copy(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "DPoP-bound" in out.stderr
    assert s.token.access_token not in out.stdout + out.stderr


def test_dpop_key_round_trip_and_no_pickle():
    key = DPoPKey.generate()
    again = DPoPKey.from_jwk(key.private_jwk())
    assert again == key and again.thumbprint == key.thumbprint
    with pytest.raises(TypeError, match="never pickled"):
        __import__("pickle").dumps(key)
    with pytest.raises(ValueError, match="dpop_jwk"):
        DPoPKey.from_jwk({"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA", "d": "AA"})


def test_a_device_login_polls_with_proofs_and_gets_a_bound_token(idp_factory, monkeypatch):
    auto = idp_factory(IDP_DEVICE_AUTO_APPROVE="alice", IDP_DEVICE_AUTO_APPROVE_DELAY=1)
    monkeypatch.setenv("NBAUTH_UI", "text")
    p = nbauth.Keycloak(auto.origin, "demo", client_id="dpop-client", client_auth="none", dpop=True)
    s = p.device_login(scope="openid profile")
    assert s.token.token_type == "DPoP" and s.token.dpop_key is not None
    assert s.get(auto.endpoint("userinfo_endpoint")).status_code == 200
    assert s.refresh().dpop_key == s.token.dpop_key


def test_httpx_auth_sends_dpop_proofs(idp):
    import httpx

    from nbauth.httpx_auth import SessionAuth

    s = _login(idp, dpop=True)
    r = httpx.get(idp.endpoint("userinfo_endpoint"), auth=SessionAuth(s), timeout=10)
    assert r.status_code == 200 and r.request.headers["Authorization"].startswith("DPoP ")


def test_the_dpop_key_and_token_stay_out_of_reprs_and_logs(idp, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    s = _login(idp, dpop=True)
    s.refresh()
    d = s.token.dpop_key.private_jwk()["d"]
    shown = " ".join(
        [repr(s), repr(s.token), str(s.token), repr(s.token.dpop_key), str(nbauth.sessions()), caplog.text]
    )
    assert d not in shown and s.token.access_token not in shown


def test_data_tools_refuse_a_dpop_bound_session_instead_of_sending_it(idp):
    """A DPoP-bound token given to fsspec/DuckDB would be refused by the API: say so, send nothing."""
    p = nbauth.Keycloak(idp.origin, "demo", client_id="dpop-client", dpop=True)
    api = p.get_token_by_password("alice", "alice-password", scope="openid")
    assert api.token.sender_constrained
    with pytest.raises(nbauth.ConfigurationError, match="DPoP"):
        api.filesystem()


def test_httpx_answers_an_apis_nonce_challenge(idp_factory):
    """httpx clients get the same one retry as the Session when the API asks for a nonce (RFC 9449 §9)."""
    strict = idp_factory(IDP_DPOP_NONCE=1)
    s = _login(strict, dpop=True)
    userinfo = strict.endpoint("userinfo_endpoint")
    _dpop._NONCES.clear()
    with httpx.Client(auth=SessionAuth(s)) as client:
        r = client.get(userinfo)
    assert r.status_code == 200 and r.json()["preferred_username"] == "alice"
    assert strict.stats().get("userinfo:401") == 1 and strict.stats().get("userinfo:200") == 1
    assert r.request.headers["Authorization"] == f"DPoP {s.token.access_token}"

    async def fetch():
        _dpop._NONCES.clear()
        async with httpx.AsyncClient(auth=SessionAuth(s)) as client:
            return await client.get(userinfo)

    assert asyncio.run(fetch()).status_code == 200
    assert strict.stats().get("userinfo:401") == 2 and strict.stats().get("userinfo:200") == 2
