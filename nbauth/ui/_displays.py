"""A Session shown as a cell's result keeps its text up to date: "logged out" replaces a stale expiry.

IPython shows ``api`` on a cell's last line as a static ``text/plain`` result, which is frozen at
that moment: after a logout (the status card's button, or ``api.logout()`` in a later cell) it
would still say "expires in ...". In a notebook frontend the ui layer registers a display function
for :class:`~nbauth.Session` with IPython (``ipython_display_formatter.for_type``): it shows the
same repr with a ``display_id``, and :func:`refresh` rewrites those displays (``update_display``)
when the status card sees the logout, or after the cell that logged out (a ``post_run_cell``
hook), whichever comes first. Without IPython nothing is registered.
"""

from __future__ import annotations

import sys
import threading
import uuid
from typing import Any

from .._session import Session

__all__ = ["refresh", "register"]

_lock = threading.Lock()
_shown: dict[int, tuple[Any, list[str]]] = {}  # id(session) -> (session, display ids)


def _text(session: Session) -> str:
    if session.logged_out:
        who = f" user={session.user!r}" if session.user else ""
        return f"<nbauth.Session {session.name!r}{who} logged out>"
    return repr(session)


def _display(session: Session) -> None:
    from IPython.display import display

    display_id = f"nbauth-session-{uuid.uuid4().hex}"
    display({"text/plain": _text(session)}, raw=True, display_id=display_id)  # type: ignore[no-untyped-call]
    with _lock:
        _shown.setdefault(id(session), (session, []))[1].append(display_id)


def refresh(session: Session) -> None:
    """Rewrite every display of ``session`` (after a logout): no stale expiry stays on screen."""
    with _lock:
        _, ids = _shown.pop(id(session), (None, []))
    if not ids:
        return
    from IPython.display import update_display

    for display_id in ids:
        update_display({"text/plain": _text(session)}, raw=True, display_id=display_id)  # type: ignore[no-untyped-call]


def _after_cell(*_: Any) -> None:
    """IPython post_run_cell: rewrite the displays of sessions that were logged out meanwhile."""
    with _lock:
        gone = [session for session, _ in _shown.values() if session.logged_out]
    for session in gone:
        refresh(session)


def register() -> bool:
    """Register the display function with the running IPython shell (idempotent); False without one."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    formatter = getattr(getattr(shell, "display_formatter", None), "ipython_display_formatter", None)
    if formatter is None:
        return False
    formatter.for_type(Session, _display)
    events = getattr(shell, "events", None)
    if events is not None and _after_cell not in events.callbacks.get("post_run_cell", []):
        events.register("post_run_cell", _after_cell)
    return True
