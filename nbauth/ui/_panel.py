"""The frame every login panel shares: its state, its outcome, the blocking wait, the fallbacks.

A panel's ``state`` moves from ``starting`` / ``waiting`` (``busy`` while a request runs) to
one final state: ``approved`` (it then shows the status widget), ``denied``, ``expired``,
``cancelled`` or ``error``. ``message`` is the sentence shown for the state; :meth:`wait`
blocks the cell (widgets stay live) until a final state and returns the Session or raises
the typed error. Every wait has a deadline.

The display carries a static ``text/html`` and ``text/plain`` version next to the widget, so
a frontend that cannot render widgets still shows what to do, and the saved notebook shows
how it ended.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets

from .._errors import AuthError, LoginCancelled, LoginRequired
from .._providers import Provider
from .._session import Session
from . import _style
from ._frontend import Shown, pump_until, route_comms, show
from ._report import status_html
from ._status import StatusWidget

__all__ = ["FINAL_STATES", "LoginPanel", "run_panel"]

FINAL_STATES = frozenset({"approved", "denied", "expired", "cancelled", "error"})


class LoginPanel(widgets.VBox):  # type: ignore[misc]
    """A login in progress, as a widget. Subclasses build their parts and run the grant."""

    def __init__(self, provider: Provider, *, title: str, parts: list[widgets.Widget]) -> None:
        self.provider = provider
        self.state = "starting"
        self.message = ""
        self.session: Session | None = None
        self.error: BaseException | None = None
        self.started = threading.Event()  # set once there is something to show (code, form, link)
        self._title = title
        self._lock = threading.RLock()
        self._done = threading.Event()
        self._cancelled = threading.Event()
        self._shown: Shown | None = None
        self._dirty = False
        self._header = widgets.HTML(_style.title(title))
        self._message = widgets.HTML()
        self._output = widgets.Output()
        super().__init__(children=[self._header, *parts, self._message, self._output])
        self.add_class("nbauth-panel")
        route_comms(self)

    # ---- state changes (any thread)
    @property
    def done(self) -> bool:
        return self._done.is_set()

    def _note(self, kind: str, text: str) -> None:
        self.message = text
        self._message.value = _style.note(kind, text)

    def _succeed(self, session: Session) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self.session, self.state = session, "approved"
            self.message = f"Signed in to {self.provider.name}."
            try:
                status = StatusWidget(session)
            except Exception:  # the login worked: a status that cannot render must not undo it
                self._note("ok", self.message)
                self._finish()
                return True
            old: tuple[Any, ...] = tuple(self.children)  # type: ignore[has-type]
            self.remove_class("nbauth-panel")
            self.children = (status,)
            _close_tree(old, keep=())
            self._finish()
            return True

    def _fail(self, state: str, error: BaseException, text: str, *, render: bool = True) -> bool:
        with self._lock:
            if self._done.is_set():
                return False
            self.state, self.error, self.message = state, error, text
            if render:
                self._note("error" if state == "error" else "warn", text)
                old: tuple[Any, ...] = tuple(self.children)
                self.children = (self._header, *self._final_parts(), self._message, self._output)
                _close_tree(old, keep=self.children)
            self._finish()
            return True

    def _finish(self) -> None:
        self._dirty = True
        self.started.set()
        self._done.set()
        self._closed_parts()

    def _final_parts(self) -> list[widgets.Widget]:
        """What stays on screen after a failure besides the title and the message."""
        return []

    def _closed_parts(self) -> None:
        """Release what the grant held (listeners, threads); called once on any final state."""

    def cancel(self, reason: str = "the sign-in was cancelled", *, render: bool = True) -> None:
        """Stop the login; :meth:`wait` raises :class:`LoginCancelled`."""
        self._cancelled.set()
        self._fail(
            "cancelled",
            LoginCancelled(reason),
            "Sign-in cancelled. Run the cell again when you are ready to sign in.",
            render=render,
        )

    def _on_cancel_click(self, _button: Any) -> None:
        with self._output:
            self.cancel()

    # ---- blocking
    def deadline(self) -> float:
        """Monotonic time after which :meth:`wait` gives up (subclasses: the code's expiry, a timeout)."""
        raise NotImplementedError

    def _timed_out(self) -> None:
        self._fail(
            "expired",
            LoginRequired(f"no sign-in to {self.provider.name} in time: run the cell again"),
            "Nobody signed in in time. Run the cell again to start over.",
        )

    def tick(self) -> None:
        """Main-thread housekeeping while the cell blocks: countdowns, display updates."""
        if self._dirty and self._shown is not None:
            self._dirty = False
            self._shown.update()

    def wait(self) -> Session:
        """Block until a final state, keeping the widgets live; return the Session or raise."""
        __tracebackhide__ = True  # IPython shows the user's cell and this raise, not the plumbing between
        try:
            finished = pump_until(self._done.is_set, deadline=self.deadline, tick=self.tick)
        except KeyboardInterrupt:
            self.cancel("the sign-in was interrupted")
            finished = True
        if not finished:
            self._timed_out()
        self.tick()
        if isinstance(self.error, AuthError):
            raise self.error.with_traceback(None)  # its message says it all; the worker's frames do not
        if self.error is not None:
            raise self.error
        assert self.session is not None
        return self.session

    def start(self) -> None:
        """Begin the grant (subclasses start their worker here)."""

    # ---- widget lifecycle and static fallbacks
    def close(self) -> None:
        done = getattr(self, "_done", None)  # None: __init__ failed and the garbage collector closes it
        if done is not None and not done.is_set():
            self.cancel("the sign-in panel was closed", render=False)
        _close_tree(tuple(self.children), keep=())
        super().close()

    def __repr__(self) -> str:
        return f"<nbauth {type(self).__name__} {self.provider.name!r} state={self.state}>"

    def fallback_lines(self) -> list[str]:
        """The text version of the live panel (subclasses: what to do now)."""
        return []

    def fallback_text(self) -> str:
        if self.session is not None and self.children and isinstance(self.children[0], StatusWidget):
            return self.children[0].fallback_text()
        lines = [self._title, *self.fallback_lines()]
        if self.message:
            lines.append(self.message)
        return "\n".join(lines)

    def fallback_html(self) -> str:
        if self.session is not None and self.children and isinstance(self.children[0], StatusWidget):
            return status_html(self.session, self.children[0].who)
        body = "".join(f"<p>{line}</p>" for line in self.fallback_html_lines())
        note = _style.note("error" if self.state == "error" else "warn", self.message) if self.message else ""
        return f'{_style.CSS}<div class="nbauth-panel nbauth-text">{_style.title(self._title)}{body}{note}</div>'

    def fallback_html_lines(self) -> list[str]:
        return [_style.esc(line) for line in self.fallback_lines()]

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = super()._repr_mimebundle_(**kwargs)
        data["text/plain"] = self.fallback_text()
        data["text/html"] = self.fallback_html()
        return data


def _close_tree(parts: tuple[widgets.Widget, ...], *, keep: tuple[widgets.Widget, ...]) -> None:
    """Close widgets no longer shown (and their children), so they leave the saved widget state."""
    for part in parts:
        if any(part is k for k in keep):
            continue
        if isinstance(part, widgets.Box):
            _close_tree(tuple(part.children), keep=keep)
        part.close()


def run_panel(panel: LoginPanel, *, first_wait: float = 5.0) -> Session:
    """Start ``panel``, display it (after up to ``first_wait`` s for its first content), block until done."""
    __tracebackhide__ = True
    try:
        panel.start()
        panel.started.wait(first_wait)
        panel._shown = show(panel)
        return panel.wait()
    finally:
        if not panel.done:  # an error on the way: stop the worker and free the listener
            panel.cancel("the sign-in was interrupted")
