"""The widget side of :func:`nbauth.ui.interactive` and :func:`nbauth.ui.status` (imports ipywidgets)."""

from __future__ import annotations

from typing import Any

from .._providers import Provider
from .._session import Session
from ._browser_panel import BrowserPanel
from ._device_panel import DevicePanel
from ._login_form import LoginForm
from ._panel import LoginPanel, run_panel
from ._status import StatusWidget

__all__ = ["login_with_widgets", "status_widget"]


def login_with_widgets(kind: str, provider: Provider, scope: Any, options: dict[str, Any]) -> Session:
    """Show the panel for ``kind`` in the current cell and block until it is done."""
    __tracebackhide__ = True
    panel: LoginPanel
    if kind == "device":
        panel = DevicePanel(provider, scope, qr=options.get("qr", True))
    elif kind == "password":
        panel = LoginForm(
            provider,
            scope,
            username=options.get("username"),
            **({"timeout": options["timeout"]} if "timeout" in options else {}),
        )
    else:
        keep = {k: options[k] for k in ("port", "paste", "extra", "timeout") if k in options}
        panel = BrowserPanel(provider, scope, **keep)
    return run_panel(panel)


def status_widget(session: Session) -> StatusWidget:
    return StatusWidget(session)
