"""The in-kernel registry: one :class:`Holder` per cache key, shared by every Session for it.

A holder is a login's live state in this kernel: the newest known :class:`Entry`, the lock
that makes renewal single-flight among threads, the provider object used to renew (it holds
the client secret), and a keyed fingerprint of the credentials that made the entry here
(the reuse rules compare it; it is never written anywhere).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections.abc import Iterator
from typing import Any

from ._entries import CacheKey, Entry
from ._tokens import Token

__all__ = ["Holder", "credential_proof", "drop_holder", "get_holder", "holders", "put_holder", "registry_lock"]

#: A per-process key: credential proofs cannot be compared across processes or recomputed from disk.
_PROOF_KEY = secrets.token_bytes(32)


def credential_proof(*parts: str | None) -> bytes | None:
    """A keyed fingerprint of credentials (HMAC-SHA256 with a per-process key), None without any."""
    values = [p for p in parts if p]
    if not values:
        return None
    message = "\x00".join(p or "" for p in parts).encode("utf-8")
    return hmac.new(_PROOF_KEY, message, hashlib.sha256).digest()


class Holder:
    """One cache entry's live state in this kernel, shared by every Session for that key.

    ``lock`` serialises refreshes among threads (single flight); ``entry`` is the newest
    known entry; ``provider`` is the Provider object used to refresh (it holds the secret);
    ``client_secret`` is a client_credentials grant's own secret (memory only); ``proof`` the
    :func:`credential_proof` of the password or secret that made the entry here; ``retry_at``
    backs off renewals after a transient failure; ``session`` is the Session object handed out.
    """

    def __init__(
        self, entry: Entry, provider: Any, client_secret: str | None = None, proof: bytes | None = None
    ) -> None:
        self.entry = entry
        self.provider = provider
        self.client_secret = client_secret
        self.proof = proof
        self.lock = threading.Lock()
        self.logged_out = False
        self.retry_at = 0.0
        self.forced: set[str] = set()  # access tokens already renewed after a 401 (one forced refresh each)
        self.rejecting: set[str] = set()  # API origins that refused a just-renewed token: no more forced renewals
        self.session: Any = None

    @property
    def token(self) -> Token:
        return self.entry.token

    @property
    def key(self) -> CacheKey:
        return self.entry.key


_holders: dict[CacheKey, Holder] = {}
registry_lock = threading.RLock()


def holders() -> Iterator[Holder]:
    """The live holders of this kernel, most recently updated first."""
    with registry_lock:
        items = list(_holders.values())
    return iter(sorted(items, key=lambda h: h.entry.updated_at, reverse=True))


def get_holder(key: CacheKey) -> Holder | None:
    with registry_lock:
        return _holders.get(key)


def put_holder(holder: Holder) -> Holder:
    """Register a holder; an existing one for the key wins (and takes the newer entry)."""
    with registry_lock:
        existing = _holders.get(holder.key)
        if existing is None:
            _holders[holder.key] = holder
            return holder
        if holder.entry.generation >= existing.entry.generation:
            existing.entry = holder.entry
        if holder.provider is not None:
            existing.provider = holder.provider
        if holder.client_secret is not None:
            existing.client_secret = holder.client_secret
        if holder.proof is not None:
            existing.proof = holder.proof
        existing.logged_out = False
        return existing


def drop_holder(key: CacheKey) -> None:
    with registry_lock:
        _holders.pop(key, None)


def clear_registry() -> None:
    """Forget every in-kernel session (tests; ``nbauth.logout_all``)."""
    with registry_lock:
        _holders.clear()
