"""The persistent token store: one JSON file per cache entry, safe against its neighbours.

Files are 0600 in a 0700 directory owned by the user (found and checked by
:mod:`nbauth._cachedir`: nbauth's own directory or its ``nbauth-cache/`` subdirectory, never
chmodded, refused with one line saying what to run when unsafe). Every operation goes
through the directory's descriptor; only nbauth's own file names are ever read, written or
deleted. Writes go to an ``O_EXCL`` temp file then ``os.replace`` (a reader sees the old or
the new entry, never half of one, even if the writer is killed); a symlink in place of an
entry or lock is never followed; a corrupt, truncated, oversized, foreign or unreadable file
is skipped with a :class:`CacheWarning` and never breaks a login or ``import nbauth``.

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

from ._cachedir import CacheDir, UnsafeDirectory, is_own_name, open_cache_dir, reopen

__all__ = ["CacheWarning", "Store", "current_store"]

MAX_ENTRY_BYTES = 256 * 1024
FORMAT = "nbauth-cache"
VERSION = 1
LOCK_TIMEOUT = 60.0
_warned: set[str] = set()
_stores: dict[str, Store] = {}
_stores_lock = threading.Lock()


class CacheWarning(UserWarning):
    """Something in the cache directory was skipped, repaired or refused."""


def _one_line_format() -> None:
    """Show a CacheWarning as the one plain line it is, not ``file:line: CacheWarning: ...`` + source."""
    original = warnings.formatwarning
    if getattr(original, "_nbauth", False):
        return

    def formatwarning(
        message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None
    ) -> str:
        if isinstance(category, type) and issubclass(category, CacheWarning):
            return f"{message}\n"
        return original(message, category, filename, lineno, line)

    formatwarning._nbauth = True  # type: ignore[attr-defined]
    warnings.formatwarning = formatwarning


_one_line_format()


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
    """Entries as JSON objects keyed by a hex digest; ``None`` directory = disabled.

    ``directory`` is where the entries are: the configured directory, or its ``nbauth-cache/``
    subdirectory when the configured one holds files nbauth did not create.
    """

    def __init__(self, directory: Path | None) -> None:
        self.configured = directory
        self.directory = directory
        self._dir: CacheDir | None = None
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.configured is not None and self._check() is not None

    # ---- the directory
    def _check(self) -> CacheDir | None:
        with self._lock:
            if self._dir is not None or self.configured is None:
                return self._dir
            try:
                checked = open_cache_dir(self.configured)
            except UnsafeDirectory as exc:
                _warn(
                    f"nbauth cache disabled: {exc} (sessions still work, in this kernel only)",
                    once=str(self.configured),
                )
                return None
            except OSError as exc:
                _warn(
                    f"nbauth cache disabled: cannot create {self.configured} ({exc.strerror})",
                    once=str(self.configured),
                )
                return None
            self.directory = checked.path
            checked.close()
            self._dir = checked
        self._sweep_temp_files()
        return checked

    @contextlib.contextmanager
    def _opened(self) -> Iterator[CacheDir | None]:
        """The checked directory, opened again for one operation (re-checked if it was replaced)."""
        checked = self._check()
        if checked is None:
            yield None
            return
        d = reopen(checked)
        if d is None:  # replaced or removed since the check: check again
            with self._lock:
                self._dir = None
            checked = self._check()
            d = reopen(checked) if checked is not None else None
        try:
            yield d
        finally:
            if d is not None:
                d.close()

    def _sweep_temp_files(self) -> None:
        """Remove nbauth's own temp files that killed writers left (older than 10 minutes)."""
        cutoff = time.time() - 600
        with self._opened() as d, contextlib.suppress(OSError):
            if d is None:
                return
            for name in d.listdir():
                if name.endswith(".tmp") and is_own_name(name) and d.lstat(name).st_mtime < cutoff:
                    d.unlink(name)

    def path(self, digest: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{digest}.json"

    # ---- reading
    def read(self, digest: str) -> dict[str, Any] | None:
        """The entry's JSON object, or None (missing or skipped with a warning)."""
        with self._opened() as d:
            return self._read_file(d, f"{digest}.json", digest) if d else None

    def _read_file(self, d: CacheDir, name: str, digest: str) -> dict[str, Any] | None:
        try:
            fd = d.open(name, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                _warn(f"nbauth skipped {name}: it is a symlink (never followed)")
            else:
                _warn(f"nbauth skipped {name}: {exc.strerror}")
            return None
        with os.fdopen(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                _warn(f"nbauth skipped {name}: not a regular file")
                return None
            if hasattr(os, "getuid") and st.st_uid != os.getuid():
                _warn(f"nbauth skipped {name}: it belongs to another user")
                return None
            if stat.S_IMODE(st.st_mode) & 0o077:
                with contextlib.suppress(OSError):
                    os.fchmod(f.fileno(), 0o600)  # nbauth's own file (own name, own directory)
                _warn(f"nbauth tightened {name} to 0600 (it was {stat.S_IMODE(st.st_mode):o})")
            raw = f.read(MAX_ENTRY_BYTES + 1)
        return _parse(raw, name, digest)

    def entries(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """Every readable entry as (digest, data); bad files are skipped with a warning."""
        found: list[tuple[str, dict[str, Any]]] = []
        with self._opened() as d:
            try:
                names = sorted(d.listdir()) if d else []
            except OSError:
                names = []
            for name in names:
                if name.endswith(".json") and is_own_name(name):
                    digest = name[: -len(".json")]
                    data = self._read_file(d, name, digest)  # type: ignore[arg-type]
                    if data is not None:
                        found.append((digest, data))
        yield from found

    # ---- writing
    def write(self, digest: str, data: dict[str, Any]) -> bool:
        """Atomically replace the entry (O_EXCL temp file 0600 + fsync + os.replace). False if disabled."""
        data = {"format": FORMAT, "version": VERSION, "digest": digest, **data}
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode("utf-8")
        with self._opened() as d:
            if d is None:
                return False
            if len(payload) > MAX_ENTRY_BYTES:
                _warn("nbauth did not cache a token response larger than 256 KiB")
                return False
            tmp = f".{digest}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
            try:
                fd = d.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
                try:
                    os.fchmod(fd, 0o600)
                    with os.fdopen(fd, "wb", closefd=False) as f:
                        f.write(payload)
                        f.flush()
                        os.fsync(f.fileno())
                finally:
                    os.close(fd)
                d.replace(tmp, f"{digest}.json")
                d.fsync()
            except OSError as exc:
                with contextlib.suppress(OSError):
                    d.unlink(tmp)
                _warn(f"nbauth could not write its cache ({exc.strerror}); the session works but is not persisted")
                return False
        return True

    def delete(self, digest: str) -> None:
        with self._opened() as d, contextlib.suppress(FileNotFoundError):
            if d is not None:
                d.unlink(f"{digest}.json")

    def wipe(self) -> int:
        """Delete nbauth's own entries, locks and temp files (nothing else); returns how many entries went."""
        count = 0
        with self._opened() as d:
            for name in d.listdir() if d else ():
                if is_own_name(name):
                    with contextlib.suppress(OSError):
                        d.unlink(name)  # type: ignore[union-attr]
                        count += name.endswith(".json")
        return count

    # ---- the cross-process lock
    @contextlib.contextmanager
    def lock(self, digest: str, timeout: float = LOCK_TIMEOUT) -> Iterator[bool]:
        """Hold the entry's file lock (flock on a 0600 file opened via the directory, never a symlink).

        Yields True when held; False when the cache is off or the lock is unusable (then the
        caller's in-process lock is the only one). A ``filelock.Timeout`` propagates to the caller.
        """
        name = f"{digest}.lock"
        with self._opened() as d:
            if d is None:
                yield False
                return
            with contextlib.suppress(OSError):
                if stat.S_ISLNK(d.lstat(name).st_mode):
                    _warn(f"nbauth removed a symlink in place of its lock file {name}")
                    d.unlink(name)
            held = contextlib.ExitStack()
            try:
                held.enter_context(d.flock(name, timeout))
            except OSError as exc:
                _warn(f"nbauth could not lock {name} ({exc.strerror}); continuing without the cross-process lock")
                yield False
                return
            with held:
                yield True


def _parse(raw: bytes, name: str, digest: str) -> dict[str, Any] | None:
    if len(raw) > MAX_ENTRY_BYTES:
        _warn(f"nbauth skipped {name}: larger than {MAX_ENTRY_BYTES // 1024} KiB")
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):
        _warn(f"nbauth skipped {name}: not valid JSON (corrupt or truncated)")
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        _warn(f"nbauth skipped {name}: not an nbauth cache entry")
        return None
    if data.get("version") != VERSION or data.get("digest") != digest:
        _warn(f"nbauth skipped {name}: written by another nbauth version or for another entry")
        return None
    return data
