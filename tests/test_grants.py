"""Grant objects, request building, PKCE, implicit and authorization-response parsing (no I/O)."""

import base64
import hashlib
import re
import urllib.parse

import pytest

import nbauth
from nbauth._client_auth import apply_client_auth, basic_credentials
from nbauth._grants import DeviceCode, authorization_url, join_scope, parse_authorization_response


def test_client_credentials_request():
    req = nbauth.ClientCredentials(scope=["api:read", "api:write"]).request()
    assert dict(req.params) == {"grant_type": "client_credentials", "scope": "api:read api:write"}
    assert req.user_grant is False


def test_password_request_and_repr_hides_password():
    grant = nbauth.Password("alice", "hunter2-secret", scope="openid")
    req = grant.request()
    assert dict(req.params) == {
        "grant_type": "password",
        "username": "alice",
        "password": "hunter2-secret",
        "scope": "openid",
    }
    assert req.secrets == ("hunter2-secret",)
    assert "hunter2" not in repr(grant) and "hunter2" not in repr(req)


def test_authorization_code_refresh_device_requests():
    req = nbauth.AuthorizationCode("CODE123", "http://127.0.0.1:5/cb", "VERIFIER").request()
    assert dict(req.params) == {
        "grant_type": "authorization_code",
        "code": "CODE123",
        "redirect_uri": "http://127.0.0.1:5/cb",
        "code_verifier": "VERIFIER",
    }
    assert "CODE123" not in repr(nbauth.AuthorizationCode("CODE123"))
    assert dict(nbauth.RefreshToken("RT", scope="a").request().params) == {
        "grant_type": "refresh_token",
        "refresh_token": "RT",
        "scope": "a",
    }
    assert dict(DeviceCode("DC").request().params)["grant_type"] == "urn:ietf:params:oauth:grant-type:device_code"


def test_custom_grant_redacts_known_secret_params():
    grant = nbauth.Custom(
        {"grant_type": "password", "username": "u", "password": "pw-secret", "x": "1"},
        endpoint="https://idp.example/custom",
    )
    req = grant.request()
    assert req.endpoint == "https://idp.example/custom"
    assert "pw-secret" in req.secrets
    assert "pw-secret" not in repr(grant) and "pw-secret" not in repr(req)


def test_scope_separator_commas_for_fusio():
    assert join_scope(["authorization", "backend"], ",") == "authorization,backend"
    assert join_scope("authorization backend", ",") == "authorization,backend"
    assert dict(nbauth.ClientCredentials(scope="a b").request(",").params)["scope"] == "a,b"
    assert join_scope([]) is None


def test_pkce_s256():
    verifier, challenge = nbauth.pkce_pair()
    assert 43 <= len(verifier) <= 128 and re.fullmatch(r"[A-Za-z0-9_\-]+", verifier)
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    assert challenge == expected
    assert nbauth.pkce_pair()[0] != verifier


def test_authorization_url_keeps_existing_query():
    url = authorization_url(
        "https://idp/auth?kc_idp_hint=x",
        client_id="c",
        redirect_uri="http://127.0.0.1:1/cb",
        scope="openid",
        state="S",
        code_challenge="C",
        nonce="N",
    )
    q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
    assert q == {
        "kc_idp_hint": "x",
        "response_type": "code",
        "client_id": "c",
        "redirect_uri": "http://127.0.0.1:1/cb",
        "state": "S",
        "code_challenge": "C",
        "code_challenge_method": "S256",
        "scope": "openid",
        "nonce": "N",
    }


def test_parse_implicit_response_seed_002():
    url = (
        "https://your-app.com/callback#state=1234567890&access_token=eyJabc.def.ghi"
        "&token_type=Bearer&expires_in=3600&session_state=xyz"
    )
    token = nbauth.parse_implicit_response(url, state="1234567890")
    assert token.access_token == "eyJabc.def.ghi"
    assert token.token_type == "Bearer"
    assert token.lifetime == pytest.approx(3600, abs=1)


def test_parse_implicit_response_checks_state():
    url = "https://app/cb#state=evil&access_token=abc&token_type=Bearer"
    with pytest.raises(nbauth.VerificationError, match="state"):
        nbauth.parse_implicit_response(url, state="mine")


def test_parse_implicit_error_fragment_raises_its_class():
    with pytest.raises(nbauth.AccessDenied):
        nbauth.parse_implicit_response("https://app/cb#error=access_denied&state=s", state="s")
    with pytest.raises(nbauth.VerificationError):
        nbauth.parse_implicit_response("https://app/cb")


def test_authorization_response_state_iss_and_errors():
    ok = "http://127.0.0.1:9/cb?code=C1&state=S&iss=https%3A%2F%2Fidp"
    assert parse_authorization_response(ok, state="S", issuer="https://idp") == "C1"
    with pytest.raises(nbauth.VerificationError, match="mix-up"):
        parse_authorization_response(ok, state="S", issuer="https://other")
    with pytest.raises(nbauth.VerificationError, match="mix-up"):
        parse_authorization_response("http://h/cb?code=C&state=S", state="S", issuer="https://idp", require_iss=True)
    with pytest.raises(nbauth.VerificationError, match="state"):
        parse_authorization_response(ok, state="T", issuer="https://idp")
    with pytest.raises(nbauth.InvalidScope):
        parse_authorization_response("http://h/cb?error=invalid_scope&state=S", state="S")


def test_basic_credentials_form_encode_before_base64():
    # RFC 6749 §2.3.1: application/x-www-form-urlencoded, then Base64
    value = basic_credentials("odd client:1", "s3cr:t +%/&=é")
    decoded = base64.b64decode(value.split()[1]).decode()
    assert decoded == "odd+client%3A1:s3cr%3At+%2B%25%2F%26%3D%C3%A9"
    cid, secret = decoded.split(":")
    assert urllib.parse.unquote_plus(cid) == "odd client:1"
    assert urllib.parse.unquote_plus(secret) == "s3cr:t +%/&=é"


@pytest.mark.parametrize(
    ("method", "header", "body"),
    [
        ("client_secret_basic", True, {"grant_type": "x"}),
        ("client_secret_post", False, {"grant_type": "x", "client_id": "c", "client_secret": "s"}),
        ("none", False, {"grant_type": "x", "client_id": "c"}),
    ],
)
def test_client_auth_registry(method, header, body):
    headers, data = {}, {"grant_type": "x"}
    apply_client_auth(method, headers, data, "c", "s")
    assert ("Authorization" in headers) is header
    assert data == body


def test_client_auth_basic_without_secret_is_a_public_client():
    headers, data = {}, {}
    apply_client_auth("client_secret_basic", headers, data, "c", None)
    assert headers == {} and data == {"client_id": "c"}


def test_unknown_client_auth_is_a_configuration_error():
    with pytest.raises(nbauth.ConfigurationError, match=r"tls_client_auth.*private_key_jwt"):
        nbauth.Provider("https://idp.example/token", client_auth="tls_client_auth")


def test_jwt_bearer_grant_request():
    """RFC 7523 §2.1: grant_type, the assertion, the scope; the assertion is hidden."""
    grant = nbauth.JWTBearer("aaa.bbb.ccc", scope=["read", "write"])
    request = grant.request()
    assert request.params == {
        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
        "assertion": "aaa.bbb.ccc",
        "scope": "read write",
    }
    assert "aaa.bbb.ccc" in request.secrets and "aaa.bbb.ccc" not in repr(grant)
    with pytest.raises(nbauth.ConfigurationError, match="needs the assertion"):
        nbauth.JWTBearer(" ")
