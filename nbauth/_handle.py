"""A pickled ``nbauth.Session`` travels as a :class:`SessionHandle`: public facts, never a secret.

The handle holds the cache key (issuer, client, user, scope), the session's name, the
provider's public configuration (``Provider.config()``: endpoints, client id, no secret),
who owns the login (host, pid, and the dask client id when shared with a cluster) and the
channel through which that owner hands out access tokens. It holds no access, refresh or id
token, no client secret and no password (RFC 9700 §4.14: the refresh token stays with the
client that obtained it), so neither does a task graph built from it.

Unpickled (``Session._restore``) in the owning process it is the live session. On a dask
worker of a cluster the session is shared with, it becomes a session whose tokens come from
the owner through the scheduler (:mod:`nbauth._scaleout`). Anywhere else (multiprocessing,
loky, a process pool on the same host) it is restored from that process's cache with the file
lock, as ``nbauth.session(name)`` does.

This module sits below :mod:`nbauth._session` and never imports it (imports go one way:
``_handle`` <- ``_scaleout`` <- ``_session``, the latter lazily and only in a process that
already uses ``distributed``). The provider travels as its own pickle (``Provider.__reduce__``:
public configuration; the unpickling process supplies the secret).
"""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import threading
from typing import Any

from ._entries import CacheKey, Entry, resource_key
from ._errors import LoginRequired
from ._record import Record
from ._registry import Holder
from ._tokens import Token

__all__ = [
    "Detached",
    "SessionHandle",
    "handle_of",
    "mark_shared",
    "on_dask_worker",
    "placeholder_holder",
    "shared_with",
    "unmark_shared",
]

_shared: dict[CacheKey, dict[str, str]] = {}  # key -> {dask client id: label shown by nbauth.sessions()}
_shared_lock = threading.Lock()


class SessionHandle(Record):
    """What a pickled Session carries: the cache key, its name, the provider, owner, channel.

    ``provider`` is the session's Provider object: it pickles to its public configuration only.
    """

    __slots__ = (
        "channel",
        "client_id",
        "issuer",
        "login",
        "name",
        "owner_client",
        "owner_host",
        "owner_pid",
        "provider",
        "scope",
        "user",
        "username",
    )
    channel: str | None
    client_id: str
    issuer: str
    login: str
    name: str
    owner_client: str | None
    owner_host: str
    owner_pid: int
    provider: Any
    scope: str
    user: str
    username: str | None

    def __init__(
        self,
        channel: str | None,
        client_id: str,
        issuer: str,
        login: str,
        name: str,
        owner_client: str | None,
        owner_host: str,
        owner_pid: int,
        provider: Any,
        scope: str,
        user: str,
        username: str | None,
    ) -> None:
        self._set(
            channel=channel,
            client_id=client_id,
            issuer=issuer,
            login=login,
            name=name,
            owner_client=owner_client,
            owner_host=owner_host,
            owner_pid=owner_pid,
            provider=provider,
            scope=scope,
            user=user,
            username=username,
        )

    @property
    def key(self) -> CacheKey:
        resources = tuple(getattr(self.provider, "resource", ()) or ())  # RFC 8707: part of the key
        return CacheKey(self.issuer, self.client_id, self.user, self.scope, resource_key(resources))

    @property
    def owner(self) -> str:
        """Who holds the refresh token: host and pid, and the dask client when shared."""
        where = f"{self.owner_host} pid {self.owner_pid}"
        return f"{where}, dask client {self.owner_client}" if self.owner_client else where

    @property
    def leeway(self) -> float | None:
        return getattr(self.provider, "refresh_leeway", None)


def handle_of(
    entry: Entry, provider: Any, channel: str | None = None, owner_client: str | None = None
) -> SessionHandle:
    """The public facts of a live session's entry (the provider pickles without its secret)."""
    key = entry.key
    return SessionHandle(
        channel,
        key.client_id,
        key.issuer,
        entry.login,
        entry.name,
        owner_client,
        socket.gethostname(),
        os.getpid(),
        provider,
        key.scope,
        key.user,
        entry.username,
    )


def placeholder_holder(handle: SessionHandle, token: Token) -> Holder:
    """A holder for a session whose tokens come from elsewhere (no refresh token in it, ever)."""
    config = handle.provider.config() if handle.provider is not None else {}
    entry = Entry(handle.key, handle.name, config, token, handle.login, handle.username)
    return Holder(entry, handle.provider)


def on_dask_worker() -> bool:
    """True in a process running a dask worker (read from ``sys.modules``: dask is never imported here)."""
    worker = sys.modules.get("distributed.worker")
    return worker is not None and bool(getattr(worker, "Worker")._instances)  # noqa: B009


class Detached:
    """The token source of a session restored where it cannot work: every request raises ``LoginRequired(why)``
    (unpickling itself never fails).
    """

    def __init__(self, handle: SessionHandle, why: str) -> None:
        self.handle = handle
        self.why = why
        self.holder = placeholder_holder(handle, Token(access_token="", expires_at=0.0))

    def fresh_token(self, *, force: bool = False, seen: str | None = None) -> Token:
        raise LoginRequired(self.why)

    def logout(self) -> None:
        raise LoginRequired(self.why)

    def describe(self) -> str:
        return f"not usable here: {self.why}"


def mark_shared(key: CacheKey, client_id: str, label: str) -> None:
    with _shared_lock:
        _shared.setdefault(key, {})[client_id] = label


def unmark_shared(key: CacheKey, client_id: str) -> None:
    with _shared_lock:
        clients = _shared.get(key, {})
        clients.pop(client_id, None)
        if not clients:
            _shared.pop(key, None)


def shared_with(key: CacheKey) -> list[str]:
    """The clusters this kernel shares the session with (``nbauth.sessions()``'s "shared" column)."""
    with _shared_lock:
        return sorted(_shared.get(key, {}).values())


def fingerprint(access_token: str | None) -> str | None:
    """A short one-way fingerprint: what a renewal request says about the token it used."""
    return hashlib.sha256(access_token.encode()).hexdigest()[:16] if access_token else None


def _metadata_key(channel: str) -> list[str]:
    return ["nbauth", channel]


def _topic(channel: str) -> str:
    return f"nbauth-renew/{channel}"
