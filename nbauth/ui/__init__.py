"""The notebook UI layer: device-code panel, login form, browser sign-in, status widget.

Entry points the login pipeline calls once it has decided no session can be reused:
:func:`interactive` (``provider.device_login()``, ``login_form()``, ``browser_login()``),
:func:`check_options`, and :func:`status` (``session.status()``). The ui only draws and
collects input: it never decides reuse nor writes the cache.
:func:`has_frontend` decides between widgets and the text fallbacks, which keep everything
usable without a notebook frontend (plain Python, papermill, nbval). ipywidgets, segno and
jupyter-ui-poll are imported only when widgets are shown; the widget classes are importable
from here (``nbauth.ui.DevicePanel`` ...) and load them on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from .._providers import Provider
from .._session import Session
from ._displays import register as _register_displays
from ._frontend import has_frontend
from ._report import StatusReport
from ._text import browser_login_text, device_login_text, password_login_text

if TYPE_CHECKING:
    from ._browser_panel import BrowserPanel
    from ._device_panel import DevicePanel
    from ._login_form import LoginForm
    from ._status import StatusWidget

__all__ = [
    "BrowserPanel",
    "DevicePanel",
    "LoginForm",
    "StatusReport",
    "StatusWidget",
    "check_options",
    "has_frontend",
    "interactive",
    "status",
]

#: Options each kind of login accepts (``out`` / ``cancelled`` only matter to the text versions).
OPTIONS = {
    "device": frozenset({"qr", "out", "cancelled"}),
    "password": frozenset({"username", "timeout", "out"}),
    "browser": frozenset({"port", "paste", "extra", "timeout", "open_browser", "out", "cancelled"}),
}
_LAZY = {
    "BrowserPanel": "._browser_panel",
    "DevicePanel": "._device_panel",
    "LoginForm": "._login_form",
    "StatusWidget": "._status",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def check_options(kind: str, options: dict[str, Any]) -> None:
    """Refuse an unknown login kind or option, and a timeout that is not a positive number."""
    if kind not in OPTIONS:
        raise ConfigurationError(f"unknown interactive login {kind!r}: device, password or browser")
    unknown = sorted(set(options) - OPTIONS[kind])
    if unknown:
        raise ConfigurationError(
            f"{kind} login takes no option {', '.join(map(repr, unknown))} "
            f"(it takes {', '.join(sorted(OPTIONS[kind]))})"
        )
    timeout = options.get("timeout")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ConfigurationError("timeout must be a positive number of seconds")


def interactive(kind: str, provider: Provider, *, scope: Any = None, **options: Any) -> Session:
    """Draw an interactive login of ``kind`` (``device``, ``password``, ``browser``) and block until done.

    Widgets when :func:`has_frontend`, text otherwise; the protocol runs in
    :mod:`nbauth._drivers` and the session is recorded by :mod:`nbauth._login`.
    """
    __tracebackhide__ = True
    check_options(kind, options)
    if has_frontend():
        _register_displays()  # the session shown as the cell's result follows a later logout
    if has_frontend():
        from ._widgets import login_with_widgets

        return login_with_widgets(kind, provider, scope, options)
    if kind == "device":
        return device_login_text(provider, scope, out=options.get("out"), cancelled=options.get("cancelled"))
    if kind == "password":
        return password_login_text(provider, scope, username=options.get("username"), out=options.get("out"))
    text_options = {
        k: options[k] for k in ("port", "extra", "timeout", "open_browser", "out", "cancelled") if k in options
    }
    return browser_login_text(provider, scope, **text_options)


def status(session: Session) -> Any:
    """Who is logged in, scopes and a ticking expiry with Refresh / Log out: a widget in a notebook,
    a :class:`StatusReport` (text, static HTML) elsewhere.
    """
    if has_frontend():
        from ._widgets import status_widget

        _register_displays()

        return status_widget(session)
    return StatusReport(session)
