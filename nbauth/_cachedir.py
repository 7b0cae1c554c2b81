"""The cache directory as nbauth owns it: found, checked once per operation, used by descriptor.

Rules (see docs/cache-and-security.md, "Threat model"):

- nbauth only touches files it created: its own names (``<40 hex>.json`` / ``.lock`` and
  ``.<40 hex>.<pid>.<8 hex>.tmp``) in a directory it owns, marked by a ``CACHEDIR.TAG`` file
  (the Cache Directory Tagging convention, https://bford.info/cachedir/, so backup tools skip
  the tokens too).
- ``NBAUTH_CACHE_DIR`` names nbauth's directory. If it does not exist nbauth creates it 0700.
  If it exists and holds nothing but nbauth files (empty, or the layout of nbauth <= 0.1) it is
  adopted. If it holds anything else it is the user's directory: nbauth keeps to its own
  subdirectory ``nbauth-cache/`` inside it.
- The mode of a directory is never changed: a directory that others can read or write, that
  belongs to another user, or that is a symlink is refused with one line saying what to run.
- After the check, every operation goes through the directory's file descriptor
  (``dir_fd=``, ``O_NOFOLLOW``, ``O_EXCL``) where the OS allows it, so a directory swapped
  by name after the check is noticed (device/inode compared) instead of written into.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SUBDIR", "CacheDir", "UnsafeDirectory", "is_own_name", "open_cache_dir"]

SUBDIR = "nbauth-cache"
TAG = "CACHEDIR.TAG"
TAG_TEXT = (
    b"Signature: 8a477f597d28d172789f06886806bc55\n"
    b"# This file is a cache directory tag created by nbauth (OAuth tokens; do not back up).\n"
)
_OWN = re.compile(r"^(?:[0-9a-f]{40}\.(?:json|lock)|\.[0-9a-f]{40}\.\d+\.[0-9a-f]{8}\.tmp)$")
O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
USE_FD = bool(O_DIRECTORY) and os.open in os.supports_dir_fd and os.unlink in os.supports_dir_fd


class UnsafeDirectory(Exception):
    """The cache directory cannot be used safely; the message says why and what to run."""


def is_own_name(name: str) -> bool:
    """True for the names nbauth gives its entries, locks and temp files (and nothing else)."""
    return bool(_OWN.match(name))


class CacheDir:
    """An opened, checked cache directory: ``fd`` (None where the OS has no ``dir_fd``) + path."""

    def __init__(self, path: Path, fd: int | None, ident: tuple[int, int]) -> None:
        self.path = path
        self.fd = fd
        self.ident = ident

    def close(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def _where(self, name: str) -> str:
        return name if self.fd is not None else str(self.path / name)

    def open(self, name: str, flags: int, mode: int = 0o600) -> int:
        """``os.open`` of a file in this directory, never through a symlink."""
        flags |= O_NOFOLLOW | O_CLOEXEC
        if self.fd is not None:
            return os.open(name, flags, mode, dir_fd=self.fd)
        return os.open(self._where(name), flags, mode)

    def unlink(self, name: str) -> None:
        if self.fd is not None:
            os.unlink(name, dir_fd=self.fd)
        else:
            os.unlink(self._where(name))

    def replace(self, src: str, dst: str) -> None:
        if self.fd is not None:
            os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        else:
            os.replace(self._where(src), self._where(dst))

    def lstat(self, name: str) -> os.stat_result:
        if self.fd is not None:
            return os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        return os.lstat(self._where(name))

    def listdir(self) -> list[str]:
        return os.listdir(self.fd if self.fd is not None else self.path)

    def fsync(self) -> None:
        with contextlib.suppress(OSError):
            if self.fd is not None:
                os.fsync(self.fd)

    @contextlib.contextmanager
    def flock(self, name: str, timeout: float) -> Iterator[None]:
        """An exclusive advisory lock on ``name`` (created 0600, never via a symlink).

        Raises ``filelock.Timeout`` after ``timeout`` seconds, like the filelock package the
        callers know; on Windows that package does the locking.
        """
        import filelock

        try:
            import fcntl
        except ImportError:  # Windows: no dir_fd either, so a path lock is all there is
            with filelock.FileLock(str(self.path / name), timeout=timeout, mode=0o600):
                yield
            return
        fd = self.open(name, os.O_RDWR | os.O_CREAT)
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise filelock.Timeout(name) from None
                    time.sleep(0.02)  # real time: another process holds it
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)


def _mkdir(path: Path) -> bool:
    """Create ``path`` 0700 (parents with the default mode); True when nbauth created it now."""
    try:
        path.mkdir(mode=0o700)
        return True
    except FileExistsError:
        return False
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):
            path.mkdir(mode=0o700)
            return True
        return False


def _open_dir(path: Path) -> tuple[int | None, os.stat_result]:
    try:
        if USE_FD:
            fd = os.open(path, os.O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            return fd, os.fstat(fd)
        st = path.lstat()
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise UnsafeDirectory(
                f"{path} is a symlink or not a directory; point NBAUTH_CACHE_DIR at a real directory"
            ) from None
        raise UnsafeDirectory(f"cannot open {path} ({exc.strerror})") from None
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise UnsafeDirectory(f"{path} is a symlink or not a directory; point NBAUTH_CACHE_DIR at a real directory")
    return None, st


def _check_safe(path: Path, st: os.stat_result) -> None:
    """Owner and mode as ssh checks ~/.ssh: the user's own, nobody else's bits (never chmod)."""
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        raise UnsafeDirectory(
            f"{path} belongs to another user (uid {st.st_uid}); set NBAUTH_CACHE_DIR to a directory of your own"
        )
    loose = stat.S_IMODE(st.st_mode) & 0o077
    if loose and os.name != "nt":
        raise UnsafeDirectory(
            f"{path} is open to other users (mode {stat.S_IMODE(st.st_mode):o}); "
            f"run `chmod 700 {path}` or set NBAUTH_CACHE_DIR to a private directory"
        )


def _has_tag(d: CacheDir) -> bool:
    try:
        fd = d.open(TAG, os.O_RDONLY)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        return stat.S_ISREG(os.fstat(f.fileno()).st_mode) and b"nbauth" in f.read(4096)


def _write_tag(d: CacheDir) -> None:
    with contextlib.suppress(OSError):
        fd = d.open(TAG, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        with os.fdopen(fd, "wb") as f:
            f.write(TAG_TEXT)


def open_cache_dir(path: Path, *, nested: bool = False) -> CacheDir:
    """Find, create or adopt nbauth's directory at ``path`` (or its ``nbauth-cache/``); check it.

    Raises :class:`UnsafeDirectory` with a one-line reason and the command that fixes it.
    """
    created = _mkdir(path)
    fd, st = _open_dir(path)
    d = CacheDir(path, fd, (st.st_dev, st.st_ino))
    try:
        _check_owner_then_claim(d, st, created=created, nested=nested)
    except BaseException:
        d.close()
        raise
    if d.path != path:  # the user's own directory: nbauth keeps to its subdirectory
        d.close()
        return open_cache_dir(path / SUBDIR, nested=True)
    return d


def _check_owner_then_claim(d: CacheDir, st: os.stat_result, *, created: bool, nested: bool) -> None:
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        _check_safe(d.path, st)  # raises: another user's
    if not created and not _has_tag(d):
        names = [n for n in d.listdir() if n != TAG]
        if any(not is_own_name(n) for n in names):
            if nested:
                raise UnsafeDirectory(
                    f"{d.path} holds files nbauth did not create; remove it or set NBAUTH_CACHE_DIR elsewhere"
                )
            d.path = d.path / SUBDIR  # signal to the caller: use the subdirectory
            return
    _check_safe(d.path, st)
    if not _has_tag(d):
        _write_tag(d)  # created now, or adopted (empty, or nbauth's own files only)


def reopen(d: CacheDir) -> CacheDir | None:
    """The same directory opened again by path, or None when it was replaced since the check."""
    try:
        fd, st = _open_dir(d.path)
    except UnsafeDirectory:
        return None
    if (st.st_dev, st.st_ino) != d.ident:
        if fd is not None:
            os.close(fd)
        return None
    return CacheDir(d.path, fd, d.ident)
