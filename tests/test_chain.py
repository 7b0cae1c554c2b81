"""The credential chain: ``nbauth.explain(profile)`` / ``nbauth explain PROFILE`` and the links that
``nbauth.login(profile)`` takes (environment with a private key, cache, none), against the loopback IdP.
The JupyterHub link is in tests/test_hub.py (it needs a real hub)."""

import os
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from test_cli import cli

import nbauth

CHAIN_VARS = (
    "NBAUTH_CLIENT_ID",
    "NBAUTH_CLIENT_SECRET",
    "NBAUTH_PRIVATE_KEY",
    "NBAUTH_FEDERATED_TOKEN_FILE",
    "JUPYTERHUB_API_URL",
    "JUPYTERHUB_API_TOKEN",
    "JUPYTERHUB_USER",
    "NBAUTH_UI",
)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch):
    for name in CHAIN_VARS:
        monkeypatch.delenv(name, raising=False)


def write_profile(idp, nbauth_env, client_id="public-client"):
    nbauth_env.config_path.write_text(
        f'[demo]\npreset = "keycloak"\nserver_url = "{idp.origin}"\nrealm = "demo"\nclient_id = "{client_id}"\n'
        'client_auth = "none"\nscope = "openid profile"\nflow = "device"\n'
    )
    os.chmod(nbauth_env.config_path, 0o600)


def _pem(idp):
    jwk = next(k for k in requests.get(f"{idp.admin_url}/client-keys", timeout=10).json()["keys"] if k["kty"] == "EC")
    key = jwt.PyJWK.from_dict(jwk).key
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def test_nothing_applies_quickly_and_says_why(idp, nbauth_env):
    write_profile(idp, nbauth_env)
    start = time.perf_counter()
    answer = nbauth.explain("demo")
    assert time.perf_counter() - start < 1.0
    assert answer.chosen is None
    names = [name for name, _, _ in answer.links]
    assert names == ["arguments", "environment", "federated token file", "jupyterhub", "cache", "interactive"]
    assert all(not applies for _, applies, _ in answer.links)
    text = str(answer)
    assert "LoginRequired" in text and "not on a JupyterHub" in text and "NBAUTH_CLIENT_ID is not set" in text
    assert idp.stats() == {}  # no token request, nothing sent to the IdP at all
    with pytest.raises(nbauth.LoginRequired):
        nbauth.login("demo")


def test_environment_with_a_private_key_wins_and_logs_in_unattended(idp, nbauth_env, monkeypatch):
    write_profile(idp, nbauth_env)
    pem = _pem(idp)
    monkeypatch.setenv("NBAUTH_CLIENT_ID", "jwt-client")
    monkeypatch.setenv("NBAUTH_PRIVATE_KEY", pem)
    answer = nbauth.explain("demo")
    assert answer.chosen == "environment" and "private_key_jwt" in str(answer)
    assert pem.splitlines()[1] not in str(answer)
    s = nbauth.login("demo")
    assert s.key.client_id == "jwt-client" and s.provider.client_auth == "private_key_jwt"
    assert idp.stats().get("token:client_credentials:200") == 1


def test_a_cached_session_is_the_cache_link(idp, nbauth_env):
    write_profile(idp, nbauth_env)
    p = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")
    p.get_token_by_password("alice", "alice-password", scope="openid profile")
    answer = nbauth.explain("demo")
    assert answer.chosen == "cache" and "alice" in str(answer)
    assert nbauth.login("demo").user == "alice"


def test_the_cli_explains(idp, nbauth_env):
    write_profile(idp, nbauth_env)
    env = {k: v for k, v in os.environ.items() if k not in CHAIN_VARS}
    out = cli("explain", "demo", env=env)
    assert out.returncode == 0, out.stderr
    assert "no link applies" in out.stdout and "jupyterhub" in out.stdout


def federated_setup(idp, nbauth_env, monkeypatch, tmp_path):
    """A federated token file and the profile ``svc``; returns (the token, the file)."""
    # the federation's token (a Kubernetes service-account token, say): here a JWT this IdP signed and trusts
    federated = idp.password_token("public-client", "alice", scope="openid")["id_token"]
    token_file = tmp_path / "token"
    token_file.write_text(federated + "\n")
    nbauth_env.config_path.write_text(
        f'[svc]\npreset = "keycloak"\nserver_url = "{idp.origin}"\nrealm = "demo"\nclient_id = "exchange-client"\n'
        'client_secret = "exchange-secret"\nresource = "urn:demo:downstream"\n'
    )
    os.chmod(nbauth_env.config_path, 0o600)
    monkeypatch.setenv("NBAUTH_FEDERATED_TOKEN_FILE", str(token_file))
    return federated, token_file


def assert_for_the_federated_subject(session, federated):
    """The session's token is for the profile's resource, acting for the federated token's ``sub``."""
    claims = jwt.decode(session.token.access_token, options={"verify_signature": False})
    assert claims["aud"] == "urn:demo:downstream"
    assert claims["sub"] == jwt.decode(federated, options={"verify_signature": False})["sub"]


def test_a_federated_token_file_is_exchanged(idp, nbauth_env, monkeypatch, tmp_path):
    federated, token_file = federated_setup(idp, nbauth_env, monkeypatch, tmp_path)
    answer = nbauth.explain("svc")
    assert answer.chosen == "federated token file"
    assert federated not in str(answer)
    assert_for_the_federated_subject(nbauth.login("svc"), federated)
    assert idp.stats().get("token:urn:ietf:params:oauth:grant-type:token-exchange:200") == 1
    token_file.write_text("not-a-jwt")
    with pytest.raises(nbauth.InvalidGrant):
        nbauth.login("svc", force=False)


def test_a_federated_token_as_a_jwt_bearer_grant(idp, nbauth_env, monkeypatch, tmp_path):
    """NBAUTH_FEDERATED_GRANT=jwt-bearer: the file's JWT is the grant itself (RFC 7523 §2.1)."""
    federated, token_file = federated_setup(idp, nbauth_env, monkeypatch, tmp_path)
    monkeypatch.setenv("NBAUTH_FEDERATED_GRANT", "jwt-bearer")
    answer = nbauth.explain("svc")
    assert answer.chosen == "federated token file" and "JWT bearer grant" in str(answer)
    assert_for_the_federated_subject(nbauth.login("svc"), federated)
    assert idp.stats().get("token:urn:ietf:params:oauth:grant-type:jwt-bearer:200") == 1
    assert not idp.stats().get("token:urn:ietf:params:oauth:grant-type:token-exchange:200")
    token_file.write_text(federated[:-4] + "AAAA")  # a forged signature
    with pytest.raises(nbauth.InvalidGrant):  # oidc-provider hides the reason of invalid_grant
        nbauth.login("svc")
    assert "AAAA" not in repr(nbauth.JWTBearer(federated[:-4] + "AAAA"))
    monkeypatch.setenv("NBAUTH_FEDERATED_GRANT", "saml")
    assert "is not one of token-exchange, jwt-bearer" in str(nbauth.explain("svc"))
    with pytest.raises(nbauth.ConfigurationError, match="NBAUTH_FEDERATED_GRANT='saml'"):
        nbauth.login("svc")
