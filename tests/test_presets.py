"""Presets and discovery against real servers: every provider of the seeds."""

import pytest
import requests
from servers.fusio import SEED_CLIENT_ID, SEED_CLIENT_SECRET
from servers.seed001 import CLIENT_ID, CLIENT_SECRET, PASSWORD, USERNAME

import nbauth


# ---------------------------------------------------------------- Keycloak (seed 004), with and without /auth
def test_keycloak_endpoints_derived():
    kc = nbauth.Keycloak("https://sso.example.com/", "analytics", client_id="jupyter")
    base = "https://sso.example.com/realms/analytics/protocol/openid-connect"
    assert kc.token_url == f"{base}/token" and kc.device_authorization_url == f"{base}/auth/device"
    assert kc.issuer == "https://sso.example.com/realms/analytics" and kc.name == "analytics"
    legacy = nbauth.Keycloak("https://sso.example.com/auth", "analytics")
    assert legacy.token_url == "https://sso.example.com/auth/realms/analytics/protocol/openid-connect/token"
    assert nbauth.Keycloak("https://x.example", "r", name="mine").name == "mine"
    assert nbauth.Keycloak("https://x.example", "r", token_url="https://y.example/t").token_url == "https://y.example/t"


def test_keycloak_legacy_auth_prefix_against_the_idp(idp_factory):
    legacy = idp_factory(IDP_PATH_PREFIX="/auth")
    assert legacy.issuer.endswith("/auth/realms/demo")
    kc = nbauth.Keycloak(
        f"{legacy.origin}/auth", "demo", client_id="confidential-client", client_secret="confidential-secret"
    )
    api = kc.get_token_by_password("alice", "alice-password", scope="openid profile")
    assert api.user == "alice"  # id_token verified against /auth/realms/demo/.../certs and iss
    assert api.get(kc.userinfo_url).json()["preferred_username"] == "alice"


def test_keycloak_without_auth_prefix_fails_clearly_on_a_legacy_server(idp_factory):
    legacy = idp_factory(IDP_PATH_PREFIX="/auth")
    kc = nbauth.Keycloak(legacy.origin, "demo", client_id="confidential-client", client_secret="confidential-secret")
    with pytest.raises(nbauth.ProviderError) as err:
        kc.get_token_by_client_credentials()
    assert err.value.status == 404 and "/realms/demo/protocol/openid-connect/token" in str(err.value)


def test_realm_must_be_a_name():
    with pytest.raises(nbauth.ConfigurationError):
        nbauth.Keycloak("https://sso.example.com", "a/b")


# ---------------------------------------------------------------- IdentityServer (seed 000)
def test_identityserver_preset(idp_factory):
    ids = idp_factory(IDP_SHAPE="identityserver")
    p = nbauth.IdentityServer(ids.origin, client_id="confidential-client", client_secret="confidential-secret")
    assert p.token_url == f"{ids.origin}/connect/token"
    assert p.device_authorization_url == ids["device_authorization_endpoint"]
    assert p.jwks_url == ids["jwks_uri"]
    api = p.get_token_by_password("alice", "alice-password", scope="openid profile")
    assert api.user == "alice"
    assert p.get_token_by_client_credentials().token.access_token
    api.logout()  # /connect/revocation
    assert [row["user"] for row in nbauth.sessions()] == [None]  # only the client-credentials session is left


# ---------------------------------------------------------------- SimpleIdServer (seed 002)
def test_simpleidserver_preset(idp_factory):
    sids = idp_factory(IDP_SHAPE="simpleidserver")
    base = sids.issuer.rsplit("/", 1)[0]
    p = nbauth.SimpleIdServer(base, client_id="confidential-client", client_secret="confidential-secret")
    assert p.issuer == sids.issuer and p.token_url == sids["token_endpoint"]
    assert p.device_authorization_url == sids["device_authorization_endpoint"]
    assert p.revocation_url == sids["revocation_endpoint"] and p.jwks_url == sids["jwks_uri"]
    api = p.get_token_by_password("bob", "bob-password", scope="openid profile")
    assert api.user == "bob"


# ---------------------------------------------------------------- discovery (any OIDC provider)
def test_discovery(idp):
    p = nbauth.Provider.discover(idp.issuer, client_id="public-client", client_auth="none")
    assert p.token_url == idp["token_endpoint"] and p.device_authorization_url == idp["device_authorization_endpoint"]
    assert p.issuer == idp.issuer and p.jwks_url == idp["jwks_uri"]
    assert p.metadata["issuer"] == idp.issuer  # the discovery document stays available
    assert nbauth.Keycloak("https://x.example", "r").metadata is None
    assert p.get_token_by_password("alice", "alice-password", scope="openid profile").user == "alice"


def test_discovery_explicit_endpoint_overrides_missing_metadata(idp_factory):
    omit = idp_factory(IDP_DISCOVERY_OMIT="device_authorization_endpoint,revocation_endpoint")
    p = nbauth.Provider.discover(omit.issuer, client_id="public-client", client_auth="none")
    assert p.device_authorization_url is None and p.revocation_url is None
    with pytest.raises(nbauth.ConfigurationError, match="device_authorization_url"):
        p.device_login()
    explicit = nbauth.Provider.discover(
        omit.issuer,
        client_id="public-client",
        client_auth="none",
        device_authorization_url=omit.endpoint("device_authorization_endpoint"),
        token_url=omit["token_endpoint"],
    )
    assert explicit.device_authorization_url == omit.endpoint("device_authorization_endpoint")


def test_discovery_rfc8414_fallback(idp_factory):
    no_oidc = idp_factory(IDP_DISCOVERY="off")
    assert requests.get(f"{no_oidc.issuer}/.well-known/openid-configuration", timeout=5).status_code == 404
    p = nbauth.Provider.discover(no_oidc.issuer, client_id="confidential-client", client_secret="confidential-secret")
    assert p.token_url == no_oidc["token_endpoint"]
    assert p.get_token_by_client_credentials().token.access_token


def test_discovery_issuer_mismatch_is_refused(idp):
    with pytest.raises(nbauth.VerificationError, match="issuer"):
        nbauth.Provider.discover(idp.issuer.replace("127.0.0.1", "localhost"))


def test_discovery_of_nothing_is_a_provider_error(faulty):
    with pytest.raises(nbauth.ProviderError, match="no OpenID"):
        nbauth.Provider.discover(faulty.url + "/realms/x")


# ---------------------------------------------------------------- Fusio (seed 003)
def test_fusio_consumer_login(fusio):
    p = nbauth.Fusio(fusio.url)
    api = p.get_token_by_password("test", "test-password")
    assert 3500 < api.token.expires_in <= 3600  # from the JWT exp of {"token": ...}
    assert api.get(f"{fusio.url}/backend/whoami").json()["username"] == "test"
    req = fusio.requests_to("/consumer/login")[-1]
    assert req.json == {"username": "test", "password": "test-password"}
    assert req.authorization is None


def test_fusio_consumer_login_wrong_password(fusio):
    with pytest.raises(nbauth.AuthError) as err:
        nbauth.Fusio(fusio.url).get_token_by_password("test", "nope-password")
    assert "nope-password" not in str(err.value)


def test_fusio_oauth2_client_credentials_seed_example(fusio):
    p = nbauth.Fusio(fusio.url, client_id=SEED_CLIENT_ID, client_secret=SEED_CLIENT_SECRET)
    api = p.get_token_by_client_credentials(scope=["authorization", "backend"])
    req = fusio.requests_to("/authorization/token")[-1]
    assert req.form["scope"] == "authorization,backend"  # comma separated, like the seed
    assert req.basic() is not None
    token = api.token
    assert token.scope == ("authorization",)  # granted scope, comma-parsed
    assert 3500 < token.expires_in <= 3600  # absolute expires_in understood


def test_fusio_password_grant_and_refresh(fusio):
    p = nbauth.Fusio(fusio.url, client_id="fusio-app", client_secret="fusio-secret", password_login_url=None)
    api = p.get_token_by_password("test", "test-password", scope="authorization,backend")
    assert fusio.requests_to("/authorization/token")[-1].form["grant_type"] == "password"
    old = api.token
    new = api.refresh()
    assert new.refresh_token != old.refresh_token
    assert api.get(f"{fusio.url}/backend/whoami").status_code == 200


def test_fusio_invalid_scope(fusio):
    p = nbauth.Fusio(fusio.url, client_id="fusio-app", client_secret="fusio-secret")
    with pytest.raises(nbauth.InvalidScope):
        p.get_token_by_client_credentials(scope="nothing-valid")


# ---------------------------------------------------------------- the JSON-body API of seed 001
def seed001_provider(server, **kw):
    return nbauth.Provider(
        f"{server.url}/v1/auth/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        request_format="json",
        client_token_for_user_grants=True,
        name="moodhood",
        **kw,
    )


def test_seed001_client_token(seed001):
    api = seed001_provider(seed001).get_token_by_client_credentials()
    req = seed001.requests_to("/v1/auth/token")[-1]
    assert req.content_type.startswith("application/json")
    assert req.json == {"grant_type": "client_credentials", "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    assert api.token.expires_at is not None  # no expires_in: the JWT exp was used
    assert api.get(f"{seed001.url}/v1/rooms").status_code == 200


def test_seed001_user_token_carries_the_client_token(seed001):
    p = seed001_provider(seed001)
    api = p.get_token_by_password(USERNAME, PASSWORD)
    first, second = seed001.requests_to("/v1/auth/token")[-2:]
    assert first.json["grant_type"] == "client_credentials"
    assert second.json["grant_type"] == "password" and second.json["client_secret"] == CLIENT_SECRET
    assert second.bearer()  # Authorization: Bearer <client token>
    assert api.get(f"{seed001.url}/v1/me").status_code == 200
    # the client token is cached in the provider: a second user login sends no new client_credentials request
    p.get_token_by_password(USERNAME, PASSWORD, force=True)
    grants = [r.json["grant_type"] for r in seed001.requests_to("/v1/auth/token")]
    assert grants.count("client_credentials") == 1


def test_seed001_refresh_uses_json(seed001):
    api = seed001_provider(seed001).get_token_by_password(USERNAME, PASSWORD)
    api.refresh()
    assert seed001.requests_to("/v1/auth/token")[-1].json["grant_type"] == "refresh_token"


def test_seed001_form_body_is_refused_by_the_server(seed001):
    p = nbauth.Provider(
        f"{seed001.url}/v1/auth/token",
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        client_auth="client_secret_post",
    )
    with pytest.raises(nbauth.AuthError) as err:
        p.get_token_by_client_credentials()
    assert err.value.status == 415 and "application/json" in str(err.value)


def test_client_token_with_basic_auth_is_a_configuration_error():
    with pytest.raises(nbauth.ConfigurationError, match="client_secret_post"):
        nbauth.Provider("https://x.example/token", client_token_for_user_grants=True, client_auth="client_secret_basic")
