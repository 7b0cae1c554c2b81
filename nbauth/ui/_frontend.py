"""Where the login UI runs: is a notebook frontend attached, how to show a panel, how to block.

A *frontend* is a person looking at the notebook: JupyterLab, Notebook 7 and VS Code send
``allow_stdin=True`` with every execute request; nbclient, papermill and nbval send False
(nobody can answer a prompt there). ``NBAUTH_UI=widgets`` / ``NBAUTH_UI=text`` override the
detection for tests and frontends that get it wrong.

Blocking: an interactive login blocks its cell until it is done, so "Run All" works (later
execute requests stay queued until the cell ends), while the widgets stay live. Two ways:

- ipykernel >= 7 runs *kernel subshells* (JEP 91): each has its own thread and event loop.
  :func:`route_comms` sends the messages of nbauth's widgets to a subshell (the one the
  frontend chose, else one nbauth creates once per kernel), which handles them while the main
  thread blocks. ipykernel 7.4 routes a comm's messages back to the subshell that last
  published on it - the blocked main one - unless told otherwise; that is what is overridden.
- older kernels: :func:`pump_until` processes pending widget messages with jupyter-ui-poll.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from .. import _clock

__all__ = ["Shown", "has_frontend", "kernel", "pump_until", "route_comms", "show"]

#: Seconds between two rounds of widget messages while a cell blocks.
PUMP_INTERVAL = 0.05


def kernel() -> Any:
    """The IPython kernel object running this code, or None (plain Python, terminal IPython)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too broken to ask: treat it as absent
        return None
    return getattr(shell, "kernel", None) if shell is not None else None


def has_frontend() -> bool:
    """True when a person can see and use widgets in this kernel.

    ``NBAUTH_UI=widgets`` or ``NBAUTH_UI=text`` decide outright; otherwise widgets are used
    only inside an IPython kernel whose current execute request allows stdin (JupyterLab,
    Notebook 7, VS Code), not under nbclient, papermill or nbval.
    """
    mode = os.environ.get("NBAUTH_UI", "").strip().lower()
    if mode in ("widgets", "widget"):
        return True
    if mode == "text":
        return False
    k = kernel()
    return k is not None and bool(getattr(k, "_allow_stdin", False))


_subshell: dict[str, str] = {}
_subshell_lock = threading.Lock()


def _widget_subshell(k: Any) -> str | None:
    """The id of a kernel subshell for nbauth's widget messages (created once), or None without subshells."""
    thread = getattr(k, "shell_channel_thread", None)
    if thread is None or not getattr(k, "_supports_kernel_subshells", False):
        return None
    with _subshell_lock:
        if "id" in _subshell:
            return _subshell["id"]
        try:
            create = thread.manager._create_subshell  # runs in the shell channel thread only
            loop = thread.io_loop
        except AttributeError:
            return None
        box: dict[str, Any] = {}
        made = threading.Event()

        def make() -> None:
            try:
                box["id"] = create()
            except Exception as exc:  # an ipykernel that changed: fall back to the main shell
                box["error"] = exc
            finally:
                made.set()

        loop.add_callback(make)
        if not made.wait(5.0) or not isinstance(box.get("id"), str):
            return None
        _subshell["id"] = box["id"]
        return _subshell["id"]


def route_comms(widget: Any) -> None:
    """Have the frontend's messages to ``widget`` and its children handled off the main thread.

    No-op outside a kernel with subshells (the messages then go to the main shell, pumped by
    :func:`pump_until` while a login blocks).
    """
    k = kernel()
    subshell = _widget_subshell(k) if k is not None else None
    if subshell is None:
        return

    def route(_data: Any, default: str | None) -> str:
        return default if default is not None else subshell

    seen: set[int] = set()
    stack = [widget]
    while stack:
        w = stack.pop()
        if id(w) in seen:
            continue
        seen.add(id(w))
        comm = getattr(w, "comm", None)
        if comm is not None:
            comm._reply_subshell_for = route
        stack.extend(getattr(w, "children", ()) or ())


class Shown:
    """A panel on screen: ``update()`` re-sends its display (the static fallback follows its state)."""

    def __init__(self, widget: Any) -> None:
        self._widget = widget
        self._handle: Any = None
        self._printed = ""
        shell = sys.modules["IPython"].get_ipython() if "IPython" in sys.modules else None
        if shell is not None and getattr(shell, "kernel", None) is not None:
            from IPython.display import display

            self._handle = display(widget, display_id=True)  # type: ignore[no-untyped-call]
        else:  # no notebook to draw on (NBAUTH_UI=widgets in a terminal): the text version
            self._print()

    def _print(self) -> None:
        text = self._widget.fallback_text()
        if text and text != self._printed:
            print(text, flush=True)
            self._printed = text

    def update(self) -> None:
        if self._handle is not None:
            self._handle.update(self._widget)
        else:
            self._print()


def show(widget: Any) -> Shown:
    """Display ``widget`` in the current cell's output and return the handle."""
    return Shown(widget)


@contextlib.contextmanager
def _ui_events() -> Iterator[Callable[[int], None] | None]:
    """jupyter-ui-poll's event pump on a kernel's main thread, where it works (ipykernel < 7.4 has
    ``do_one_iteration``); else nothing (widget messages are then handled in a subshell).
    """
    k = kernel()
    if k is None or threading.current_thread() is not threading.main_thread() or not hasattr(k, "do_one_iteration"):
        yield None
        return
    try:
        from jupyter_ui_poll import ui_events
    except ImportError:  # pragma: no cover - a declared dependency
        yield None
        return
    with ui_events() as poll:
        yield poll


def pump_until(
    done: Callable[[], bool], *, deadline: float | Callable[[], float], tick: Callable[[], None] | None = None
) -> bool:
    """Block until ``done()`` (True) or the monotonic ``deadline`` (False), keeping widgets live.

    ``deadline`` may be a function (it can move, e.g. once a device code's expiry is known);
    ``tick`` runs on this thread about 20 times a second (countdowns, display updates).
    """
    limit = deadline if callable(deadline) else (lambda: deadline)
    with _ui_events() as poll:
        while True:
            if done():
                return True
            if _clock.monotonic() >= limit():
                return False
            if poll is not None:
                poll(20)
            if tick is not None:
                tick()
            time.sleep(PUMP_INTERVAL)
