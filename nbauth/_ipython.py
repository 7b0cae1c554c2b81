"""Tracebacks of nbauth errors in IPython and Jupyter: the user's cell and the message, nothing else.

An :class:`~nbauth.AuthError` says what went wrong and what to do; the frames of nbauth, requests,
urllib3, ipywidgets or IPython that it passed through tell a notebook user nothing and bury the
message. When ``nbauth`` is imported inside IPython, :func:`install` registers a custom exception
handler for ``AuthError`` only (``InteractiveShell.set_custom_exc``) that drops every frame of
nbauth itself and of installed libraries / the standard library, and hides the chained cause
(a requests exception, already summed up in the message; nbauth never puts secrets in either).
Other exceptions keep IPython's normal traceback. ``NBAUTH_TRACEBACK=full`` shows everything
(for reporting a bug in nbauth); a handler the user installed first is never replaced.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path
from typing import Any

from ._errors import AuthError

__all__ = ["install", "user_traceback"]

_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


def _library_dirs() -> tuple[str, ...]:
    import sysconfig  # only when a traceback is shown

    paths = sysconfig.get_paths()
    dirs = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    dirs |= {p for p in sys.path if p.rstrip(os.sep).endswith(("site-packages", "dist-packages"))}
    return tuple(str(Path(d).resolve()) + os.sep for d in dirs if d)


def _is_machinery(filename: str, libraries: tuple[str, ...]) -> bool:
    if filename.startswith("<frozen"):
        return True
    try:
        resolved = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return resolved.startswith(_PACKAGE) or resolved.startswith(libraries)


def user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` without the frames of nbauth and of installed libraries (the user's cells and modules stay)."""
    libraries = _library_dirs()
    kept: list[types.TracebackType] = []
    while tb is not None:
        if not _is_machinery(tb.tb_frame.f_code.co_filename, libraries):
            kept.append(tb)
        tb = tb.tb_next
    new: types.TracebackType | None = None
    for item in reversed(kept):
        new = types.TracebackType(new, item.tb_frame, item.tb_lasti, item.tb_lineno)
    return new


def _handler(
    shell: Any,
    etype: type[BaseException],
    value: BaseException,
    tb: types.TracebackType | None,
    tb_offset: int | None = None,
) -> None:
    """IPython custom exception handler: show the traceback of the user's frames only (IPython's renderer)."""
    if os.environ.get("NBAUTH_TRACEBACK", "").strip().lower() == "full":
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return
    cause, suppress = value.__cause__, value.__suppress_context__
    value.__cause__, value.__suppress_context__ = None, True  # the requests error behind it: machinery too
    try:
        shell.showtraceback((etype, value, user_traceback(tb)), tb_offset=0)
    finally:
        value.__cause__, value.__suppress_context__ = cause, suppress


def install() -> bool:
    """Register the handler with the running IPython shell, if any; True when it is (now) installed."""
    ipython = sys.modules.get("IPython")  # never import IPython: only a shell that already runs matters
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    if shell is None or not hasattr(shell, "set_custom_exc"):
        return False
    current = getattr(shell, "custom_exceptions", ())
    if current == (AuthError,):
        return True  # already ours (nbauth re-imported or reloaded)
    if current:
        return False  # the user's own handler: leave it
    shell.set_custom_exc((AuthError,), _handler)
    return True
