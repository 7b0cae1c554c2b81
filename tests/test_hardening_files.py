"""nbauth only touches files it created; unsafe directories and profile files are refused, never chmodded."""

import os
import stat
import subprocess
import sys
import time

import pytest

import nbauth
from nbauth._entries import CacheKey, Entry, read_entry
from nbauth._profiles import load_profiles
from nbauth._store import Store, current_store

KEY = CacheKey.make("https://idp.example/realms/demo", "jupyter", "alice", ("openid",))
PROVIDER = {"token_url": "https://idp.example/t", "client_id": "jupyter", "issuer": "https://idp.example", "name": "d"}
OTHER_UID = 65534  # nobody


def entry(access="AT-1"):
    token = nbauth.Token(access, refresh_token="RT-1", expires_at=time.time() + 300, scope=("openid",))
    return Entry(KEY, "demo", dict(PROVIDER), token, "device_login", "alice")


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def users_directory(tmp_path):
    """A directory of the user's own: 0755, with files that look like nbauth's but are not."""
    work = tmp_path / "work"
    work.mkdir()
    os.chmod(work, 0o755)
    files = {"notes.json": "{}", "build.lock": "x", "draft.tmp": "x", "README": "mine"}
    for name, text in files.items():
        (work / name).write_text(text)
        os.utime(work / name, (time.time() - 3600, time.time() - 3600))  # "old" temp files too
    return work, files


def test_users_directory_is_left_alone_nbauth_keeps_to_its_subdirectory(tmp_path, monkeypatch):
    work, files = users_directory(tmp_path)
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(work))
    store = current_store()
    assert store.write(KEY.digest, entry().to_json())
    assert store.directory == work / "nbauth-cache" and mode(store.directory) == 0o700
    assert read_entry(store, KEY).token.access_token == "AT-1"
    assert store.wipe() == 1  # what `nbauth logout --all` does
    assert mode(work) == 0o755
    assert {n: (work / n).read_text() for n in files} == files
    assert sorted(os.listdir(work)) == sorted([*files, "nbauth-cache"])


def test_logout_all_deletes_only_nbauths_files(tmp_path):
    work, files = users_directory(tmp_path)
    env = {**os.environ, "NBAUTH_CACHE_DIR": str(work)}
    code = (
        "from tests.test_hardening_files import KEY, entry; from nbauth._store import current_store;"
        "assert current_store().write(KEY.digest, entry().to_json())"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    subprocess.run([sys.executable, "-c", code], env=env, cwd=root, check=True, timeout=60)
    out = subprocess.run(
        [sys.executable, "-m", "nbauth", "logout", "--all"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stderr
    assert {n: (work / n).read_text() for n in files} == files and mode(work) == 0o755
    assert [n for n in os.listdir(work / "nbauth-cache") if n.endswith(".json")] == []


def test_todays_layout_is_adopted_in_place(tmp_path, monkeypatch):
    """A directory written by nbauth <= 0.1 (only nbauth's names, no tag) stays the cache."""
    old = tmp_path / "old"
    Store(old).write(KEY.digest, entry().to_json())
    (old / "CACHEDIR.TAG").unlink()
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(old))
    store = current_store()
    assert store.directory == old and read_entry(store, KEY) is not None
    assert b"nbauth" in (old / "CACHEDIR.TAG").read_bytes()


def test_created_directory_is_tagged_and_own_temp_files_are_swept(tmp_path, monkeypatch):
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(tmp_path / "c"))
    store = current_store()
    assert store.write(KEY.digest, entry().to_json())
    assert (tmp_path / "c" / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    stale = tmp_path / "c" / f".{KEY.digest}.123.deadbeef.tmp"
    stale.write_text("half")
    os.utime(stale, (time.time() - 3600, time.time() - 3600))
    assert Store(tmp_path / "c").enabled
    assert not stale.exists()


def foreign_directory(tmp_path):
    """A real directory owned by another user: chowned as root (CI), else one the system owns."""
    if os.getuid() == 0:
        d = tmp_path / "theirs"
        d.mkdir(mode=0o700)
        os.chown(d, OTHER_UID, OTHER_UID)
        return d
    return next(p for p in ("/", "/usr", "/etc") if os.stat(p).st_uid != os.getuid())


def test_directory_of_another_user_is_refused(tmp_path, monkeypatch):
    d = foreign_directory(tmp_path)
    before = (os.stat(d).st_mode, sorted(os.listdir(d)))
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(d))
    with pytest.warns(nbauth.CacheWarning, match="belongs to another user"):
        assert not current_store().enabled
    assert (os.stat(d).st_mode, sorted(os.listdir(d))) == before


def test_unsafe_directory_is_one_plain_line_and_the_session_still_works(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir()
    os.chmod(loose, 0o775)
    env = {**os.environ, "NBAUTH_CACHE_DIR": str(loose)}
    code = "from nbauth._store import current_store; print(current_store().enabled)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False"
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nbauth cache disabled:"), out.stderr
    assert f"chmod 700 {loose}" in lines[0] and "Warning" not in lines[0] and ".py:" not in lines[0]
    assert mode(loose) == 0o775


def test_a_directory_swapped_after_the_check_is_checked_again(tmp_path, monkeypatch):
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(tmp_path / "c"))
    store = current_store()
    assert store.enabled
    os.rename(tmp_path / "c", tmp_path / "moved")
    (tmp_path / "elsewhere").mkdir(mode=0o755)
    os.symlink(tmp_path / "elsewhere", tmp_path / "c")  # an attacker's swap, by name
    with pytest.warns(nbauth.CacheWarning, match="symlink"):
        assert store.write(KEY.digest, entry().to_json()) is False
    assert os.listdir(tmp_path / "elsewhere") == []


# ---------------------------------------------------------------- profiles files (ssh StrictModes)
PROFILE = '[demo]\npreset = "keycloak"\nserver_url = "https://kc.example"\nrealm = "r"\nclient_id = "c"\n'


@pytest.mark.parametrize("bits", [0o620, 0o602, 0o666])
def test_profiles_file_writable_by_others_is_refused(nbauth_env, bits):
    nbauth_env.config_path.write_text(PROFILE)
    os.chmod(nbauth_env.config_path, bits)
    with pytest.raises(nbauth.ConfigurationError, match=f"chmod go-w {nbauth_env.config_path}"):
        load_profiles()


def test_profiles_file_in_a_directory_writable_by_others_is_refused(tmp_path, monkeypatch):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    (shared / "profiles.toml").write_text(PROFILE)
    os.chmod(shared / "profiles.toml", 0o600)
    monkeypatch.setenv("NBAUTH_CONFIG", str(shared / "profiles.toml"))
    with pytest.raises(nbauth.ConfigurationError, match=f"chmod go-w {shared}"):
        load_profiles()


def test_profiles_file_of_another_user_is_refused(nbauth_env, monkeypatch):
    nbauth_env.config_path.write_text(PROFILE)
    os.chmod(nbauth_env.config_path, 0o644)
    if os.getuid() == 0:
        os.chown(nbauth_env.config_path, OTHER_UID, OTHER_UID)
    else:  # the same real file, read by a process of another (non-root) uid
        monkeypatch.setattr(os, "getuid", lambda: os.stat(nbauth_env.config_path).st_uid + 1)
    with pytest.raises(nbauth.ConfigurationError, match="belongs to another user"):
        load_profiles()


def test_readable_profiles_file_without_secret_still_loads(nbauth_env):
    nbauth_env.config_path.write_text(PROFILE)
    os.chmod(nbauth_env.config_path, 0o644)
    assert "demo" in load_profiles()


def test_a_removed_directory_is_created_again(tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(tmp_path / "c"))
    store = current_store()
    assert store.write(KEY.digest, entry().to_json())
    shutil.rmtree(tmp_path / "c")  # `rm -rf` of the cache, as the docs suggest
    assert store.write(KEY.digest, entry("AT-2").to_json())
    assert read_entry(store, KEY).token.access_token == "AT-2" and mode(tmp_path / "c") == 0o700
