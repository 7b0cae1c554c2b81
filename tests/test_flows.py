"""Every grant against the real loopback IdP (node-oidc-provider, Keycloak-shaped URLs)."""

import io
import re
import threading
import time

import jwt
import pytest
import requests
from idp.helpers import CONFIDENTIAL_CLIENT, ODD_CLIENT, authorize

import nbauth
from nbauth.ui._text import device_login_text


def kc(idp, client_id="confidential-client", client_secret="confidential-secret", **kw):
    return nbauth.Keycloak(idp.origin, "demo", client_id=client_id, client_secret=client_secret, **kw)


def public(idp, client_id="public-client", **kw):
    return nbauth.Keycloak(idp.origin, "demo", client_id=client_id, client_auth="none", **kw)


def token_requests(idp, grant=None):
    stats = idp.stats()
    return sum(v for k, v in stats.items() if k.startswith("token:") and (grant is None or f":{grant}:" in k))


def test_client_credentials_basic(idp, resource_api):
    api = kc(idp).get_token_by_client_credentials()
    assert isinstance(api, nbauth.Session)
    assert api.token.refresh_token is None and api.token.expires_in > 200
    r = api.get(resource_api.whoami_url)
    assert r.status_code == 200 and r.json()["client_id"] == "confidential-client"
    assert idp.stats().get("token:client_credentials:200") == 1


def test_client_credentials_post_with_other_client(idp, resource_api):
    p = nbauth.Keycloak(
        idp.origin, "demo", client_id="service-client", client_secret="service-secret", client_auth="client_secret_post"
    )
    api = p.get_token_by_client_credentials()
    assert api.get(resource_api.whoami_url).json()["client_id"] == "service-client"


def test_client_credentials_grant_with_explicit_credentials(idp):
    p = public(idp)  # a public provider object; the grant brings its own confidential client
    api = p.get_token_by_client_credentials("service-client", "service-secret")
    assert api.key.client_id == "service-client"


def test_odd_client_credentials_are_form_encoded_in_basic(idp):
    p = nbauth.Keycloak(idp.origin, "demo", client_id=ODD_CLIENT[0], client_secret=ODD_CLIENT[1])
    assert p.get_token_by_client_credentials().token.access_token


def test_password_grant_verifies_id_token(idp, resource_api):
    api = kc(idp).get_token_by_password("alice", "alice-password", scope="openid profile email")
    token = api.token
    assert token.claims["preferred_username"] == "alice" and token.claims["iss"] == idp.issuer
    assert token.refresh_token and token.id_token
    assert api.user == "alice"
    assert api.get(resource_api.whoami_url).json()["sub"] == token.claims["sub"]


def test_wrong_password_is_invalid_grant_without_the_password(idp):
    with pytest.raises(nbauth.InvalidGrant) as err:
        kc(idp).get_token_by_password("alice", "wrong-password-xyz")
    assert "wrong-password-xyz" not in str(err.value)
    assert err.value.status == 400 and err.value.url.endswith("/token")


def test_unknown_client_is_invalid_client(idp):
    with pytest.raises(nbauth.InvalidClient) as err:
        kc(idp, client_id="nobody", client_secret="nothing-secret").get_token_by_client_credentials()
    assert "nothing-secret" not in str(err.value)


def test_wrong_client_secret_is_invalid_client(idp):
    with pytest.raises(nbauth.InvalidClient):
        kc(idp, client_secret="not-the-secret").get_token_by_client_credentials()


def test_grant_not_allowed_is_unauthorized_client(idp):
    p = nbauth.Keycloak(idp.origin, "demo", client_id="service-client", client_secret="service-secret")
    with pytest.raises((nbauth.UnauthorizedClient, nbauth.InvalidGrant, nbauth.InvalidRequest)):
        p.get_token_by_password("alice", "alice-password")


def test_unknown_error_code_is_typed(idp):
    # RFC 8707 invalid_target is not in RFC 6749 §5.2: it stays an OAuthError carrying its code
    with pytest.raises(nbauth.OAuthError) as err:
        kc(idp).get_token(nbauth.Custom({"grant_type": "client_credentials", "resource": "urn:nope"}))
    assert err.value.error == "invalid_target"


def test_authorization_code_with_pkce(idp):
    verifier, challenge = nbauth.pkce_pair()
    redirect = "http://127.0.0.1:43219/callback"
    res = authorize(
        idp,
        "public-client",
        redirect,
        scope="openid profile",
        pkce=False,
        code_challenge=challenge,
        code_challenge_method="S256",
    )
    assert res["_state_ok"]
    api = public(idp).get_token_by_authorization_code(res["code"], redirect, verifier)
    assert api.user == "alice"
    assert api.token.refresh_token
    # the code is single use (RFC 6749 §4.1.2)
    with pytest.raises(nbauth.InvalidGrant):
        public(idp).get_token_by_authorization_code(res["code"], redirect, verifier)


def test_authorization_code_wrong_verifier(idp):
    _, challenge = nbauth.pkce_pair()
    redirect = "http://127.0.0.1:43219/callback"
    res = authorize(idp, "public-client", redirect, pkce=False, code_challenge=challenge, code_challenge_method="S256")
    with pytest.raises(nbauth.InvalidGrant):
        public(idp).get_token_by_authorization_code(res["code"], redirect, "x" * 64)


def test_refresh_rotates_and_old_refresh_token_is_dead(idp):
    api = public(idp).get_token_by_password("alice", "alice-password", scope="openid")
    old = api.token
    new = api.refresh()
    assert new.refresh_token != old.refresh_token and new.access_token != old.access_token
    assert new.claims["sub"] == old.claims["sub"]
    reuse = requests.post(
        idp["token_endpoint"],
        data={"grant_type": "refresh_token", "refresh_token": old.refresh_token, "client_id": "public-client"},
        timeout=10,
    )
    assert reuse.json()["error"] == "invalid_grant"


def test_refresh_token_grant_object(idp):
    p = public(idp)
    first = p.get_token_by_password("alice", "alice-password")
    old = first.token
    api = p.get_token(nbauth.RefreshToken(old.refresh_token), force=True)
    assert api.token.access_token != old.access_token
    assert api is first  # same issuer, client, user and scope: the same session, now with the new token


def test_custom_endpoint_and_params_seed_000(idp):
    p = kc(idp)
    api = p.get_token(idp["token_endpoint"], {"grant_type": "client_credentials", "scope": ""})
    assert api.token.access_token
    api2 = p.get_token(
        nbauth.Custom(
            {"grant_type": "password", "username": "bob", "password": "bob-password", "scope": "openid profile"}
        )
    )
    assert api2.user == "bob"


def test_custom_relative_endpoint_is_joined_with_the_token_url(idp):
    p = kc(idp)
    api = p.get_token("token", {"grant_type": "client_credentials"})
    assert api.token.access_token


class ApprovingOut(io.StringIO):
    """A text stream that approves (or denies) the device code as soon as it is printed."""

    def __init__(self, idp, action="approve", username="alice", delay=0.2):
        super().__init__()
        self.idp, self.action, self.username, self.delay = idp, action, username, delay

    def write(self, s):
        m = re.search(r"enter the code (\S+)", s)
        if m and self.action:
            code = m.group(1)

            def act():
                time.sleep(self.delay)
                if self.action == "approve":
                    self.idp.approve(code, self.username)
                else:
                    self.idp.deny(code)

            threading.Thread(target=act, daemon=True).start()
        return super().write(s)


def test_device_login_text_approved(idp):
    out = ApprovingOut(idp, username="bob")
    api = device_login_text(public(idp), "openid profile", out=out)
    text = out.getvalue()
    assert "/device" in text and "Logged in to demo as bob" in text
    assert api.user == "bob"
    assert api.token.access_token not in text


def test_device_login_denied(idp):
    with pytest.raises(nbauth.AccessDenied, match="denied"):
        device_login_text(public(idp), "openid", out=ApprovingOut(idp, action="deny"))


def test_device_login_expired(idp_factory):
    short = idp_factory(IDP_TTL_DeviceCode=2)
    start = time.monotonic()
    with pytest.raises(nbauth.ExpiredToken):
        device_login_text(public(short), "openid", out=ApprovingOut(short, action=None))
    assert time.monotonic() - start < 10


def test_device_login_confidential_client(idp):
    api = device_login_text(kc(idp), "openid profile", out=ApprovingOut(idp))
    assert api.user == "alice"


def test_device_login_public_api_in_text_mode(idp, capsys, monkeypatch):
    monkeypatch.setenv("NBAUTH_UI", "text")
    p = public(idp)
    holder = {}

    def approve_when_printed():
        for _ in range(100):
            m = re.search(r"enter the code (\S+)", capsys.readouterr().out + holder.get("buf", ""))
            if m:
                idp.approve(m.group(1))
                return
            time.sleep(0.1)

    t = threading.Thread(target=approve_when_printed, daemon=True)
    t.start()
    api = p.device_login(scope="openid profile")
    assert api.user == "alice"
    # a second call reuses the session: one line, no new device code, no token request
    before = token_requests(idp)
    again = p.device_login(scope="openid profile")
    assert again is api
    assert token_requests(idp) == before
    assert "Using the cached session demo#" in capsys.readouterr().out


def test_confidential_client_credentials_constants():
    assert CONFIDENTIAL_CLIENT == ("confidential-client", "confidential-secret")


@pytest.mark.parametrize(
    ("code", "cls"),
    [
        ("invalid_request", nbauth.InvalidRequest),
        ("invalid_client", nbauth.InvalidClient),
        ("invalid_grant", nbauth.InvalidGrant),
        ("unauthorized_client", nbauth.UnauthorizedClient),
        ("unsupported_grant_type", nbauth.UnsupportedGrantType),
        ("invalid_scope", nbauth.InvalidScope),
        ("access_denied", nbauth.AccessDenied),
        ("expired_token", nbauth.ExpiredToken),
        ("authorization_pending", nbauth.AuthorizationPending),
        ("slow_down", nbauth.SlowDown),
    ],
)
def test_every_rfc_code_has_its_class(code, cls):
    from nbauth._errors import error_from_code

    err = error_from_code(code, "details", url="https://idp.example/token", status=400)
    assert type(err) is cls and err.error == code and isinstance(err, nbauth.OAuthError)
    assert "https://idp.example/token" in str(err) and err.hint in str(err)


def test_unsupported_grant_type_from_the_idp(idp):
    with pytest.raises(nbauth.UnsupportedGrantType):
        kc(idp).get_token(nbauth.Custom({"grant_type": "urn:example:no-such-grant"}))


def test_invalid_request_from_the_idp(idp):
    with pytest.raises(nbauth.InvalidRequest):
        kc(idp).get_token(nbauth.Custom({"grant_type": "password", "username": "alice"}))  # no password


def test_device_login_for_a_resource_is_its_own_session(idp, capsys, monkeypatch):
    """``resource=`` on an interactive login (RFC 8707 §2): the token is for that API, and a login for
    another API is not answered with it."""
    monkeypatch.setenv("NBAUTH_UI", "text")
    p = public(idp)

    def approve_when_printed():
        for _ in range(100):
            m = re.search(r"enter the code (\S+)", capsys.readouterr().out)
            if m:
                idp.approve(m.group(1))
                return
            time.sleep(0.1)

    threading.Thread(target=approve_when_printed, daemon=True).start()
    api = p.device_login(scope="openid api:read", resource="urn:demo:api")
    claims = jwt.decode(api.token.access_token, options={"verify_signature": False})
    assert claims["aud"] == "urn:demo:api" and api.key.resource == "urn:demo:api"
    assert p.device_login(scope="openid api:read", resource="urn:demo:api") is api
    assert "Using the cached session" in capsys.readouterr().out
    assert p.resource == () and nbauth.sessions()[0]["id"] == api.id
