"""No token, password or client secret in logs (root logger at DEBUG), reprs, messages or tracebacks."""

import logging
import traceback

import pytest
from test_flows import ApprovingOut

import nbauth
from nbauth.ui._text import device_login_text

PASSWORD = "alice-password"
SECRET = "confidential-secret"


@pytest.fixture
def debug_everything(caplog):
    caplog.set_level(logging.DEBUG)  # root logger: urllib3, requests_oauthlib, oauthlib, nbauth
    for name in ("urllib3", "requests_oauthlib", "oauthlib", "nbauth"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    return caplog


def secrets_of(*sessions):
    out = {PASSWORD, SECRET}
    for s in sessions:
        t = s.token
        out |= {v for v in (t.access_token, t.refresh_token, t.id_token) if v}
    return out


def test_no_secret_in_debug_logs_across_the_flows(idp, debug_everything, resource_api):
    p = nbauth.Keycloak(idp.origin, "demo", client_id="confidential-client", client_secret=SECRET)
    pw = p.get_token_by_password("alice", PASSWORD, scope="openid profile")
    seen = secrets_of(pw)
    pw.get(resource_api.whoami_url)
    pw.refresh()
    seen |= secrets_of(pw)
    pw.get(idp["userinfo_endpoint"])
    cc = p.get_token_by_client_credentials()
    cc.get(resource_api.whoami_url)
    dev = device_login_text(p, "openid", out=ApprovingOut(idp))
    seen |= secrets_of(cc, dev)
    with pytest.raises(nbauth.InvalidGrant):
        p.get_token_by_password("alice", "wrong-" + PASSWORD)
    seen.add("wrong-" + PASSWORD)
    dev.logout()
    assert len(debug_everything.records) > 5  # the loggers really were at DEBUG
    text = debug_everything.text + "".join(str(r.args) for r in debug_everything.records)
    leaked = [s for s in seen if s in text]
    assert not leaked, f"{len(leaked)} secret(s) in the logs"


def test_no_secret_in_tracebacks(idp):
    p = nbauth.Keycloak(idp.origin, "demo", client_id="confidential-client", client_secret=SECRET)
    try:
        p.get_token_by_password("alice", "bad-" + PASSWORD)
    except nbauth.AuthError as exc:
        tb = "".join(traceback.format_exception(exc))
    assert "bad-" + PASSWORD not in tb and SECRET not in tb
    assert "requests.exceptions" not in tb


def test_grant_and_provider_objects_hide_secrets():
    objs = [
        nbauth.Password("alice", PASSWORD),
        nbauth.ClientCredentials("c", SECRET),
        nbauth.RefreshToken("refresh-value-123"),
        nbauth.AuthorizationCode("code-value-123", code_verifier="v" * 43),
        nbauth.Provider("https://x.example/token", client_id="c", client_secret=SECRET),
    ]
    text = " ".join(repr(o) + str(o) for o in objs)
    for secret in (PASSWORD, SECRET, "refresh-value-123", "code-value-123", "v" * 43):
        assert secret not in text
