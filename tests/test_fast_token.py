"""`nbauth token NAME` fast path (nbauth_cli): same answer as the full command line, without requests.

The fast path reads the cache entry with the standard library only; these tests compare it with
`python -m nbauth token` (the full path) on the same cache, and check it steps aside (falls back to
the full path) whenever the full path would do something else: refresh, warn, choose, refuse.
"""

import json
import os
import subprocess
import sys

from test_cli import cli, profiles

import nbauth_cli
from nbauth import _store, _tokens

PROBE = """
import json, sys
import nbauth_cli
token = nbauth_cli.fast_token(sys.argv[1:])
print(json.dumps({"token": token, "modules": sorted(m for m in sys.modules if m.split('.')[0] in
                  ("requests", "nbauth", "urllib3", "oauthlib", "jwt", "requests_oauthlib"))}))
"""


def probe(*args, env=None):
    out = subprocess.run(
        [sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=60, env=env or os.environ.copy()
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def entry_script(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "nbauth_cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env or os.environ.copy(),
        stdin=subprocess.DEVNULL,
    )


def login(idp, nbauth_env, name="pw", client="public-client"):
    profiles(idp, nbauth_env.config_path, **{name: client})
    out = cli("login", name, "--password-stdin", "--username", "alice", input="alice-password\n")
    assert out.returncode == 0, out.stderr


def test_constants_mirror_the_store():
    assert nbauth_cli.MAX_ENTRY_BYTES == _store.MAX_ENTRY_BYTES
    assert (nbauth_cli.FORMAT, nbauth_cli.VERSION) == (_store.FORMAT, _store.VERSION)
    assert nbauth_cli.DEFAULT_LEEWAY == _tokens.DEFAULT_LEEWAY
    assert set(_tokens.Token(access_token="x").to_cache()) == nbauth_cli.TOKEN_FIELDS


def test_fast_path_prints_what_the_full_path_prints_without_requests(idp, nbauth_env):
    login(idp, nbauth_env)
    full = cli("token", "pw")
    assert full.returncode == 0, full.stderr
    found = probe("token", "pw")
    assert found["token"] == full.stdout.strip()
    assert found["modules"] == []  # neither requests nor any part of nbauth was imported
    script = entry_script("token", "pw")
    assert (script.returncode, script.stdout, script.stderr) == (0, full.stdout, "")
    # NBAUTH_PROFILE names the default, as for the full path
    assert probe("token", env={**os.environ, "NBAUTH_PROFILE": "pw"})["token"] == full.stdout.strip()


def test_unknown_names_and_other_commands_go_to_the_full_path(idp, nbauth_env):
    login(idp, nbauth_env)
    assert probe("token", "nope")["token"] is None
    assert probe("token", "pw", "--json")["token"] is None
    assert probe("whoami", "pw")["token"] is None
    missing = entry_script("token", "nope")  # the full path's answer: exit 3 and what to do
    assert missing.returncode == 3 and missing.stdout == "" and "nbauth login" in missing.stderr


def test_refresh_due_goes_to_the_full_path(idp, nbauth_env):
    login(idp, nbauth_env, "short", "short-lived-client")  # 3 s tokens: leeway 1.5 s
    (path,) = nbauth_env.cache_dir.glob("*.json")
    data = json.loads(path.read_text())
    assert probe("token", "short")["token"] == data["token"]["access_token"]
    data["token"]["expires_at"] = data["token"]["issued_at"] + 3 - 2.0  # 1 s left of 3: refresh due
    data["token"]["issued_at"] -= 2.0
    path.write_text(json.dumps(data))
    assert probe("token", "short")["token"] is None
    renewed = entry_script("token", "short")
    assert renewed.returncode == 0, renewed.stderr
    assert renewed.stdout.strip() != data["token"]["access_token"]
    assert idp.stats().get("token:refresh_token:200") == 1


def test_what_the_store_would_warn_about_goes_to_the_full_path(idp, nbauth_env):
    login(idp, nbauth_env)
    (path,) = nbauth_env.cache_dir.glob("*.json")
    token = probe("token", "pw")["token"]
    assert token
    os.chmod(path, 0o644)  # the store tightens it, with a CacheWarning
    assert probe("token", "pw")["token"] is None
    os.chmod(path, 0o600)
    os.chmod(nbauth_env.cache_dir, 0o755)
    assert probe("token", "pw")["token"] is None
    os.chmod(nbauth_env.cache_dir, 0o700)
    assert probe("token", "pw", env={**os.environ, "NBAUTH_CACHE": "off"})["token"] is None
    data = json.loads(path.read_text())
    data["token"]["token_type"] = "DPoP"  # sender-constrained (RFC 9449): only the full path can send it
    path.write_text(json.dumps(data))
    assert probe("token", "pw")["token"] is None
    data["token"]["token_type"] = "Bearer"
    data["key"]["user"] = "mallory"  # the digest no longer matches the key
    path.write_text(json.dumps(data))
    assert probe("token", "pw")["token"] is None


def test_two_candidates_go_to_the_full_path(idp, nbauth_env):
    login(idp, nbauth_env)
    assert probe("token")["token"]  # one session: the newest, as the full path picks
    out = cli("login", "pw", "--password-stdin", "--username", "bob", "--force", input="bob-password\n")
    assert out.returncode == 0, out.stderr
    assert len(list(nbauth_env.cache_dir.glob("*.json"))) == 2
    assert probe("token", "pw")["token"] is None  # which one is the full path's call


def test_a_session_for_a_resource_is_read_by_the_fast_path(idp, nbauth_env):
    """A login that named an RFC 8707 resource has it in its key (and digest): the fast path checks both."""
    text = (
        f'[api]\npreset = "keycloak"\nserver_url = "{idp.origin}"\nrealm = "demo"\nclient_id = "public-client"\n'
        'client_auth = "none"\nscope = "openid api:read"\nflow = "password"\nresource = "urn:demo:api"\n'
    )
    nbauth_env.config_path.write_text(text)
    os.chmod(nbauth_env.config_path, 0o600)
    out = cli("login", "api", "--password-stdin", "--username", "alice", input="alice-password\n")
    assert out.returncode == 0, out.stderr
    (entry,) = [json.loads(p.read_text()) for p in nbauth_env.cache_dir.rglob("*.json")]
    assert entry["key"]["resource"] == "urn:demo:api"
    full = cli("token", "api")
    assert full.returncode == 0, full.stderr
    assert probe("token", "api")["token"] == full.stdout.strip()
