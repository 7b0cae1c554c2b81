"""``session.status()`` in a notebook: who, scopes, a ticking expiry countdown, Refresh and Log out.

One background thread (:class:`Ticker`) re-renders the countdown of every status widget on
screen once a second; a widget leaves it when it is closed or its session is logged out.
The countdown is only re-sent when its text changes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import ipywidgets as widgets

from .._errors import AuthError, ProviderError
from .._session import Session
from . import _displays, _style
from ._frontend import route_comms
from ._report import Who, expiry_line, scopes_of, status_html, who_of

__all__ = ["StatusWidget", "Ticker"]


class Ticker:
    """Calls ``tick()`` on registered widgets every ``period`` seconds from one daemon thread."""

    def __init__(self, period: float = 1.0) -> None:
        self.period = period
        self._items: dict[int, StatusWidget] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, item: StatusWidget) -> None:
        with self._lock:
            self._items[id(item)] = item
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="nbauth-status-ticker", daemon=True)
                self._thread.start()

    def discard(self, item: StatusWidget) -> None:
        with self._lock:
            self._items.pop(id(item), None)

    def __contains__(self, item: object) -> bool:
        return id(item) in self._items

    def _run(self) -> None:
        while True:
            time.sleep(self.period)
            with self._lock:
                items = list(self._items.values())
                if not items:
                    self._thread = None
                    return
            for item in items:
                try:
                    keep = item.tick()
                except Exception:  # a broken widget must not stop the others' countdowns
                    keep = False
                if not keep:
                    self.discard(item)


TICKER = Ticker()


class StatusWidget(widgets.VBox):  # type: ignore[misc]
    """Who is signed in, with which scopes, until when; Refresh renews now, Log out revokes (RFC 7009)."""

    def __init__(self, session: Session, *, who: Who | None = None) -> None:
        self.session = session
        self.who = who or who_of(session)
        self._lock = threading.RLock()
        self._header = widgets.HTML()
        self._details = widgets.HTML()
        self._expiry = widgets.HTML()
        self._refresh = widgets.Button(description="Refresh", icon="refresh", tooltip="Renew the access token now")
        self._logout = widgets.Button(
            description="Log out", icon="sign-out", tooltip="Revoke the tokens at the provider and forget this session"
        )
        self._message = widgets.HTML()
        self._output = widgets.Output()

        self._refresh.on_click(self._on_refresh_click)
        self._logout.on_click(self._on_logout_click)

        self._buttons = widgets.HBox([self._refresh, self._logout], layout=widgets.Layout(margin="4px 0 0 0"))
        self._render()
        super().__init__(
            children=[self._header, self._details, self._expiry, self._buttons, self._message, self._output]
        )
        self.add_class("nbauth-panel")
        self.add_class("nbauth-status")
        route_comms(self)
        if not session.logged_out:
            TICKER.add(self)

    # ---- rendering
    def _render(self) -> None:
        s = self.session
        if s.logged_out:
            self._header.value = _style.title(f"Logged out of {s.name}")
            self._details.value = (
                '<div class="nbauth-text nbauth-muted">The tokens were revoked and forgotten. '
                "Run the login cell again to sign in.</div>"
            )
            self._expiry.value = ""
            self._refresh.disabled = self._logout.disabled = True
            self._buttons.layout.display = "none"  # nothing left to press: no greyed buttons
            _displays.refresh(s)  # the session's text shown beneath says "logged out" too
            return
        self._header.value = (
            f'{_style.CSS}<div class="nbauth-title"><span class="nbauth-ok">✔</span> '
            f"Signed in as {_style.esc(self.who)}</div>"
        )
        rows = [
            ("Provider", f"{s.name} ({s.key.issuer})"),
            ("Client", s.key.client_id or "-"),
            ("Scopes", scopes_of(s)),
        ]
        cells = "".join(f"<tr><td>{_style.esc(k)}</td><td>{_style.esc(v)}</td></tr>" for k, v in rows)
        self._details.value = f'<table class="nbauth-kv nbauth-text">{cells}</table>'
        self._render_expiry()

    def _render_expiry(self) -> None:
        kind, text = expiry_line(self.session)
        html = _style.note(kind, text)
        if self._expiry.value != html:
            self._expiry.value = html

    def tick(self) -> bool:
        """Re-render the countdown; False once there is nothing left to count (logged out, closed)."""
        with self._lock:
            if self.comm is None:
                return False
            if self.session.logged_out:
                self._render()
                return False
            self._render_expiry()
            return True

    # ---- handlers (they run in the kernel's comm handler; errors are shown inside the widget)
    def _on_refresh_click(self, _button: Any) -> None:
        with self._output, self._busy("Renewing the access token…"):
            try:
                self.session.refresh()
            except AuthError as exc:
                self._message.value = _style.note("error", str(exc))
                return
            self._message.value = _style.note("ok", "Access token renewed.")
            with self._lock:
                self._render_expiry()

    def _on_logout_click(self, _button: Any) -> None:
        with self._output, self._busy("Logging out…"):
            try:
                self.session.logout()
            except ProviderError as exc:  # logged out locally; the provider did not confirm
                self._message.value = _style.note("warn", str(exc))
            except AuthError as exc:
                self._message.value = _style.note("error", str(exc))
                return
            else:
                self._message.value = ""
            TICKER.discard(self)
            with self._lock:
                self._render()

    def _busy(self, text: str) -> _Busy:
        return _Busy(self, text)

    # ---- lifecycle and fallbacks
    def close(self) -> None:
        TICKER.discard(self)
        super().close()

    def __repr__(self) -> str:
        return f"<nbauth status: {self.session.name} {self.who}>"

    def fallback_text(self) -> str:
        s = self.session
        if s.logged_out:
            return f"Logged out of {s.name}."
        return f"Signed in to {s.name} as {self.who}\nScopes: {scopes_of(s)}\n{expiry_line(s)[1]}"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        data: dict[str, Any] = super()._repr_mimebundle_(**kwargs)
        data["text/plain"] = self.fallback_text()
        data["text/html"] = status_html(self.session, self.who)
        return data


class _Busy:
    """Buttons off and a spinner while a request runs; buttons back on in ``finally``."""

    def __init__(self, widget: StatusWidget, text: str) -> None:
        self.widget, self.text = widget, text

    def __enter__(self) -> None:
        w = self.widget
        w._refresh.disabled = w._logout.disabled = True
        w._message.value = _style.note("busy", self.text)

    def __exit__(self, *exc: object) -> None:
        w = self.widget
        if w._message.value == _style.note("busy", self.text):
            w._message.value = ""
        logged_out = w.session.logged_out
        w._refresh.disabled = w._logout.disabled = logged_out
