"""The persistent token store: one JSON file per cache entry, safe against its neighbours.

Files are 0600 in a 0700 directory owned by the user; writes go to a temp file then
``os.replace`` (a reader sees the old or the new entry, never half of one, even if the
writer is killed); a symlink in place of an entry or lock is never followed; a corrupt,
truncated, oversized, foreign or unreadable file is skipped with a :class:`CacheWarning`
and never breaks a login or ``import nbauth``. A directory with looser permissions is
tightened (with a warning) when it is ours, refused when it is not.

Where: ``NBAUTH_CACHE_DIR``, else platformdirs' user cache dir + ``/nbauth``.
``NBAUTH_CACHE=off`` disables persistence (the in-kernel registry stays).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import stat
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["CacheWarning", "Store", "current_store"]

MAX_ENTRY_BYTES = 256 * 1024
FORMAT = "nbauth-cache"
VERSION = 1
LOCK_TIMEOUT = 60.0
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_warned: set[str] = set()
_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


class CacheWarning(UserWarning):
    """Something in the cache directory was skipped, repaired or refused."""


def _warn(message: str, *, once: str | None = None) -> None:
    if once is not None:
        if once in _warned:
            return
        _warned.add(once)
    warnings.warn(message, CacheWarning, stacklevel=3)


def cache_dir() -> Path | None:
    """The configured cache directory, or None when persistence is off."""
    if os.environ.get("NBAUTH_CACHE", "").strip().lower() in ("off", "0", "false", "no", "none"):
        return None
    configured = os.environ.get("NBAUTH_CACHE_DIR")
    if configured:
        return Path(configured).expanduser()
    import platformdirs  # lazy: only when the cache is first used

    return Path(platformdirs.user_cache_dir("nbauth", appauthor=False))


def current_store() -> Store:
    """The store for the current environment (re-read each call, so tests can move it)."""
    directory = cache_dir()
    key = str(directory) if directory else ""
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = Store(directory)
        return store


class Store:
    """Entries as JSON objects keyed by a hex digest; ``None`` directory = disabled."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self._ready = False
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.directory is not None and self._ensure_dir()

    # ---- the directory
    def _ensure_dir(self) -> bool:
        with self._lock:
            if self._ready:
                return True
            path = self.directory
            assert path is not None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    path.mkdir(mode=0o700)
                st = path.lstat()
            except OSError as exc:
                _warn(f"nbauth cache disabled: cannot create {path} ({exc.strerror})", once=str(path))
                return False
            if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
                _warn(f"nbauth cache disabled: {path} is a symlink or not a directory; point NBAUTH_CACHE_DIR at "
                      "a real directory", once=str(path))
                return False
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                _warn(f"nbauth cache disabled: {path} belongs to another user", once=str(path))
                return False
            if stat.S_IMODE(st.st_mode) & 0o077:
                try:
                    os.chmod(path, 0o700)
                except OSError:
                    _warn(f"nbauth cache disabled: {path} is readable by others and cannot be tightened",
                          once=str(path))
                    return False
                _warn(f"nbauth tightened {path} to 0700 (it was {stat.S_IMODE(st.st_mode):o})")
            self._ready = True
            self._sweep_temp_files()
            return True

    def _sweep_temp_files(self) -> None:
        """Remove temp files that writers killed mid-write left behind (older than 10 minutes)."""
        assert self.directory is not None
        cutoff = time.time() - 600
        with contextlib.suppress(OSError):
            for name in os.listdir(self.directory):
                path = self.directory / name
                if name.endswith(".tmp") and path.lstat().st_mtime < cutoff:
                    path.unlink()

    def path(self, digest: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{digest}.json"

    # ---- reading
    def read(self, digest: str) -> dict[str, Any] | None:
        """The entry's JSON object, or None (missing or skipped with a warning)."""
        if not self.enabled:
            return None
        return self._read_file(self.path(digest), digest)

    def _read_file(self, path: Path, digest: str) -> dict[str, Any] | None:
        try:
            fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                _warn(f"nbauth skipped {path.name}: it is a symlink (never followed)")
            else:
                _warn(f"nbauth skipped {path.name}: {exc.strerror}")
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                _warn(f"nbauth skipped {path.name}: not a regular file")
                return None
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                _warn(f"nbauth skipped {path.name}: it belongs to another user")
                return None
            if stat.S_IMODE(st.st_mode) & 0o077:
                with contextlib.suppress(OSError):
                    os.fchmod(f.fileno(), 0o600)
                _warn(f"nbauth tightened {path.name} to 0600 (it was {stat.S_IMODE(st.st_mode):o})")
            raw = f.read(MAX_ENTRY_BYTES + 1)
        if len(raw) > MAX_ENTRY_BYTES:
            _warn(f"nbauth skipped {path.name}: larger than {MAX_ENTRY_BYTES // 1024} KiB")
            return None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            _warn(f"nbauth skipped {path.name}: not valid JSON (corrupt or truncated)")
            return None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            _warn(f"nbauth skipped {path.name}: not an nbauth cache entry")
            return None
        if data.get("version") != VERSION or data.get("digest") != digest:
            _warn(f"nbauth skipped {path.name}: written by another nbauth version or for another entry")
            return None
        return data

    def entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every readable entry as (digest, data); bad files are skipped with a warning."""
        if not self.enabled:
            return
        assert self.directory is not None
        try:
            names = sorted(os.listdir(self.directory))
        except OSError:
            return
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                digest = name[: -len(".json")]
                data = self._read_file(self.directory / name, digest)
                if data is not None:
                    yield digest, data

    # ---- writing
    def write(self, digest: str, data: dict[str, Any]) -> bool:
        """Atomically replace the entry (temp file 0600 + fsync + os.replace). False if disabled."""
        if not self.enabled:
            return False
        data = {"format": FORMAT, "version": VERSION, "digest": digest, **data}
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
        if len(payload) > MAX_ENTRY_BYTES:
            _warn("nbauth did not cache a token response larger than 256 KiB")
            return False
        final = self.path(digest)
        tmp = final.with_name(f".{digest}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | _O_CLOEXEC, 0o600)
            try:
                os.fchmod(fd, 0o600)
                with os.fdopen(fd, "wb", closefd=False) as f:
                    f.write(payload)
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                os.close(fd)
            os.replace(tmp, final)
            self._fsync_dir()
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            _warn(f"nbauth could not write its cache ({exc.strerror}); the session works but is not persisted")
            return False
        return True

    def _fsync_dir(self) -> None:
        assert self.directory is not None
        with contextlib.suppress(OSError):
            dfd = os.open(self.directory, os.O_RDONLY | _O_CLOEXEC)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)

    def delete(self, digest: str) -> None:
        if self.enabled:
            with contextlib.suppress(FileNotFoundError):
                self.path(digest).unlink()

    def wipe(self) -> int:
        """Delete every entry, lock and temp file; returns how many entries went."""
        if not self.enabled:
            return 0
        assert self.directory is not None
        count = 0
        for name in os.listdir(self.directory):
            if name.endswith((".json", ".lock", ".tmp")):
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
                    count += name.endswith(".json")
        return count

    # ---- the cross-process lock
    @contextlib.contextmanager
    def lock(self, digest: str, timeout: float = LOCK_TIMEOUT) -> Iterator[bool]:
        """Hold the entry's file lock (filelock, 0600, never through a symlink).

        Yields True when held; False when the cache is off or the lock is unusable (then the
        caller's in-process lock is the only one). A Timeout propagates to the caller.
        """
        if not self.enabled:
            yield False
            return
        import filelock  # lazy

        path = self.directory / f"{digest}.lock"  # type: ignore[operator]
        if path.is_symlink():
            _warn(f"nbauth removed a symlink in place of its lock file {path.name}")
            with contextlib.suppress(OSError):
                path.unlink()
        lock = filelock.FileLock(str(path), timeout=timeout, mode=0o600)
        try:
            lock.acquire()
        except filelock.Timeout:
            raise
        except OSError as exc:
            _warn(f"nbauth could not lock {path.name} ({exc.strerror}); continuing without the cross-process lock")
            yield False
            return
        try:
            yield True
        finally:
            lock.release()
