"""Hardening of the core (issue 11): logout, hostile APIs and token endpoints, OpenID checks, secrets in frames.

Each test failed on the code before: a logged-out session still sent its token, a hostile API could
farm a fresh token per request, a revocation refusal failed the logout, an unusable answer did not
name its status, a short 503 failed the login, and so on.
"""

import re
import sys
import textwrap
import warnings

import pytest
from servers.faulty import json_response, sequence, server_error

import nbauth
from nbauth import _discovery
from nbauth._transport import Transport

SECRET = "client-secret-9b2e"
PASSWORD = "user-password-51fa"


def kc(idp, **kw):
    return nbauth.Keycloak(
        idp.origin, "demo", client_id="confidential-client", client_secret="confidential-secret", **kw
    )


def token_requests(idp, grant=""):
    return sum(v for k, v in idp.stats().items() if k.startswith(f"token:{grant}"))


def test_a_logged_out_session_sends_nothing(idp, resource_api):
    api = kc(idp).get_token_by_password("alice", "alice-password")
    assert api.get(resource_api.whoami_url).status_code == 200
    seen = resource_api.ok_count + resource_api.invalid_token_count + resource_api.missing_token_count
    api.logout()
    with pytest.raises(nbauth.LoginRequired, match="logged out"):
        api.get(resource_api.whoami_url)  # the access token is still fresh: it must not go out anyway
    assert resource_api.ok_count + resource_api.invalid_token_count + resource_api.missing_token_count == seen


def test_logout_survives_a_provider_that_does_not_revoke_access_tokens(faulty):
    faulty.set("POST", "/token", json_response({"access_token": "at-1", "refresh_token": "rt-1", "expires_in": 300}))
    faulty.set(
        "POST", "/revoke", sequence(json_response({}), json_response({"error": "unsupported_token_type"}, status=400))
    )
    p = nbauth.Provider(f"{faulty.url}/token", revocation_url=f"{faulty.url}/revoke", client_id="app")
    api = p.get_token_by_password("alice", PASSWORD)
    report = api.logout()  # RFC 7009 §2.2.1: the refresh token is revoked, the access token simply expires
    assert set(report) == {"access_token"} and "expires" in report["access_token"]
    assert faulty.hits("/revoke") == 2 and api.logged_out
    with pytest.raises(nbauth.LoginRequired):
        nbauth.session(api.id)


def test_a_hostile_api_cannot_farm_tokens(idp, faulty):
    faulty.set("GET", "/api", json_response({"error": "invalid_token"}, status=401))
    api = kc(idp).get_token_by_password("alice", "alice-password")
    before = token_requests(idp, "refresh_token")
    for _ in range(5):
        assert api.get(f"{faulty.url}/api").status_code == 401
    assert token_requests(idp, "refresh_token") == before + 1  # one forced renewal, then that API gets no more
    assert faulty.hits("/api") == 6


def test_api_origins_keep_the_token_at_home(idp, faulty, resource_api):
    api = kc(idp, api_origins=[resource_api.url]).get_token_by_password("alice", "alice-password")
    assert api.get(resource_api.whoami_url).status_code == 200
    with pytest.raises(nbauth.ConfigurationError, match="api_origins"):
        api.get(f"{faulty.url}/steal")
    assert faulty.hits("/steal") == 0


def test_unusable_token_answers_name_status_url_and_field(faulty):
    faulty.set("POST", "/token", json_response({"access_token": "x", "token_type": "mac"}))
    p = nbauth.Provider(f"{faulty.url}/token", client_id="app", client_secret=SECRET)
    with pytest.raises(nbauth.ProviderError) as err:
        p.get_token_by_password("alice", PASSWORD)
    message = str(err.value)
    assert "HTTP 200" in message and faulty.url in message and "token_type" in message
    assert SECRET not in message and PASSWORD not in message


def test_token_requests_have_a_short_default_deadline():
    assert nbauth.Provider("https://sso.example.com/token").transport.timeout <= 15


def test_a_short_503_is_retried_once_a_long_one_fails_at_once(faulty):
    faulty.set(
        "POST",
        "/token",
        sequence(server_error(503, retry_after=1), json_response({"access_token": "at", "expires_in": 60})),
    )
    p = nbauth.Provider(f"{faulty.url}/token", client_id="app", client_secret=SECRET)
    assert p.get_token_by_client_credentials().token.access_token == "at"
    assert faulty.hits("/token") == 2
    faulty.set("POST", "/slow", server_error(503, retry_after=120))
    with pytest.raises(nbauth.ProviderError, match="503"):
        p.get_token("/slow", {"grant_type": "client_credentials"})
    assert faulty.hits("/slow") == 1


def test_discovery_cache_is_keyed_by_the_tls_settings(idp):
    first = _discovery.fetch_metadata(idp.issuer, Transport(verify=True))
    before = idp.stats().get("discovery:200", 0)
    assert _discovery.fetch_metadata(idp.issuer, Transport(verify=True)) == first
    assert idp.stats().get("discovery:200", 0) == before  # cached
    with pytest.warns(nbauth.InsecureTLSWarning):
        insecure = Transport(verify=False)
    _discovery.fetch_metadata(idp.issuer, insecure)
    assert idp.stats().get("discovery:200", 0) == before + 1  # another setting: fetched anew


def test_an_unverifiable_id_token_is_said_once_and_not_used(idp):
    p = nbauth.Provider(idp["token_endpoint"], client_id="confidential-client", client_secret="confidential-secret")
    with pytest.warns(nbauth.VerificationWarning, match="jwks_url"):
        api = p.get_token_by_password("alice", "alice-password", scope="openid", force=True)
    assert api.token.id_token and dict(api.token.claims) == {}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        p.get_token_by_password("alice", "alice-password", scope="openid", force=True)  # said once


def test_issuer_is_compared_exactly_as_published():
    p = nbauth.Provider("https://sso.example.com/token", issuer="https://sso.example.com/")
    assert p.issuer == "https://sso.example.com/"  # what id_tokens carry in iss
    assert p.issuer_key == "https://sso.example.com"  # the cache key form


def test_verbose_tracebacks_show_no_secret_in_frame_locals(faulty, tmp_path):
    """IPython's verbose mode prints every frame's locals with repr: the password and secret show as '***'."""
    from IPython.core.interactiveshell import InteractiveShell

    faulty.set("POST", "/token", json_response({"error": "invalid_grant"}, status=400))
    shell = InteractiveShell.instance()
    shell.run_line_magic("xmode", "Verbose")
    code = textwrap.dedent(f"""
        import nbauth
        p = nbauth.Provider("{faulty.url}/token", client_id="app", client_secret="{SECRET}")
        p.get_token_by_password("alice", "{PASSWORD}")
    """)
    captured = tmp_path / "tb.txt"
    old = sys.stdout
    with captured.open("w") as out:
        sys.stdout = out
        try:
            shell.run_cell(code)
        finally:
            sys.stdout = old
    text = re.sub(r"\x1b\[[0-9;]*m", "", captured.read_text())
    assert "InvalidGrant" in text and "'***'" in text
    lines_with_locals = [line for line in text.splitlines() if PASSWORD in line or SECRET in line]
    # only the user's own cell (the source line) may show what they typed; no frame local does
    assert all("get_token_by_password(" in line or "Provider(" in line for line in lines_with_locals)
