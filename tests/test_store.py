"""The persistent store: file modes, atomic writes, hostile files, symlinks (no server needed)."""

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import nbauth
from nbauth._entries import CacheKey, Entry, load_entries, read_entry
from nbauth._store import MAX_ENTRY_BYTES, Store, current_store

KEY = CacheKey.make("https://idp.example/realms/demo", "jupyter", "alice", ("openid",))
PROVIDER = {
    "token_url": "https://idp.example/realms/demo/protocol/openid-connect/token",
    "client_id": "jupyter",
    "issuer": "https://idp.example/realms/demo",
    "name": "demo",
}


def entry(access="AT-1", generation=0):
    token = nbauth.Token(access, refresh_token="RT-1", expires_at=time.time() + 300, scope=("openid",))
    return Entry(KEY, "demo", dict(PROVIDER), token, "device_login", "alice", generation=generation)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def store(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(directory))
    return current_store()


def test_modes_dir_0700_files_0600(store):
    assert store.write(KEY.digest, entry().to_json())
    with store.lock(KEY.digest):
        pass
    assert mode(store.directory) == 0o700
    files = os.listdir(store.directory)
    assert f"{KEY.digest}.json" in files
    for name in files:
        assert mode(store.directory / name) == 0o600, name
    assert read_entry(store, KEY).token.access_token == "AT-1"


def test_umask_does_not_loosen_modes(tmp_path, monkeypatch):
    old = os.umask(0)
    try:
        monkeypatch.setenv("NBAUTH_CACHE_DIR", str(tmp_path / "c"))
        s = current_store()
        s.write(KEY.digest, entry().to_json())
        assert mode(s.directory) == 0o700 and mode(s.path(KEY.digest)) == 0o600
    finally:
        os.umask(old)


def test_loose_directory_is_refused_never_chmodded(tmp_path, monkeypatch):
    directory = tmp_path / "loose"
    directory.mkdir(mode=0o777)
    os.chmod(directory, 0o777)
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(directory))
    with pytest.warns(nbauth.CacheWarning, match=f"run `chmod 700 {directory}`"):
        assert not current_store().enabled
    assert mode(directory) == 0o777 and os.listdir(directory) == []


def test_loose_entry_file_is_tightened_on_read(store):
    store.write(KEY.digest, entry().to_json())
    os.chmod(store.path(KEY.digest), 0o644)
    with pytest.warns(nbauth.CacheWarning, match="tightened"):
        assert read_entry(store, KEY) is not None
    assert mode(store.path(KEY.digest)) == 0o600


def test_symlinked_cache_dir_is_refused(tmp_path, monkeypatch):
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(link))
    with pytest.warns(nbauth.CacheWarning, match="symlink"):
        assert not Store(link).enabled
    assert os.listdir(real) == []


def test_symlink_entry_is_never_followed(store, tmp_path):
    store.write(KEY.digest, entry().to_json())
    target = tmp_path / "elsewhere.json"
    target.write_text(
        json.dumps({"format": "nbauth-cache", "version": 1, "digest": KEY.digest, **entry("EVIL").to_json()})
    )
    os.unlink(store.path(KEY.digest))
    os.symlink(target, store.path(KEY.digest))
    with pytest.warns(nbauth.CacheWarning, match="symlink"):
        assert read_entry(store, KEY) is None
    # writing replaces the link itself; the target is untouched
    store.write(KEY.digest, entry("AT-2").to_json())
    assert not os.path.islink(store.path(KEY.digest))
    assert "EVIL" in target.read_text()


def test_symlink_lock_is_removed_not_followed(store, tmp_path):
    store.enabled
    victim = tmp_path / "victim"
    victim.write_text("precious")
    os.symlink(victim, store.directory / f"{KEY.digest}.lock")
    with pytest.warns(nbauth.CacheWarning, match="symlink"), store.lock(KEY.digest) as held:
        assert held
    assert victim.read_text() == "precious"
    assert mode(victim) != 0o600 or victim.read_text() == "precious"


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b'{"format": "nbauth-cache"',
        b"\x00\xff garbage",
        b"[1, 2, 3]",
        b'{"hello": "world"}',
        b"[" * 100_000,
    ],
)
def test_corrupt_or_foreign_files_are_skipped(store, content):
    store.enabled
    path = store.path(KEY.digest)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, content)
    os.close(fd)
    with pytest.warns(nbauth.CacheWarning):
        assert read_entry(store, KEY) is None
        assert load_entries(store) == []


def test_damaged_entry_fields_are_skipped(store):
    data = entry().to_json()
    data["token"]["access_token"] = 42
    store.write(KEY.digest, data)
    with pytest.warns(nbauth.CacheWarning, match="damaged"):
        assert read_entry(store, KEY) is None


def test_entry_under_the_wrong_name_is_foreign(store):
    store.write("0" * 40, entry().to_json())  # digest field says 000..., content is for KEY
    os.rename(store.path("0" * 40), store.path(KEY.digest))
    with pytest.warns(nbauth.CacheWarning, match="another"):
        assert read_entry(store, KEY) is None


def test_oversized_file_is_skipped(store):
    store.enabled
    store.path(KEY.digest).write_bytes(b" " * (MAX_ENTRY_BYTES + 10))
    os.chmod(store.path(KEY.digest), 0o600)
    with pytest.warns(nbauth.CacheWarning, match="larger"):
        assert read_entry(store, KEY) is None


def test_file_of_another_user_is_skipped(store, monkeypatch):
    """As root (CI): a real chown. Otherwise: the same real file seen by a process of another uid."""
    store.write(KEY.digest, entry().to_json())
    if os.getuid() == 0:
        os.chown(store.path(KEY.digest), 65534, 65534)
    else:
        store.enabled  # the directory is checked (ours) before the uid changes
        monkeypatch.setattr(os, "getuid", lambda: os.stat(store.path(KEY.digest)).st_uid + 1)
    with pytest.warns(nbauth.CacheWarning, match="another user"):
        assert read_entry(store, KEY) is None


def test_cache_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(tmp_path / "c"))
    monkeypatch.setenv("NBAUTH_CACHE", "off")
    s = current_store()
    assert not s.enabled
    assert s.write(KEY.digest, entry().to_json()) is False
    assert not (tmp_path / "c").exists()


def test_import_nbauth_survives_a_hostile_cache(tmp_path):
    d = tmp_path / "c"
    d.mkdir(mode=0o700)
    (d / ("a" * 40 + ".json")).write_bytes(b"\xff\xfe not json")
    os.symlink("/etc/passwd", d / ("b" * 40 + ".json"))
    env = {**os.environ, "NBAUTH_CACHE_DIR": str(d)}
    code = "import nbauth; print(len(nbauth.sessions()))"
    out = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "0"


def test_killed_writer_never_leaves_a_corrupt_entry(store):
    """A writer SIGKILLed mid-stream leaves the old or the new entry, never half of one."""
    store.write(KEY.digest, entry().to_json())
    script = textwrap.dedent(f"""
        import os, sys, time
        os.environ["NBAUTH_CACHE_DIR"] = {str(store.directory)!r}
        import nbauth
        from nbauth._store import current_store
        from tests.test_store import entry, KEY
        s = current_store()
        i = 0
        print("ready", flush=True)
        while True:
            i += 1
            s.write(KEY.digest, entry("AT-" + str(i) + "-" + "x" * 20000, generation=i).to_json())
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for _ in range(5):
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=root, stdout=subprocess.PIPE, text=True)
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        proc.kill()
        proc.wait()
        got = read_entry(store, KEY)
        assert got is not None and got.token.access_token.startswith("AT-")
    leftovers = [n for n in os.listdir(store.directory) if n.endswith(".tmp")]
    assert all(mode(store.directory / n) == 0o600 for n in leftovers)
