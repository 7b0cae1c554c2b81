"""The ``nbauth`` console script, with a fast path for ``nbauth token [NAME]``.

Shell cells call ``$(nbauth token NAME)`` before every request, so printing a cached token
that is still fresh must not cost a full ``import nbauth`` (requests, oauthlib, jwt, ...).
This module lives outside the ``nbauth`` package (importing ``nbauth._anything`` runs the
package's ``__init__``) and imports only the standard library.

It reads the cache entry exactly as :mod:`nbauth._store` and :mod:`nbauth._cache` do: the
same directory (``NBAUTH_CACHE_DIR`` / ``NBAUTH_CACHE`` / platformdirs), the same name
lookup as ``nbauth.session(NAME)``, the same refresh-due rule (``Token.state`` with the
entry's ``refresh_leeway``). It prints the token only when there is no doubt; anything else
- refresh due, no entry, two candidates, a non-Bearer (e.g. DPoP-bound, RFC 9449) token, a
field it does not know, a file or directory the store would warn about or tighten - goes
to the full command line (:func:`nbauth._cli.main`), which refreshes, repairs and explains.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
import time
from collections.abc import Sequence
from typing import Any

__all__ = ["fast_token", "main"]

# Mirrors of nbauth._store / nbauth._tokens constants (tests/test_fast_token.py checks they agree).
MAX_ENTRY_BYTES = 256 * 1024
FORMAT = "nbauth-cache"
VERSION = 1
DEFAULT_LEEWAY = 60.0
MAX_TOKEN_CHARS = 64 * 1024
ENTRY_FIELDS = frozenset(
    {"format", "version", "digest", "key", "name", "provider", "token", "login", "username", "updated_at", "generation"}
)
TOKEN_FIELDS = frozenset(
    {
        "access_token",
        "token_type",
        "refresh_token",
        "id_token",
        "scope",
        "expires_at",
        "issued_at",
        "claims",
        "refresh_expires_at",
    }
)
_OFF = ("off", "0", "false", "no", "none")
_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)


class _Doubt(Exception):
    """Something the fast path will not decide: the full command line takes over."""


def _cache_dir() -> str:
    if os.environ.get("NBAUTH_CACHE", "").strip().lower() in _OFF:
        raise _Doubt("cache off")
    configured = os.environ.get("NBAUTH_CACHE_DIR")
    if configured:
        return os.path.expanduser(configured)
    import platformdirs  # the same lookup as nbauth._store.cache_dir

    return str(platformdirs.user_cache_dir("nbauth", appauthor=False))


def _owned_private(st: os.stat_result) -> bool:
    return (not hasattr(os, "getuid") or st.st_uid == os.getuid()) and not stat.S_IMODE(st.st_mode) & 0o077


def _read(path: str, digest: str) -> dict[str, Any]:
    """One entry file, accepted only where nbauth._store.Store._read_file would accept it silently."""
    fd = os.open(path, os.O_RDONLY | _O_NOFOLLOW | _O_CLOEXEC)  # OSError (ELOOP, EACCES...) -> doubt
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or not _owned_private(st):
            raise _Doubt("file")
        raw = f.read(MAX_ENTRY_BYTES + 1)
    if len(raw) > MAX_ENTRY_BYTES:
        raise _Doubt("size")
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("version") != VERSION:
        raise _Doubt("format")
    if data.get("digest") != digest or not set(data) <= ENTRY_FIELDS:
        raise _Doubt("fields")
    key = data["key"]
    parts = [key["issuer"], key["client_id"], key["user"], key["scope"]]
    if key.get("resource"):  # RFC 8707 resources are part of the key when a login named some
        parts.append(key["resource"])
    if not all(isinstance(p, str) for p in parts):
        raise _Doubt("key")
    raw_key = json.dumps(parts, separators=(",", ":"))
    if hashlib.sha256(raw_key.encode("utf-8")).hexdigest()[:40] != digest:  # CacheKey.digest
        raise _Doubt("digest")
    if not isinstance(data["token"], dict) or not set(data["token"]) <= TOKEN_FIELDS:
        raise _Doubt("token fields")
    if not isinstance(data["name"], str) or not isinstance(data["provider"], dict):
        raise _Doubt("name")
    return data


def _entries(directory: str) -> list[dict[str, Any]]:
    st = os.lstat(directory)
    if not stat.S_ISDIR(st.st_mode) or not _owned_private(st):
        raise _Doubt("directory")  # the store would refuse or tighten it, with a warning
    found = []
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json") and not name.startswith("."):
            found.append(_read(os.path.join(directory, name), name[: -len(".json")]))
    return found


def _maybe_alive(data: dict[str, Any], now: float) -> bool:
    """Whether the full path may pick this entry (nbauth._sessions._alive without the secret lookup)."""
    token = data["token"]
    expires_at = token.get("expires_at")
    expired = expires_at is not None and expires_at <= now
    return not expired or bool(token.get("refresh_token")) or data.get("login") == "client_credentials"


def _fresh_token(data: dict[str, Any], now: float) -> str:
    """The access token when ``Token.state(refresh_leeway)`` is FRESH (RFC 6749 §5.1 expiry, RFC 6750 §2.1)."""
    token = data["token"]
    access = token.get("access_token")
    if not isinstance(access, str) or not access or len(access) > MAX_TOKEN_CHARS:
        raise _Doubt("access_token")
    if not access.isascii() or not access.isprintable() or any(c.isspace() for c in access):
        raise _Doubt("header-unsafe")
    if str(token.get("token_type") or "Bearer").lower() != "bearer":
        raise _Doubt("not Bearer")  # DPoP-bound (RFC 9449) and other schemes need the full path
    expires_at = token.get("expires_at")
    if expires_at is None:
        return access
    issued_at = token.get("issued_at") or now
    cap = data["provider"].get("refresh_leeway")
    cap = DEFAULT_LEEWAY if cap is None else float(cap)
    leeway = min(cap, max(0.0, float(expires_at) - float(issued_at)) / 2)
    if float(expires_at) - now <= leeway:
        raise _Doubt("refresh due")
    return access


def fast_token(argv: Sequence[str]) -> str | None:
    """The token ``nbauth token`` would print without a request, or None: use the full path."""
    if not argv or argv[0] != "token" or len(argv) > 2 or any(a.startswith("-") for a in argv[1:]):
        return None
    name = argv[1] if len(argv) == 2 else (os.environ.get("NBAUTH_PROFILE") or None)
    if name is not None and name.startswith(("https://", "http://")):
        return None
    try:
        now = time.time()
        entries = [e for e in _entries(_cache_dir()) if (name is None or e["name"] == name) and _maybe_alive(e, now)]
        if len(entries) != 1:
            return None  # none (log in / unattended login) or a choice to make: the full path decides
        return _fresh_token(entries[0], now)
    except (_Doubt, OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None


def main() -> int:
    """Console script entry point: the fast ``token`` path, else :func:`nbauth._cli.main`."""
    token = fast_token(sys.argv[1:])
    if token is not None:
        try:
            sys.stdout.write(token + "\n")
            sys.stdout.flush()
        except BrokenPipeError:
            return 1
        return 0
    from nbauth._cli import main as full_main

    return full_main()
