"""Profiles and nbauth.login(): the TOML file, the flow choice, secrets, against the real loopback IdP."""

import contextlib
import io
import os
import re
import threading
import time

import pytest
from servers.fusio import FusioServer
from servers.seed001 import CLIENT_ID as SEED_ID
from servers.seed001 import CLIENT_SECRET as SEED_SECRET

import nbauth
from nbauth import _profiles


def write(path, text, mode=0o600):
    path.write_text(text)
    os.chmod(path, mode)
    return path


def kc_profile(idp, name="demo", **extra):
    lines = [f"[{name}]", 'preset = "keycloak"', f'server_url = "{idp.origin}"', 'realm = "demo"']
    settings = {
        "client_id": "public-client",
        "client_auth": "none",
        "scope": "openid profile",
        "flow": "device",
        **extra,
    }
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


def token_requests(idp):
    return sum(v for k, v in idp.stats().items() if k.startswith("token:"))


@pytest.fixture(autouse=True)
def _no_frontend_override(monkeypatch):
    monkeypatch.delenv("NBAUTH_UI", raising=False)  # pytest is no notebook frontend, whatever the shell says


@pytest.fixture
def service_env(monkeypatch):
    monkeypatch.setenv("NBAUTH_CLIENT_ID", "service-client")
    monkeypatch.setenv("NBAUTH_CLIENT_SECRET", "service-secret")


# ------------------------------------------------------------------ the file
def test_profile_builds_the_preset_named_after_the_profile(idp, nbauth_env):
    write(nbauth_env.config_path, kc_profile(idp, name="analytics"))
    provider = _profiles.provider_for(_profiles.get_profile("analytics"))
    assert isinstance(provider, nbauth.Keycloak) and provider.name == "analytics"
    assert provider.token_url == idp.endpoint("token_endpoint") and provider.client_auth == "none"
    assert provider.scope == "openid profile" and provider.client_secret is None


def test_explicit_endpoints_override_the_preset(idp, nbauth_env):
    write(nbauth_env.config_path, kc_profile(idp, device_authorization_url="http://127.0.0.1:9/device", timeout=5))
    provider = _profiles.get_profile("demo").provider()
    assert provider.device_authorization_url == "http://127.0.0.1:9/device"
    assert provider.token_url == idp.endpoint("token_endpoint") and provider.transport.timeout == 5


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            '[a]\npreset = "keycloak"\nserver_url = "https://sso.example.com"\nrealm = "r"\ntokenurl = "x"\n',
            r"unknown key 'tokenurl' \(did you mean 'token_url'\?\)",
        ),
        ('[a]\npreset = "keycloak"\nserver_url = "https://sso.example.com"\n', "needs realm"),
        ('[a]\npreset = "identityserver"\nserver_url = "https://sso.example.com"\n', "needs base_url"),
        ('[a]\npreset = "identityserver"\nbase_url = "https://x.example.com"\nrealm = "r"\n', "not realm"),
        ('[a]\npreset = "okta"\nissuer = "https://x.example.com"\n', "preset 'okta' is not one of"),
        ('[a]\nissuer = "https://x.example.com"\nflow = "implicit"\n', "flow 'implicit' is not one of"),
        ('[a]\nissuer = "https://x.example.com"\nscope = 5\n', "scope has the wrong type"),
        ('[a]\nclient_id = "x"\n', "preset 'discover' needs issuer"),
        ('a = "b"\n', "must be a table"),
        ("[a\n", "not valid TOML"),
    ],
)
def test_bad_profiles_are_refused_with_the_key_and_the_file(nbauth_env, text, match):
    write(nbauth_env.config_path, text)
    with pytest.raises(nbauth.ConfigurationError, match=match) as info:
        nbauth.login("a")
    assert str(nbauth_env.config_path) in str(info.value)


def test_missing_profile_lists_known_ones_and_the_file(nbauth_env, idp):
    with pytest.raises(nbauth.ConfigurationError, match="does not exist yet") as info:
        nbauth.login("analytics")
    assert str(nbauth_env.config_path) in str(info.value) and "known profiles: none" in str(info.value)
    write(nbauth_env.config_path, kc_profile(idp, name="sales") + kc_profile(idp, name="hr"))
    with pytest.raises(nbauth.ConfigurationError, match="known profiles: hr, sales"):
        nbauth.login("analytics")
    with pytest.raises(nbauth.ConfigurationError, match="no profile name given"):
        nbauth.login()


def test_nbauth_config_may_name_a_directory(tmp_path, monkeypatch, idp):
    write(tmp_path / "profiles.toml", kc_profile(idp, name="dir-profile"))
    monkeypatch.setenv("NBAUTH_CONFIG", str(tmp_path))
    assert _profiles.config_path() == tmp_path / "profiles.toml"
    assert list(_profiles.load_profiles()) == ["dir-profile"]


def test_secret_in_a_readable_file_is_refused(idp, nbauth_env):
    write(
        nbauth_env.config_path,
        kc_profile(
            idp,
            client_id="confidential-client",
            client_auth=None,
            client_secret="confidential-secret",
            flow="client_credentials",
        ),
        mode=0o644,
    )
    with pytest.raises(nbauth.ConfigurationError, match=r"chmod 600") as info:
        nbauth.login("demo")
    assert str(nbauth_env.config_path) in str(info.value) and "confidential-secret" not in str(info.value)
    assert token_requests(idp) == 0
    os.chmod(nbauth_env.config_path, 0o600)
    assert "confidential-secret" not in repr(_profiles.get_profile("demo"))
    api = nbauth.login("demo")
    assert api.key.client_id == "confidential-client" and api.name == "demo"
    assert "confidential-secret" not in repr(api.provider)


# ------------------------------------------------------------------ unattended (no frontend)
def test_no_frontend_uses_client_credentials_from_the_environment(idp, nbauth_env, service_env, resource_api):
    write(nbauth_env.config_path, kc_profile(idp))
    assert not _profiles.has_frontend()
    api = nbauth.login("demo")
    assert api.key.client_id == "service-client" and api.provider.client_auth != "none"
    assert api.get(resource_api.whoami_url).json()["client_id"] == "service-client"
    assert nbauth.session("demo") is api
    before = token_requests(idp)
    assert nbauth.login("demo") is api and token_requests(idp) == before  # reused, no token request


def test_environment_secret_for_the_profiles_own_client(idp, nbauth_env, monkeypatch):
    write(nbauth_env.config_path, kc_profile(idp, client_id="confidential-client", client_auth=None))
    monkeypatch.setenv("NBAUTH_CLIENT_SECRET", "confidential-secret")
    api = nbauth.login("demo")
    assert api.key.client_id == "confidential-client" and api.holder.entry.login == "client_credentials"


def test_no_frontend_and_no_credentials_fails_fast_with_what_to_do(idp, nbauth_env):
    write(nbauth_env.config_path, kc_profile(idp, name="analytics"))
    start = time.monotonic()
    with pytest.raises(nbauth.LoginRequired) as info:
        nbauth.login("analytics")
    assert time.monotonic() - start < 5
    message = str(info.value)
    for needed in ("NBAUTH_CLIENT_ID", "NBAUTH_CLIENT_SECRET", "`nbauth login analytics`"):
        assert needed in message
    assert token_requests(idp) == 0


def test_no_frontend_reuses_a_cached_login_of_the_profile(idp, nbauth_env):
    write(nbauth_env.config_path, kc_profile(idp, client_id="confidential-client", client_auth=None))
    provider = _profiles.get_profile("demo").provider(client_secret="confidential-secret")
    provider.get_token_by_password("alice", "alice-password", scope="openid profile")
    from nbauth import _registry

    _registry.clear_registry()  # a new kernel: only the cache remains
    before = token_requests(idp)
    api = nbauth.login("demo")
    assert api.user == "alice" and api.name == "demo" and token_requests(idp) == before
    with pytest.raises(nbauth.LoginRequired):
        nbauth.login("demo", force=True)  # force: no reuse, and nobody to ask


def test_keyring_holds_the_client_secret(idp, nbauth_env):
    import keyring  # declared: nbauth[keyring] is in nbauth[test]
    from keyring.backend import KeyringBackend

    class Memory(KeyringBackend):
        priority = 1

        def __init__(self):
            super().__init__()
            self.store = {}

        def get_password(self, service, username):
            return self.store.get((service, username))

        def set_password(self, service, username, password):
            self.store[(service, username)] = password

        def delete_password(self, service, username):
            self.store.pop((service, username), None)

    previous = keyring.get_keyring()
    keyring.set_keyring(Memory())
    try:
        write(
            nbauth_env.config_path,
            kc_profile(idp, client_id="confidential-client", client_auth=None, flow="client_credentials"),
        )
        with pytest.raises(nbauth.LoginRequired, match="nbauth secret demo"):
            nbauth.login("demo")
        keyring.set_password("nbauth", f"confidential-client@{idp.issuer}", "confidential-secret")
        assert nbauth.login("demo").key.client_id == "confidential-client"
    finally:
        keyring.set_keyring(previous)


# ------------------------------------------------------------------ interactive
def test_interactive_login_runs_the_profiles_flow_and_reuses(idp, nbauth_env):
    write(nbauth_env.config_path, kc_profile(idp))
    out = io.StringIO()

    def approve():
        for _ in range(200):
            found = re.search(r"user_code=([\w-]+)|code ([A-Z0-9-]{4,})", out.getvalue())
            if found:
                idp.approve(found.group(1) or found.group(2))
                return
            time.sleep(0.05)

    approver = threading.Thread(target=approve, daemon=True)
    approver.start()
    with contextlib.redirect_stdout(out):
        api = nbauth.login("demo", interactive=True)
    approver.join(5)
    assert api.user == "alice" and api.name == "demo" and api.holder.entry.login == "device_login"
    before = token_requests(idp)
    with contextlib.redirect_stdout(io.StringIO()):
        assert nbauth.login("demo", interactive=True) is api
    assert token_requests(idp) == before


@pytest.mark.parametrize("flow", ["device", "password", "browser"])
def test_in_a_frontend_the_profiles_flow_wins_over_client_credentials(idp, nbauth_env, service_env, monkeypatch, flow):
    write(nbauth_env.config_path, kc_profile(idp, flow=flow))
    monkeypatch.setenv("NBAUTH_UI", "widgets")  # as in JupyterLab
    called = []

    def entry_point(kind):
        def run(self, scope=None, *, force=False, **options):  # stands in for the widget; signs alice in
            called.append((kind, scope, force))
            return self.get_token_by_password("alice", "alice-password", scope, force=force)

        return run

    for kind, method in (("device", "device_login"), ("password", "login_form"), ("browser", "browser_login")):
        monkeypatch.setattr(nbauth.Provider, method, entry_point(kind))
    api = nbauth.login("demo")
    assert called == [(flow, None, False)] and api.user == "alice" and api.key.client_id == "public-client"
    nbauth.login("demo", flow="device", force=True, scope="openid")
    assert called[-1] == ("device", "openid", True)


def test_frontend_detection_honours_nbauth_ui(monkeypatch):
    monkeypatch.setenv("NBAUTH_UI", "widgets")
    assert _profiles.has_frontend() is True
    monkeypatch.setenv("NBAUTH_UI", "text")
    assert _profiles.has_frontend() is False
    monkeypatch.delenv("NBAUTH_UI")
    assert _profiles.has_frontend() is False  # pytest is no kernel


def test_bad_flow_argument():
    with pytest.raises(nbauth.ConfigurationError, match="flow must be one of"):
        nbauth.login("x", flow="implicit")


# ------------------------------------------------------------------ every preset of the seeds
@pytest.mark.parametrize(
    "shape", ["identityserver", "simpleidserver", "keycloak-legacy", "discover", "discover-rfc8414"]
)
def test_presets_and_discovery_profiles(idp_factory, nbauth_env, service_env, shape):
    env = {
        "identityserver": {"IDP_SHAPE": "identityserver"},
        "simpleidserver": {"IDP_SHAPE": "simpleidserver"},
        "keycloak-legacy": {"IDP_PATH_PREFIX": "/auth"},
        "discover": {},
        "discover-rfc8414": {"IDP_DISCOVERY": "off"},
    }[shape]
    server = idp_factory(**env)
    location = {
        "identityserver": f'preset = "identityserver"\nbase_url = "{server.origin}"',
        "simpleidserver": f'preset = "simpleidserver"\nbase_url = "{server.origin}"\nrealm = "master"',
        "keycloak-legacy": f'preset = "keycloak"\nserver_url = "{server.origin}/auth"\nrealm = "demo"',
        "discover": f'issuer = "{server.issuer}"',
        "discover-rfc8414": f'preset = "discover"\nissuer = "{server.issuer}"',
    }[shape]
    write(nbauth_env.config_path, f'[{shape}]\n{location}\nclient_id = "public-client"\nflow = "device"\n')
    api = nbauth.login(shape)
    assert api.name == shape and api.provider.issuer_key == server.issuer
    assert api.provider.token_url == server.endpoint("token_endpoint")
    assert api.key.client_id == "service-client" and api.token.access_token


def test_bare_issuer_url_logs_in_by_discovery(idp, service_env):
    api = nbauth.login(idp.issuer)
    assert api.name == "demo" and api.key.client_id == "service-client"


def test_fusio_profile(nbauth_env, fusio: FusioServer):
    write(
        nbauth_env.config_path,
        f'[fusio]\npreset = "fusio"\nbase_url = "{fusio.url}"\nclient_id = "fusio-app"\n'
        'client_secret = "fusio-secret"\nscope = ["authorization", "backend"]\n',
    )
    api = nbauth.login("fusio")
    assert api.provider.scope_separator == ","
    assert api.get(f"{fusio.url}/backend/whoami").json()["scope"] == ["authorization", "backend"]


def test_json_body_api_profile(nbauth_env, seed001, monkeypatch):
    write(
        nbauth_env.config_path,
        f'[moodhood]\ntoken_url = "{seed001.url}/v1/auth/token"\nclient_id = "{SEED_ID}"\n'
        'request_format = "json"\nclient_token_for_user_grants = true\nflow = "password"\n',
    )
    monkeypatch.setenv("NBAUTH_CLIENT_SECRET", SEED_SECRET)
    api = nbauth.login("moodhood")
    assert type(api.provider) is nbauth.Provider and api.provider.request_format == "json"
    assert api.get(f"{seed001.url}/v1/rooms").status_code == 200
    assert all(r.content_type == "application/json" for r in seed001.requests if r.path == "/v1/auth/token")
