"""Cache entries: what one login leaves behind, keyed by issuer + client + user + scope.

An :class:`Entry` is immutable and is what the persistent store (:mod:`nbauth._store`)
shares between kernels; the in-kernel state around it lives in :mod:`nbauth._registry`.
Only allow-listed token fields are written (MSAL's rule); passwords and client secrets
never are.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from . import _clock
from ._record import Record
from ._scope import scope_key
from ._store import Store, _warn, current_store
from ._tokens import Token

__all__ = ["CacheKey", "Entry", "load_entries", "read_entry", "resource_key"]


class CacheKey(Record):
    """issuer + client + user + scope (+ the RFC 8707 resources, when a login named some), normalised:
    scope order and duplicates do not matter. A token for one API's ``resource`` is another key than a
    token for another API's (RFC 8707 §2: the audience restriction is part of what was granted).
    """

    __slots__ = ("client_id", "issuer", "resource", "scope", "user")
    issuer: str
    client_id: str
    user: str
    scope: str
    resource: str

    def __init__(self, issuer: str, client_id: str, user: str, scope: str, resource: str = "") -> None:
        self._set(issuer=issuer, client_id=client_id, user=user, scope=scope, resource=resource)

    @classmethod
    def make(
        cls,
        issuer: str,
        client_id: str | None,
        user: str | None,
        scope: tuple[str, ...] | list[str],
        resource: tuple[str, ...] = (),
    ) -> CacheKey:
        return cls(issuer.rstrip("/"), client_id or "", user or "", scope_key(tuple(scope)), resource_key(resource))

    @property
    def short(self) -> str:
        """A short, stable id of this key (``nbauth.session("demo#3f2a9c")`` picks it among namesakes)."""
        return self.digest[:6]

    @property
    def digest(self) -> str:
        parts = [self.issuer, self.client_id, self.user, self.scope]
        if self.resource:  # keys without resources keep the digest they always had
            parts.append(self.resource)
        raw = json.dumps(parts, separators=(",", ":"))
        return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:40]

    def as_dict(self) -> dict[str, Any]:
        out = super().as_dict()
        if not self.resource:
            del out["resource"]
        return out


def resource_key(resource: tuple[str, ...] | list[str]) -> str:
    """The resources of a key: sorted, without duplicates, space-separated (URIs hold no spaces)."""
    return " ".join(sorted(set(resource)))


class Entry(Record):
    """A cache entry: the token plus what is needed to use and refresh it in a new kernel.

    ``login`` names how the user logged in (to say which cell to run again); ``generation``
    grows with every write, so a kernel can tell that another one rotated the refresh token.
    Immutable: a holder swaps in a new entry with :meth:`replace`.
    """

    __slots__ = ("generation", "key", "login", "name", "origin", "provider", "token", "updated_at", "username")
    _hidden = frozenset({"token", "provider"})
    key: CacheKey
    name: str
    provider: dict[str, Any]
    token: Token
    login: str
    username: str | None
    updated_at: float
    generation: int
    #: How a derived session is renewed (issue 14: a token exchange's parent key and parameters), or None.
    origin: dict[str, Any] | None

    def __init__(
        self,
        key: CacheKey,
        name: str,
        provider: dict[str, Any],
        token: Token,
        login: str,
        username: str | None = None,
        updated_at: float | None = None,
        generation: int = 0,
        origin: dict[str, Any] | None = None,
    ) -> None:
        self._set(
            key=key,
            name=name,
            provider=provider,
            token=token,
            login=login,
            username=username,
            updated_at=_clock.now() if updated_at is None else updated_at,
            generation=generation,
            origin=origin,
        )

    def __hash__(self) -> int:
        return hash((self.key, self.generation))

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key.as_dict(),
            "name": self.name,
            "provider": self.provider,
            "token": self.token.to_cache(),
            "login": self.login,
            "username": self.username,
            "updated_at": self.updated_at,
            "generation": self.generation,
            **({"origin": self.origin} if self.origin is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Entry:
        """Rebuild an entry; ValueError when a field is missing or of the wrong type."""
        key = data.get("key")
        if not isinstance(key, dict) or not all(
            isinstance(key.get(f), str) for f in ("issuer", "client_id", "user", "scope")
        ):
            raise ValueError("key")
        if not isinstance(key.get("resource", ""), str):
            raise ValueError("key.resource")
        provider, token = data.get("provider"), data.get("token")
        name, login = data.get("name"), data.get("login")
        if not isinstance(provider, dict) or not isinstance(token, dict):
            raise ValueError("provider/token")
        if not isinstance(name, str) or not isinstance(login, str):
            raise ValueError("name/login")
        username = data.get("username")
        generation = data.get("generation", 0)
        updated_at = data.get("updated_at", 0)
        if not (username is None or isinstance(username, str)) or not isinstance(generation, int):
            raise ValueError("username/generation")
        if not isinstance(updated_at, (int, float)):
            raise ValueError("updated_at")
        if not isinstance(provider.get("token_url"), str):
            raise ValueError("provider.token_url")
        origin = data.get("origin")
        if origin is not None and not isinstance(origin, dict):
            raise ValueError("origin")
        return cls(
            CacheKey(**{f: key[f] for f in ("issuer", "client_id", "user", "scope")}, resource=key.get("resource", "")),
            name,
            provider,
            Token.from_cache(token),
            login,
            username,
            float(updated_at),
            generation,
            origin,
        )


def _entry(data: Mapping[str, Any], digest: str) -> Entry | None:
    """Rebuild an entry read from ``digest``.json; None (with a warning) when it is damaged or foreign."""
    try:
        entry = Entry.from_json(data)
    except (ValueError, TypeError, KeyError):
        _warn(f"nbauth skipped cache entry {digest}.json: it is damaged")
        return None
    return entry if entry.key.digest == digest else None


def read_entry(store: Store, key: CacheKey) -> Entry | None:
    """The stored entry for a key, or None (missing, or skipped with a warning)."""
    data = store.read(key.digest)
    entry = _entry(data, key.digest) if data is not None else None
    return entry if entry is not None and entry.key == key else None


def load_entries(store: Store | None = None) -> list[Entry]:
    """Every usable entry on disk, newest first."""
    store = store or current_store()
    entries = (_entry(data, digest) for digest, data in store.entries())
    return sorted((e for e in entries if e is not None), key=lambda e: e.updated_at, reverse=True)
