"""A pickled ``nbauth.Session`` travels as a :class:`SessionHandle`: public facts, never a secret.

The handle holds the cache key (issuer, client, user, scope), the session's name, the
provider's public configuration (``Provider.config()``: endpoints, client id, no secret),
who owns the login (host, pid, and the dask client id when shared with a cluster) and the
channel through which that owner hands out access tokens. It holds no access, refresh or id
token, no client secret and no password (RFC 9700 §4.14: the refresh token stays with the
client that obtained it), so neither does a task graph built from it.

Unpickled in the owning process it is the live session. On a dask worker of a cluster the
session is shared with, it becomes a session whose tokens come from the owner through the
scheduler (:mod:`nbauth._scaleout`). Anywhere else (multiprocessing, loky, a process pool on
the same host) it is restored from that process's cache with the file lock, as
``nbauth.session(name)`` does.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
import threading
from typing import TYPE_CHECKING, Any

from ._cache import CacheKey, Entry, Holder, get_holder, put_holder, read_entry
from ._errors import LoginRequired
from ._providers import Provider
from ._record import Record
from ._store import current_store
from ._tokens import Token

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["SessionHandle", "mark_shared", "reduce_session", "restore", "shared_with", "unmark_shared"]

_shared: dict[CacheKey, dict[str, str]] = {}  # key -> {dask client id: label shown by nbauth.sessions()}
_shared_lock = threading.Lock()


class SessionHandle(Record):
    """What a pickled Session carries: the cache key, its name, public provider config, owner, channel."""

    __slots__ = ("channel", "client_id", "issuer", "login", "name", "owner_client", "owner_host", "owner_pid",
                 "provider", "scope", "user", "username")
    channel: str | None
    client_id: str
    issuer: str
    login: str
    name: str
    owner_client: str | None
    owner_host: str
    owner_pid: int
    provider: dict[str, Any]
    scope: str
    user: str
    username: str | None

    def __init__(self, channel: str | None, client_id: str, issuer: str, login: str, name: str,
                 owner_client: str | None, owner_host: str, owner_pid: int, provider: dict[str, Any], scope: str,
                 user: str, username: str | None) -> None:
        self._set(channel=channel, client_id=client_id, issuer=issuer, login=login, name=name,
                  owner_client=owner_client, owner_host=owner_host, owner_pid=owner_pid, provider=provider,
                  scope=scope, user=user, username=username)

    @property
    def key(self) -> CacheKey:
        return CacheKey(self.issuer, self.client_id, self.user, self.scope)

    @property
    def owner(self) -> str:
        """Who holds the refresh token: host and pid, and the dask client when shared."""
        where = f"{self.owner_host} pid {self.owner_pid}"
        return f"{where}, dask client {self.owner_client}" if self.owner_client else where


def handle_of(session: Session, channel: str | None = None, owner_client: str | None = None) -> SessionHandle:
    """The public facts of a live session (``provider.config()`` holds no secret, only ``has_client_secret``)."""
    entry = session.holder.entry
    key = entry.key
    config = session.provider.config() if session.provider is not None else dict(entry.provider)
    return SessionHandle(channel, key.client_id, key.issuer, entry.login, entry.name, owner_client,
                         socket.gethostname(), os.getpid(), config, key.scope, key.user, entry.username)


def reduce_session(session: Session) -> tuple[Any, tuple[SessionHandle]]:
    """``Session.__reduce__``: a handle; shared with the current ``distributed.Client`` when there is one."""
    channel = owner_client = None
    if "distributed" in sys.modules:  # never import dask here: only a process that uses it can share
        from ._scaleout import auto_share

        shared = auto_share(session)
        if shared is not None:
            owner_client, channel = shared
    return restore, (handle_of(session, channel, owner_client),)


def _on_dask_worker() -> bool:
    worker = sys.modules.get("distributed.worker")
    return worker is not None and bool(getattr(worker, "Worker")._instances)  # noqa: B009


def restore(handle: SessionHandle) -> Session:
    """Unpickle: the live session here, a dask worker's session, or the session in this process's cache."""
    from ._sessions import _session_of

    holder = get_holder(handle.key)
    if holder is not None and not holder.logged_out:
        # in the owner (e.g. a scheduler in this process re-sending the task): the live tokens, the same channel
        return relayed(holder, handle) if handle.channel else _session_of(holder)
    if handle.channel and _on_dask_worker():
        from ._scaleout import worker_session

        return worker_session(handle)
    return _from_cache(handle)


def _from_cache(handle: SessionHandle) -> Session:
    from ._sessions import _provider_for, _session_of

    store = current_store()
    with store.lock(handle.key.digest) as locked:
        entry = read_entry(store, handle.key) if locked else None
    if entry is None:
        return detached(handle, f"the session {handle.name!r} of {handle.owner} is not in this process's nbauth "
                                "cache and no dask cluster shares it with this process: share it with "
                                "nbauth.dask.share(session, client), or log in here")
    return _session_of(put_holder(Holder(entry, _provider_for(entry))))


def placeholder_holder(handle: SessionHandle, token: Token) -> Holder:
    """A holder for a session whose tokens come from elsewhere (no refresh token in it, ever)."""
    entry = Entry(handle.key, handle.name, dict(handle.provider), token, handle.login, handle.username)
    return Holder(entry, Provider.from_config(handle.provider))


def detached(handle: SessionHandle, why: str) -> Session:
    """A session whose every request raises ``LoginRequired(why)``: unpickling itself never fails."""
    session = _classes()[1](placeholder_holder(handle, Token(access_token="", expires_at=0.0)))
    session._nbauth_handle, session._nbauth_why = handle, why
    return session


def relayed(holder: Holder, handle: SessionHandle) -> Session:
    """A session on the live holder that pickles to ``handle`` again (keeps the cluster it was shared with)."""
    session = _classes()[0](holder)
    session._nbauth_handle = handle
    return session


@functools.cache
def _classes() -> tuple[type[Session], type[Session]]:
    """(Relayed, Detached): Session subclasses that pickle to the handle they came from."""
    from ._session import Session

    class Relayed(Session):
        _nbauth_handle: SessionHandle

        def __reduce__(self) -> tuple[Any, tuple[SessionHandle]]:
            return restore, (self._nbauth_handle,)

    class Detached(Relayed):
        _nbauth_why: str

        def fresh_token(self, *, force: bool = False, seen: str | None = None) -> Token:
            raise LoginRequired(self._nbauth_why)

    return Relayed, Detached


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
