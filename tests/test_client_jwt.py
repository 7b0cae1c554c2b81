"""private_key_jwt and client_secret_jwt (RFC 7523 §2.2, §3; OIDC Core §9) against the loopback IdP.

The IdP registers ``jwt-client`` with a JWKS generated at its start (private halves at
``GET /_admin/client-keys``) and ``hmac-client`` for client_secret_jwt (tests/idp/protocols.js).
"""

import gc
import json
import logging
import pickle

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

import nbauth
from nbauth import _registry
from nbauth._client_jwt import ASSERTION_TYPE, load_private_key

HMAC_SECRET = "hmac-client-secret-0123456789abcdef-0123456789"


@pytest.fixture
def client_jwks(idp):
    r = requests.get(f"{idp.admin_url}/client-keys", timeout=10)
    r.raise_for_status()
    return r.json()["keys"]


def _key(jwks, kty):
    return next(k for k in jwks if k["kty"] == kty)


def _pem(jwk) -> str:
    key = jwt.PyJWK.from_dict(jwk).key
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _provider(idp, **kwargs):
    return nbauth.Keycloak(idp.origin, "demo", client_id="jwt-client", **kwargs)


@pytest.mark.parametrize("form", ["jwk-dict", "jwk-json", "pem-text", "pem-file", "rsa-jwk"])
def test_private_key_jwt_gets_a_token_with_each_key_form(idp, client_jwks, tmp_path, form):
    jwk = _key(client_jwks, "RSA" if form == "rsa-jwk" else "EC")
    if form in ("jwk-dict", "rsa-jwk"):
        key = jwk
    elif form == "jwk-json":
        key = json.dumps(jwk)
    elif form == "pem-text":
        key = _pem(jwk)
    else:
        path = tmp_path / "client.pem"
        path.write_text(_pem(jwk))
        key = str(path)
    p = _provider(idp, private_key=key)
    assert p.client_auth == "private_key_jwt"  # implied by private_key=
    s = p.get_token_by_client_credentials()
    assert s.token.access_token
    assert idp.stats().get("token:client_credentials:200") == 1


def test_each_assertion_is_fresh_and_aimed_at_the_token_endpoint(idp, client_jwks):
    p = _provider(idp, private_key=_key(client_jwks, "EC"))
    bodies = []
    for _ in range(2):
        body: dict[str, str] = {}
        nbauth._client_auth.apply_client_auth(
            p.client_auth, {}, body, p.client_id, None, audience=p.token_url, key=p._private_key
        )
        bodies.append(body)
    claims = [jwt.decode(b["client_assertion"], options={"verify_signature": False}) for b in bodies]
    assert bodies[0]["client_assertion_type"] == ASSERTION_TYPE
    assert claims[0]["jti"] != claims[1]["jti"]  # RFC 7523 §3 item 7: unique per assertion
    for c in claims:
        assert c["iss"] == c["sub"] == "jwt-client"
        assert c["aud"] == idp.endpoint("token_endpoint")  # OIDC Core §9
        assert 0 < c["exp"] - c["iat"] <= 60
    # and both are accepted: two token requests in a row (the IdP rejects a replayed jti)
    p.get_token_by_client_credentials()
    p.get_token_by_client_credentials(force=True)
    assert idp.stats().get("token:client_credentials:200") == 2


def test_a_refresh_is_authenticated_with_a_new_assertion(idp, client_jwks):
    p = _provider(idp, private_key=_key(client_jwks, "EC"))
    s = p.get_token_by_password("alice", "alice-password", scope="openid")
    first = s.token.access_token
    assert s.refresh().access_token != first
    assert idp.stats().get("token:refresh_token:200") == 1


def test_a_wrong_key_is_invalid_client_saying_what_to_do(idp):
    other = ec.generate_private_key(ec.SECP256R1())
    pem = other.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    p = _provider(idp, private_key=pem)
    with pytest.raises(nbauth.InvalidClient) as info:
        p.get_token_by_client_credentials()
    text = str(info.value)
    assert "registered for this client" in text and "private_key" in text
    assert "PRIVATE KEY" not in text and pem[40:80] not in text


def test_client_secret_jwt(idp):
    p = nbauth.Keycloak(
        idp.origin, "demo", client_id="hmac-client", client_secret=HMAC_SECRET, client_auth="client_secret_jwt"
    )
    s = p.get_token_by_client_credentials()
    assert s.token.access_token
    wrong = nbauth.Keycloak(
        idp.origin, "demo", client_id="hmac-client", client_secret=HMAC_SECRET + "x", client_auth="client_secret_jwt"
    )
    with pytest.raises(nbauth.InvalidClient, match="client_secret_jwt"):
        wrong.get_token_by_client_credentials(force=True)


def test_the_key_never_shows_in_reprs_logs_errors_or_the_cache(idp, client_jwks, nbauth_env, caplog):
    jwk = _key(client_jwks, "EC")
    pem = _pem(jwk)
    caplog.set_level(logging.DEBUG)
    p = _provider(idp, private_key=pem)
    s = p.get_token_by_client_credentials()
    s.refresh()
    shown = " ".join([repr(p), str(p), repr(p._private_key), repr(s), caplog.text, json.dumps(p.config())])
    cache = "".join(f.read_text() for f in nbauth_env.cache_dir.rglob("*.json"))
    for leak in (jwk["d"], pem.splitlines()[1]):
        assert leak not in shown
        assert leak not in cache
    assert "private_key='***'" in repr(p)
    with pytest.raises(TypeError, match="never pickled"):
        pickle.dumps(p._private_key)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("/no/such/key.pem", "no such file"),
        ("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a private key"),
        ({"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}, "public key"),
        ({"kty": "oct", "k": "c2VjcmV0"}, "client_secret_jwt"),
        ("{not json", "neither PEM nor JWK"),
    ],
)
def test_bad_keys_are_configuration_errors(value, match):
    with pytest.raises(nbauth.ConfigurationError, match=match):
        load_private_key(value)


def test_private_key_jwt_without_a_key_says_how_to_give_one(idp):
    p = _provider(idp, client_auth="private_key_jwt")
    with pytest.raises(nbauth.ConfigurationError, match="NBAUTH_PRIVATE_KEY"):
        p.get_token_by_client_credentials()


def test_a_restored_session_reads_its_key_file_again(idp, client_jwks, tmp_path, monkeypatch):
    """A key given as a file is found again after a restart (the cache holds its path, never the key)."""
    monkeypatch.delenv("NBAUTH_PRIVATE_KEY", raising=False)
    path = tmp_path / "client.pem"
    path.write_text(_pem(_key(client_jwks, "EC")))
    path.chmod(0o600)
    s = _provider(idp, private_key=str(path)).get_token_by_password("alice", "alice-password", scope="openid")
    assert s.provider.config()["private_key_file"] == str(path.resolve())
    del s
    _new_kernel()
    restored = nbauth.session("demo")
    assert restored.provider.client_auth == "private_key_jwt" and restored.provider._private_key is not None
    assert nbauth._providers.live_provider(restored.key.issuer, "jwt-client", restored.provider.config()) is None
    assert restored.refresh().access_token
    assert idp.stats().get("token:refresh_token:200") == 1
    del restored
    path.unlink()  # the key file is gone: the refresh says how to give the key
    _new_kernel()
    gone = nbauth.session("demo")
    with pytest.raises(nbauth.ConfigurationError, match="NBAUTH_PRIVATE_KEY"):
        gone.refresh()


def _new_kernel():
    """What a restart leaves: no holder, and no Provider object of the user's."""
    _registry.clear_registry()
    gc.collect()
