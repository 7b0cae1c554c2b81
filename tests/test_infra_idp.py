"""Tests of the loopback IdP test infrastructure itself (tests/idp): requests only, no nbauth."""

from __future__ import annotations

import base64
import json
import os
import time
import urllib.parse
from typing import Any

import pytest
import requests
from idp.helpers import (
    CONFIDENTIAL_CLIENT,
    CONFIDENTIAL_REDIRECT_URI,
    DEVICE_GRANT,
    ODD_CLIENT,
    SERVICE_CLIENT,
    IdP,
    IdPStartError,
    approve_device_in_browser,
    authorize,
    basic_auth_header,
    poll_device,
)

CB = "http://127.0.0.1:43210/callback"

# name -> (env for idp_factory, expected issuer path, {metadata key: expected path relative to the origin})
SHAPES: dict[str, tuple[dict[str, str], str, dict[str, str]]] = {
    "keycloak": (
        {},
        "/realms/demo",
        {
            "authorization_endpoint": "/realms/demo/protocol/openid-connect/auth",
            "token_endpoint": "/realms/demo/protocol/openid-connect/token",
            "userinfo_endpoint": "/realms/demo/protocol/openid-connect/userinfo",
            "jwks_uri": "/realms/demo/protocol/openid-connect/certs",
            "introspection_endpoint": "/realms/demo/protocol/openid-connect/token/introspect",
            "revocation_endpoint": "/realms/demo/protocol/openid-connect/revoke",
            "end_session_endpoint": "/realms/demo/protocol/openid-connect/logout",
            "device_authorization_endpoint": "/realms/demo/protocol/openid-connect/auth/device",
        },
    ),
    "keycloak-legacy-auth": (
        {"IDP_PATH_PREFIX": "/auth"},
        "/auth/realms/demo",
        {
            "authorization_endpoint": "/auth/realms/demo/protocol/openid-connect/auth",
            "token_endpoint": "/auth/realms/demo/protocol/openid-connect/token",
            "jwks_uri": "/auth/realms/demo/protocol/openid-connect/certs",
            "device_authorization_endpoint": "/auth/realms/demo/protocol/openid-connect/auth/device",
        },
    ),
    "identityserver": (
        {"IDP_SHAPE": "identityserver"},
        "",
        {
            "authorization_endpoint": "/connect/authorize",
            "token_endpoint": "/connect/token",
            "userinfo_endpoint": "/connect/userinfo",
            "jwks_uri": "/.well-known/openid-configuration/jwks",
            "introspection_endpoint": "/connect/introspect",
            "revocation_endpoint": "/connect/revocation",
            "end_session_endpoint": "/connect/endsession",
            "device_authorization_endpoint": "/connect/deviceauthorization",
        },
    ),
    "identityserver-prefix": (
        {"IDP_SHAPE": "identityserver", "IDP_PATH_PREFIX": "/idsrv/"},
        "/idsrv",
        {
            "token_endpoint": "/idsrv/connect/token",
            "jwks_uri": "/idsrv/.well-known/openid-configuration/jwks",
        },
    ),
    "simpleidserver": (
        {"IDP_SHAPE": "simpleidserver"},
        "/master",
        {
            "authorization_endpoint": "/master/authorization",
            "token_endpoint": "/master/token",
            "userinfo_endpoint": "/master/userinfo",
            "jwks_uri": "/master/jwks",
            "introspection_endpoint": "/master/token_info",
            "revocation_endpoint": "/master/token/revoke",
            "end_session_endpoint": "/master/end_session",
            "device_authorization_endpoint": "/master/device_authorization",
        },
    ),
    "simpleidserver-realm": (
        {"IDP_SHAPE": "simpleidserver", "IDP_REALM": "tenant1"},
        "/tenant1",
        {
            "token_endpoint": "/tenant1/token",
            "introspection_endpoint": "/tenant1/token_info",
        },
    ),
}
DEVICE_PAGES = {
    "keycloak": "/realms/demo/device",
    "keycloak-legacy-auth": "/auth/realms/demo/device",
    "identityserver": "/device",
    "identityserver-prefix": "/idsrv/device",
    "simpleidserver": "/master/Device",
    "simpleidserver-realm": "/tenant1/Device",
}


def path_of(url: str) -> str:
    return urllib.parse.urlsplit(url).path


@pytest.fixture(params=list(SHAPES))
def shaped(request: pytest.FixtureRequest, idp_factory: Any) -> tuple[str, IdP]:
    env = SHAPES[request.param][0]
    return request.param, idp_factory(**env)


def test_default_idp_is_the_keycloak_shape(idp: IdP, idp_factory: Any) -> None:
    assert idp is idp_factory()
    assert idp.shape == "keycloak"
    assert path_of(idp.issuer) == "/realms/demo"
    assert urllib.parse.urlsplit(idp.issuer).hostname == "127.0.0.1"
    assert idp.env["IDP_DEVICE_INTERVAL"] == "1"


def test_discovery_and_urls(shaped: tuple[str, IdP]) -> None:
    name, idp = shaped
    _, issuer_path, expected = SHAPES[name]
    assert path_of(idp.issuer) == issuer_path
    meta = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=5).json()
    assert meta["issuer"] == idp.issuer
    for key, path in expected.items():
        assert path_of(meta[key]) == path, key
        assert idp.endpoints[key] == meta[key]
    # RFC 8414: /.well-known/oauth-authorization-server inserted before the issuer's path
    rfc8414 = requests.get(f"{idp.origin}/.well-known/oauth-authorization-server{issuer_path}", timeout=5)
    assert rfc8414.status_code == 200 and rfc8414.json()["issuer"] == idp.issuer
    assert idp.oauth_discovery_url == rfc8414.url
    assert path_of(idp.device_page or "") == DEVICE_PAGES[name]
    assert requests.get(meta["jwks_uri"], timeout=5).json()["keys"]
    # admin API lives at the origin, never under the prefix
    assert idp.admin_url == f"{idp.origin}/_admin"
    health = requests.get(f"{idp.admin_url}/health", timeout=5).json()
    assert health["issuer"] == idp.issuer


def test_flows_in_every_shape(shaped: tuple[str, IdP]) -> None:
    name, idp = shaped
    # client_credentials: Basic (confidential) and client_secret_post (service)
    r = idp.token({"grant_type": "client_credentials"}, auth=CONFIDENTIAL_CLIENT)
    assert r.status_code == 200, r.text
    assert r.json()["token_type"] == "Bearer"
    r = idp.token(
        {"grant_type": "client_credentials", "client_id": SERVICE_CLIENT[0], "client_secret": SERVICE_CLIENT[1]}
    )
    assert r.status_code == 200, r.text

    # password grant (custom grant of server.js)
    t = idp.password_token("public-client", "alice", scope="openid profile")
    assert {"access_token", "refresh_token", "id_token"} <= t.keys()
    ui = requests.get(
        idp.endpoint("userinfo_endpoint"), headers={"Authorization": f"Bearer {t['access_token']}"}, timeout=5
    )
    assert ui.status_code == 200 and ui.json()["preferred_username"] == "alice"

    # device flow, approved through the admin API
    d = idp.device_authorization("public-client", scope="openid")
    assert d["interval"] == 1 and path_of(d["verification_uri"]) == DEVICE_PAGES[name]
    pending = idp.token({"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": "public-client"})
    assert pending.json()["error"] == "authorization_pending"
    idp.approve(d["user_code"], username="bob")
    r = poll_device(idp, d["device_code"], client_id="public-client", interval=d["interval"], timeout=10)
    assert r.status_code == 200 and "id_token" in r.json()

    # authorization code + PKCE through the login form (interaction routes of this shape)
    res = authorize(idp, "public-client", CB, scope="openid profile")
    assert res.get("code"), res
    assert res["_state_ok"] and res["iss"] == idp.issuer
    tok = idp.token(
        {
            "grant_type": "authorization_code",
            "code": res["code"],
            "redirect_uri": CB,
            "client_id": "public-client",
            "code_verifier": res["_verifier"],
        }
    )
    assert tok.status_code == 200, tok.text
    rt = tok.json()["refresh_token"]
    r = idp.token({"grant_type": "refresh_token", "refresh_token": rt, "client_id": "public-client"})
    assert r.status_code == 200 and r.json()["refresh_token"] != rt
    reuse = idp.token({"grant_type": "refresh_token", "refresh_token": rt, "client_id": "public-client"})
    assert reuse.json()["error"] == "invalid_grant"

    stats = idp.stats()
    assert stats["token:client_credentials:200"] == 2
    assert stats["token:refresh_token:200"] == 1
    assert stats["token:refresh_token:400"] == 1


def test_device_page_in_browser_every_shape(shaped: tuple[str, IdP]) -> None:
    _, idp = shaped
    d = idp.device_authorization("public-client", scope="openid")
    page = approve_device_in_browser(d["verification_uri_complete"])
    assert "Sign-in Success" in page.text
    r = poll_device(idp, d["device_code"], client_id="public-client", interval=d["interval"], timeout=10)
    assert r.status_code == 200


def test_login_form_and_wrong_password(idp: IdP) -> None:
    res = authorize(idp, "public-client", CB, user=("alice", "wrong"))
    page = res["error_page"]
    assert 'id="kc-form-login"' in page.text and "Invalid username or password" in page.text
    denied = authorize(idp, "public-client", CB, abort=True)
    assert denied["error"] == "access_denied"


def test_confidential_code_flow_with_basic(idp: IdP) -> None:
    res = authorize(idp, CONFIDENTIAL_CLIENT[0], CONFIDENTIAL_REDIRECT_URI, scope="openid email", pkce=False)
    r = idp.token(
        {"grant_type": "authorization_code", "code": res["code"], "redirect_uri": CONFIDENTIAL_REDIRECT_URI},
        auth=CONFIDENTIAL_CLIENT,
    )
    assert r.status_code == 200, r.text


# ------------------------------------------------------------------ RFC 6749 s2.3.1 Basic encoding
def test_odd_client_form_encoded_basic_works(idp: IdP) -> None:
    cid, secret = ODD_CLIENT
    assert cid == "odd client:1" and ":" in secret and "%" in secret and "+" in secret
    header = basic_auth_header(cid, secret)  # quote_plus each, then Base64
    assert base64.b64decode(header.split()[1]).decode() == "odd+client%3A1:s3cr%3At+%2B%25%2F%26%3D%3F~"
    r = requests.post(
        idp.endpoint("token_endpoint"),
        data={"grant_type": "client_credentials"},
        headers={"Authorization": header},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    # %20 for the spaces (urllib.parse.quote) decodes the same way
    raw = f"{urllib.parse.quote(cid, safe='')}:{urllib.parse.quote(secret, safe='')}"
    r = requests.post(
        idp.endpoint("token_endpoint"),
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()},
        timeout=5,
    )
    assert r.status_code == 200, r.text
    # the password grant works with it too
    r = idp.token({"grant_type": "password", "username": "alice", "password": "alice-password"}, auth=ODD_CLIENT)
    assert r.status_code == 200, r.text


def test_odd_client_raw_basic_fails(idp: IdP) -> None:
    # what requests' auth=(id, secret) sends: no form-encoding. The id contains ':' so the split is wrong,
    # and the "secret" half has '%/&' which is not valid percent-encoding -> invalid_request.
    r = requests.post(
        idp.endpoint("token_endpoint"), data={"grant_type": "client_credentials"}, auth=ODD_CLIENT, timeout=5
    )
    assert r.status_code == 400
    assert r.json()["error"] == "invalid_request"
    assert "not properly encoded" in r.json()["error_description"]


def test_plus_in_raw_basic_means_space(idp: IdP) -> None:
    # oidc-provider form-decodes: a raw '+' would become ' ', so a secret with '+' sent raw fails
    cid, secret = ODD_CLIENT
    raw = f"{urllib.parse.quote_plus(cid)}:{secret.replace('%', '%25').replace('/', '%2F').replace('&', '%26')}"
    r = requests.post(
        idp.endpoint("token_endpoint"),
        data={"grant_type": "client_credentials"},
        headers={"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()},
        timeout=5,
    )
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_odd_client_secret_in_body_is_accepted_too(idp: IdP) -> None:
    # oidc-provider accepts client_secret_post for a client registered with client_secret_basic (and vice versa)
    cid, secret = ODD_CLIENT
    r = requests.post(
        idp.endpoint("token_endpoint"),
        timeout=5,
        data={"grant_type": "client_credentials", "client_id": cid, "client_secret": secret},
    )
    assert r.status_code == 200, r.text


def test_both_basic_and_body_secret_is_invalid_request(idp: IdP) -> None:
    r = requests.post(
        idp.endpoint("token_endpoint"),
        auth=CONFIDENTIAL_CLIENT,
        timeout=5,
        data={"grant_type": "client_credentials", "client_secret": CONFIDENTIAL_CLIENT[1]},
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


# ------------------------------------------------------------------ discovery variants
def test_discovery_omit(idp_factory: Any) -> None:
    idp = idp_factory(IDP_DISCOVERY_OMIT="device_authorization_endpoint,revocation_endpoint")
    meta = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=5).json()
    assert "device_authorization_endpoint" not in meta and "revocation_endpoint" not in meta
    assert "token_endpoint" in meta and "introspection_endpoint" in meta
    rfc8414 = requests.get(idp.oauth_discovery_url, timeout=5).json()
    assert "device_authorization_endpoint" not in rfc8414
    assert idp.omitted == ["device_authorization_endpoint", "revocation_endpoint"]
    # the endpoints still work at their explicit URLs
    with pytest.raises(KeyError):
        idp["device_authorization_endpoint"]
    url = idp.endpoint("device_authorization_endpoint")
    assert url.endswith("/realms/demo/protocol/openid-connect/auth/device")
    d = requests.post(url, data={"client_id": "public-client"}, timeout=5)
    assert d.status_code == 200 and "device_code" in d.json()
    t = idp.password_token()
    rev = requests.post(
        idp.endpoint("revocation_endpoint"), timeout=5, data={"token": t["refresh_token"], "client_id": "public-client"}
    )
    assert rev.status_code == 200


def test_discovery_off_keeps_rfc8414(idp_factory: Any) -> None:
    idp = idp_factory(IDP_DISCOVERY="off")
    r = requests.get(f"{idp.issuer}/.well-known/openid-configuration", timeout=5)
    assert r.status_code == 404
    assert idp.discovery_url is None
    r = requests.get(f"{idp.origin}/.well-known/oauth-authorization-server/realms/demo", timeout=5)
    assert r.status_code == 200 and r.json()["issuer"] == idp.issuer
    assert idp.meta["token_endpoint"] == r.json()["token_endpoint"]
    # an IdP object built from the issuer alone falls back to RFC 8414 too
    bare = IdP(idp.issuer)
    assert bare.meta["issuer"] == idp.issuer
    assert idp.token({"grant_type": "client_credentials"}, auth=CONFIDENTIAL_CLIENT).status_code == 200


# ------------------------------------------------------------------ fixtures
def test_reset_part1_dirty_the_idp(idp: IdP) -> None:
    idp.password_token()
    idp.auto_login("bob")
    idp.set_clock(1000)
    assert idp.stats()["token:password:200"] == 1


def test_reset_part2_idp_was_reset(idp: IdP) -> None:
    assert idp.stats() == {}
    # auto-login is off again: the login form is used (as alice)
    res = authorize(idp, "public-client", CB, scope="openid profile")
    t = idp.token(
        {
            "grant_type": "authorization_code",
            "code": res["code"],
            "redirect_uri": CB,
            "client_id": "public-client",
            "code_verifier": res["_verifier"],
        }
    ).json()
    claims = requests.get(
        idp.endpoint("userinfo_endpoint"), timeout=5, headers={"Authorization": f"Bearer {t['access_token']}"}
    ).json()
    assert claims["preferred_username"] == "alice"
    # clock skew back to 0: a fresh token is not issued 1000 s in the future
    assert abs(idp.admin("clock", skew="0").json()["now"] - time.time()) < 5


def test_auto_login_env_survives_reset(idp_factory: Any) -> None:
    idp = idp_factory(IDP_AUTO_LOGIN="bob", IDP_SHAPE="identityserver")
    res = authorize(idp, "public-client", CB, user=("nobody", "x"))  # never sees the form
    assert res.get("code")


def test_clients_file(idp_factory: Any, tmp_path: Any) -> None:
    clients = [
        {
            "client_id": "only-client",
            "client_secret": "only-secret",
            "grant_types": ["client_credentials"],
            "response_types": [],
            "redirect_uris": [],
            "token_endpoint_auth_method": "client_secret_basic",
        }
    ]
    path = tmp_path / "clients.json"
    path.write_text(json.dumps(clients))
    idp = idp_factory(IDP_CLIENTS_FILE=str(path))
    assert idp.token({"grant_type": "client_credentials"}, auth=("only-client", "only-secret")).status_code == 200
    r = idp.token({"grant_type": "client_credentials"}, auth=CONFIDENTIAL_CLIENT)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"


def test_startup_failure_raises_with_log(idp_factory: Any) -> None:
    with pytest.raises(IdPStartError, match="unknown IDP_SHAPE"):
        idp_factory(IDP_SHAPE="bogus")


def test_nbauth_env_is_isolated(nbauth_env: Any, tmp_path: Any) -> None:
    assert os.environ["NBAUTH_CACHE_DIR"] == str(nbauth_env.cache_dir)
    assert os.environ["NBAUTH_CONFIG"] == str(nbauth_env.config_path)
    assert str(nbauth_env.cache_dir).startswith(str(tmp_path))
    for name in ("NBAUTH_CACHE", "NBAUTH_CLIENT_ID", "NBAUTH_CLIENT_SECRET"):
        assert name not in os.environ


def test_resource_api_introspects(idp: IdP, resource_api: Any) -> None:
    t = idp.password_token("public-client", "alice", scope="openid")
    ok = requests.get(resource_api.whoami_url, headers={"Authorization": f"Bearer {t['access_token']}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["active"] is True
    assert ok.json()["sub"] == "6c1e1d7a-0b8f-4a63-9a55-1f0a3f7f0a11"
    bad = requests.get(resource_api.whoami_url, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert bad.status_code == 401
    assert 'error="invalid_token"' in bad.headers["WWW-Authenticate"]
    none = requests.get(resource_api.whoami_url, timeout=5)
    assert none.status_code == 401 and "error=" not in none.headers["WWW-Authenticate"]
    idp.set_clock(400)  # access tokens live 300 s
    expired = requests.get(resource_api.whoami_url, timeout=5, headers={"Authorization": f"Bearer {t['access_token']}"})
    assert expired.status_code == 401
    assert resource_api.invalid_token_count == 2
    assert resource_api.missing_token_count == 1 and resource_api.ok_count == 1
    assert resource_api.authorization_headers == [
        f"Bearer {t['access_token']}",
        "Bearer nope",
        None,
        f"Bearer {t['access_token']}",
    ]
    assert idp.stats()["introspection:200"] == 3


def test_resource_api_for_other_shape(idp_factory: Any, resource_api_for: Any) -> None:
    idp = idp_factory(IDP_SHAPE="identityserver")
    api = resource_api_for(idp, client_id=ODD_CLIENT[0], client_secret=ODD_CLIENT[1])
    t = idp.password_token()
    r = requests.get(api.whoami_url, headers={"Authorization": f"Bearer {t['access_token']}"}, timeout=5)
    assert r.status_code == 200 and r.json()["client_id"] == "public-client"


def test_device_deny_and_admin_errors(idp: IdP) -> None:
    d = idp.device_authorization("public-client")
    idp.deny(d["user_code"])
    r = idp.token({"grant_type": DEVICE_GRANT, "device_code": d["device_code"], "client_id": "public-client"})
    assert r.status_code == 400 and r.json()["error"] == "access_denied"
    assert idp.approve(d["user_code"], check=False).status_code == 409  # already decided
    assert idp.approve("NOPE-NOPE", check=False).status_code == 404
    with pytest.raises(RuntimeError):
        idp.approve("NOPE-NOPE")
