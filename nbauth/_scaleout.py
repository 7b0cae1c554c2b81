"""Sessions on dask workers: the owning kernel renews, every worker borrows (design.md "Scale-out").

Imported only by a process that already uses ``distributed``; it never imports :mod:`nbauth._session`
(which loads it lazily): on a worker, ``Session._unpickle`` wraps a :class:`Source` from here.

The channel is dask itself, through the scheduler: the kernel opens no port and workers need
no path to it and no cache. The owner publishes its *access* token (RFC 6750 §2.1 bearer use;
refresh and id tokens, secrets and passwords never leave it) in the scheduler's metadata under
``["nbauth", channel]``, with a serial number and a heartbeat. A worker process keeps the last
token it read and uses it while it is fresh (no round trip per request); when it is due, or
after a 401 (RFC 6750 §3.1), one thread of that process logs a renewal request event on the
scheduler (``nbauth-renew/<channel>``, carrying a fingerprint of the token it used, never the
token) and waits for a newer serial. The owner answers every request through its single-flight
engine (:func:`nbauth._refresh.ensure_token`): a token not due is not renewed (none early) and
N workers reporting the same rejected token cause one forced renewal.

No heartbeat for ``OWNER_TIMEOUT`` s, a logout, unshare or dead grant: the next request raises
:class:`LoginRequired` naming the session and its owner; nothing waits over ``ANSWER_TIMEOUT``.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import uuid
from collections.abc import Mapping
from typing import Any

import distributed
from distributed.utils import sync

from . import _clock, _errors
from ._entries import CacheKey
from ._errors import AuthError, ConfigurationError, LoginRequired, ProviderError
from ._handle import (
    SessionHandle,
    _metadata_key,
    _topic,
    fingerprint,
    handle_of,
    mark_shared,
    placeholder_holder,
    unmark_shared,
)
from ._refresh import ensure_token
from ._registry import Holder
from ._tokens import Token, TokenState

__all__ = ["Source", "auto_share", "share", "unshare", "worker_source"]

log = logging.getLogger("nbauth")
HEARTBEAT = 2.0  # the owner re-publishes its state this often (s)
OWNER_TIMEOUT = 10.0  # no heartbeat for this long: the owner is gone
CHECK_EVERY = 3.0  # a worker holding a fresh token re-reads the owner's state this often
ANSWER_TIMEOUT = 25.0  # a worker waits at most this long for a renewal (design: LoginRequired within 30 s)
RESEND_EVERY = 3.0  # a renewal request not answered by then is sent again


def _default_client() -> Any:
    """The current ``distributed.Client``, or None."""
    try:
        return distributed.default_client()  # type: ignore[no-untyped-call]
    except ValueError:
        return None


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


# ------------------------------------------------------------------------------ owner side
class Share:
    """One session shared with one dask client: publishes tokens, answers renewal requests."""

    def __init__(self, session: Any, client: Any) -> None:
        self.holder: Holder = session.holder
        self.client: Any = client
        self.client_id: str = client.id
        self.channel = f"{self.holder.key.digest[:16]}-{uuid.uuid4().hex[:12]}"
        self.handle = handle_of(session.entry, session.provider, self.channel, self.client_id)
        self.serial = 0
        self.beat = 0
        self.error: AuthError | None = None
        self.requests: queue.SimpleQueue[Mapping[str, Any]] = queue.SimpleQueue()
        self.stopped = threading.Event()
        self.published = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"nbauth-share-{self.holder.entry.name}", daemon=True)

    @property
    def alive(self) -> bool:
        return not self.stopped.is_set() and not self.holder.logged_out

    def start(self, *, wait: bool) -> None:
        self.client.subscribe_topic(_topic(self.channel), self._on_event)
        self.thread.start()
        if wait:
            self.published.wait(10.0)

    def _on_event(self, event: tuple[float, Any]) -> None:
        msg = event[1]
        if isinstance(msg, Mapping):
            self.requests.put(msg)

    def _run(self) -> None:
        try:
            self._publish()
            self.published.set()
            while not self.stopped.is_set():
                try:
                    batch = [self.requests.get(timeout=HEARTBEAT)]
                except queue.Empty:
                    batch = []
                while not self.requests.empty():
                    batch.append(self.requests.get_nowait())
                if self.stopped.is_set() or self.client.status not in ("running", "connecting", "newly-created"):
                    break
                if batch:
                    self._answer(batch)
                self._publish()
        except Exception as exc:  # the client closed under us: workers notice the missing heartbeat
            log.debug("nbauth: sharing %r ended: %r", self.holder.entry.name, exc)
        finally:
            self.published.set()
            self.stopped.set()
            _forget(self)

    def _answer(self, batch: list[Mapping[str, Any]]) -> None:
        """Renew through the single-flight engine; a forced request counts only for the token it names."""
        self.error = None
        for msg in batch:
            force = bool(msg.get("force"))
            current = self.holder.token.access_token
            seen = (current if msg.get("seen") == fingerprint(current) else "(already renewed)") if force else None
            try:
                ensure_token(self.holder, force=force, seen=seen)
            except AuthError as exc:
                self.error = exc
        self.serial += 1

    def _state(self) -> dict[str, Any]:
        name = self.holder.entry.name
        state: dict[str, Any] = {"serial": self.serial, "beat": self.beat, "name": name, "owner": self.handle.owner}
        if self.holder.logged_out:
            state["error"] = [
                "LoginRequired",
                f"the session {name!r} was logged out by its owner ({self.handle.owner}): log in again there",
            ]
        elif self.stopped.is_set():
            state["error"] = [
                "LoginRequired",
                f"the session {name!r} is no longer shared by its owner "
                f"({self.handle.owner}): call nbauth.dask.share(session) there",
            ]
        elif self.error is not None:
            state["error"] = [type(self.error).__name__, self.error.message]
        else:
            token = self.holder.token
            state["token"] = {
                "access_token": token.access_token,
                "token_type": token.token_type,
                "expires_at": token.expires_at,
                "issued_at": token.issued_at,
                "scope": list(token.scope),
            }
        return state

    def _publish(self) -> None:
        self.beat += 1
        self.client.set_metadata(_metadata_key(self.channel), self._state())

    def stop(self) -> None:
        self.stopped.set()
        try:
            self.client.set_metadata(_metadata_key(self.channel), self._state())
            self.client.unsubscribe_topic(_topic(self.channel))
        except Exception as exc:  # a closed client: its workers notice the missing heartbeat
            log.debug("nbauth: could not tell the cluster that %r is unshared: %r", self.holder.entry.name, exc)


_shares: dict[tuple[CacheKey, str], Share] = {}
_shares_lock = threading.Lock()


def _forget(item: Share) -> None:
    with _shares_lock:
        key = (item.holder.key, item.client_id)
        if _shares.get(key) is item:
            del _shares[key]
            unmark_shared(item.holder.key, item.client_id)


def share(session: Any, client: Any = None) -> str:
    """Share ``session`` with the cluster of ``client`` (default: the current one); returns the channel."""
    if session.borrowed:
        return str(session.__reduce__()[1][0].channel or "")  # the channel of the handle it pickles to
    client = client if client is not None else _default_client()
    if client is None:
        raise ConfigurationError("no dask client is current: pass client=, or create a distributed.Client first")
    if session.logged_out:
        raise LoginRequired(f"the session {session.name!r} was logged out: log in again before sharing it")
    key = (session.key, client.id)
    with _shares_lock:
        existing = _shares.get(key)
        if existing is not None and existing.alive and existing.holder is session.holder:
            return existing.channel
        if existing is not None:
            existing.stopped.set()
        item = _shares[key] = Share(session, client)
        mark_shared(session.key, client.id, f"dask {client.id}")
    item.start(wait=not _in_event_loop())
    return item.channel


def unshare(session: Any, client: Any = None) -> bool:
    """Stop sharing with ``client``'s cluster (default: every cluster); its workers' requests then raise
    LoginRequired. True when something was shared.
    """
    with _shares_lock:
        found = [s for (key, cid), s in _shares.items() if key == session.key and (client is None or cid == client.id)]
    for item in found:
        item.stop()
        _forget(item)
    return bool(found)


def auto_share(session: Any) -> tuple[str, str] | None:
    """(client id, channel) for pickling: the current client's share, else the newest existing one."""
    client = _default_client()
    if client is not None and client.status == "running" and not session.logged_out:
        return client.id, share(session, client)
    with _shares_lock:  # a logged-out session keeps its channel: the workers read "logged out" there
        mine = [
            s
            for (key, _), s in _shares.items()
            if key == session.key and s.holder is session.holder and not s.stopped.is_set()
        ]
    return (mine[-1].client_id, mine[-1].channel) if mine else None


# ------------------------------------------------------------------------------ worker side
def _worker() -> Any:
    try:
        return distributed.get_worker()
    except ValueError:
        for worker in list(distributed.Worker._instances):
            return worker
    raise LoginRequired("nbauth: this process is no longer a dask worker")


class Source:
    """The owner's tokens as one worker process sees them; one per channel, shared by its threads."""

    def __init__(self, handle: SessionHandle) -> None:
        self.handle = handle
        self.channel = handle.channel or ""
        self.leeway: float | None = handle.leeway
        self.holder = placeholder_holder(handle, Token(access_token="", expires_at=0.0))
        self.lock = self.holder.lock  # the session's single-flight lock (its 401 retries wait on it too)
        self.serial = -1
        self.checked = float("-inf")
        self.beat: int | None = None
        self.beat_changed = _clock.monotonic()
        self.failure: tuple[AuthError, float] | None = None
        self.session: Any = None  # the borrowed nbauth.Session around this source (built by Session._unpickle)

    @property
    def token(self) -> Token:
        return self.holder.token

    def fresh_token(self, *, force: bool = False, seen: str | None = None) -> Token:
        """A token fit to send now: the last one read while fresh, else the owner's answer."""
        token = self.token
        if (
            not force
            and token.state(self.leeway) is TokenState.FRESH
            and _clock.monotonic() - self.checked < CHECK_EVERY
        ):
            return token
        with self.lock:
            if force and self.token.access_token != seen and self.token.state(self.leeway) is TokenState.FRESH:
                return self.token  # another thread of this process already got the renewed one
            if self.failure is not None and _clock.monotonic() - self.failure[1] < CHECK_EVERY:
                raise type(self.failure[0])(self.failure[0].message)  # the threads behind do not wait again
            try:
                token = self._take(self._read())
                return token if self._usable(token, force=force, seen=seen) else self._ask(force=force, seen=seen)
            except AuthError as exc:
                self.failure = (exc, _clock.monotonic())
                raise

    def _usable(self, token: Token, *, force: bool, seen: str | None) -> bool:
        if force:
            return token.access_token != seen and token.state(self.leeway) is TokenState.FRESH
        return token.state(self.leeway) is TokenState.FRESH

    def _ask(self, *, force: bool, seen: str | None) -> Token:
        serial = self.serial
        msg = {"force": force, "seen": fingerprint(seen), "serial": serial}
        deadline = _clock.monotonic() + ANSWER_TIMEOUT
        sent = float("-inf")
        delay = 0.005
        while True:
            if _clock.monotonic() - sent > RESEND_EVERY:
                self._rpc("log_event", topic=_topic(self.channel), msg=msg)
                sent = _clock.monotonic()
            _clock.sleep(delay)
            delay = min(delay * 2, 0.1)
            state = self._read()
            if isinstance(state, Mapping) and int(state.get("serial", -1)) > serial:
                token = self._take(state)
                if token.state() is not TokenState.EXPIRED:
                    return token
            if _clock.monotonic() > deadline:
                raise LoginRequired(
                    f"{self._who()} did not answer within {ANSWER_TIMEOUT:.0f} s; nbauth sends no "
                    "expired token: check that the owning kernel is running"
                )

    def _rpc(self, op: str, **kwargs: Any) -> Any:
        worker = _worker()
        try:
            return sync(worker.loop, getattr(worker.scheduler, op), callback_timeout=10, **kwargs)
        except Exception as exc:
            raise ProviderError(
                f"nbauth: the dask scheduler did not answer ({type(exc).__name__}) while "
                f"getting a token of {self.handle.name!r}; try again"
            ) from None

    def _read(self) -> Any:
        state = self._rpc("get_metadata", keys=_metadata_key(self.channel), default=None)
        self.checked = _clock.monotonic()
        beat = state.get("beat") if isinstance(state, Mapping) else None
        if isinstance(state, Mapping) and state.get("error"):
            return state  # what the owner said last (logged out, unshared, grant dead) wins over its silence
        if beat != self.beat or self.beat is None:
            self.beat, self.beat_changed = beat, self.checked
        elif self.checked - self.beat_changed > OWNER_TIMEOUT:
            raise LoginRequired(
                f"{self._who()} has not been heard from for {OWNER_TIMEOUT:.0f} s (its kernel or "
                "dask client ended?): log in again there and share the session again"
            )
        return state

    def describe(self) -> str:
        return f"on a dask worker, tokens from {self.handle.owner}"

    def logout(self) -> None:
        raise ConfigurationError(
            f"log out in the owning kernel ({self.handle.owner}): workers only borrow its access tokens"
        )

    def _who(self) -> str:
        return f"the owner of the session {self.handle.name!r} ({self.handle.owner})"

    def _take(self, state: Any) -> Token:
        """The token in the owner's state (raising what the owner reported); the last one if none yet."""
        if not isinstance(state, Mapping):
            if _clock.monotonic() - self.beat_changed > OWNER_TIMEOUT:
                raise LoginRequired(
                    f"the session {self.handle.name!r} of {self.handle.owner} is not shared "
                    "with this cluster: call nbauth.dask.share(session, client) in its kernel"
                )
            return self.token
        error = state.get("error")
        if error:
            kind = getattr(_errors, str(error[0]), None)
            cls = kind if isinstance(kind, type) and issubclass(kind, AuthError) else LoginRequired
            raise cls(f"on a dask worker: {error[1]}")
        data = state.get("token") or {}
        if int(state.get("serial", -1)) >= self.serial and data.get("access_token"):
            token = Token(
                access_token=data["access_token"],
                token_type=data.get("token_type") or "Bearer",
                expires_at=data.get("expires_at"),
                issued_at=data.get("issued_at") or _clock.now(),
                scope=tuple(data.get("scope") or ()),
            )
            self.serial = int(state.get("serial", -1))
            if token.access_token != self.token.access_token:
                self.holder.entry = self.holder.entry.replace(token=token)
        return self.token


_sources: dict[str, Source] = {}
_sources_lock = threading.Lock()


def worker_source(handle: SessionHandle) -> Source:
    """The token source of ``handle``'s channel in this worker process (one per channel, shared by its threads)."""
    with _sources_lock:
        source = _sources.get(handle.channel or "")
        if source is None:
            source = _sources[handle.channel or ""] = Source(handle)
    return source
