"""Browser sign-in in a notebook: authorization code + PKCE with a loopback redirect (RFC 8252).

The panel shows a button-like link that opens the provider's sign-in page in a new tab.
The redirect comes back to a listener on 127.0.0.1 with an ephemeral port (RFC 8252 §7.3);
when the browser cannot reach the kernel's machine (JupyterHub, remote kernels) the user
pastes the address the tab ended on into the box instead. A mistyped or stale address, or
a failed code exchange, is reported in the panel and the user can try again; an ``error``
sent by the provider (``access_denied``: the user cancelled, RFC 6749 §4.1.2.1) ends it.

The pasted address carries a one-time code (useless without the PKCE verifier, which stays
in the kernel): like the password, it is taken out of the box as soon as it arrives.
"""

from __future__ import annotations

import queue
import threading
from typing import Any

import ipywidgets as widgets
import traitlets

from .. import _clock, _login
from .._drivers import DEFAULT_TIMEOUT, BrowserAttempt
from .._errors import AccessDenied, AuthError, LoginRequired, OAuthError, VerificationError
from .._providers import Provider
from . import _style
from ._panel import LoginPanel

__all__ = ["BrowserPanel"]


class PasteBox(widgets.Text):  # type: ignore[misc]
    """A text box whose value is not echoed back to the frontends (it may carry a one-time code)."""

    value = traitlets.Unicode(help="The pasted redirect address; emptied as soon as it arrives").tag(
        sync=True, echo_update=False
    )


class BrowserPanel(LoginPanel):
    """``provider.browser_login()`` in a notebook."""

    def __init__(
        self,
        provider: Provider,
        scope: Any = None,
        *,
        port: int = 0,
        paste: bool = True,
        extra: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.attempt = BrowserAttempt(provider, scope, port=port, extra=extra)
        self._timeout = timeout
        self._deadline = _clock.monotonic() + timeout
        self._pasted_at = float("-inf")
        self._open = widgets.HTML(self._open_html())
        self._waiting = widgets.HTML()
        self._paste = PasteBox(
            placeholder=f"{self.attempt.redirect_uri}?state=…&code=…",
            continuous_update=False,
            layout=widgets.Layout(width="480px"),
        )
        self._continue = widgets.Button(description="Continue", tooltip="Finish the sign-in with the pasted address")
        self._cancel = widgets.Button(description="Cancel", icon="times", tooltip="Give up this sign-in")
        self._worker = threading.Thread(target=self._run, name="nbauth-browser-login", daemon=True)

        self._paste.observe(self._on_paste_value, names="value")
        self._continue.on_click(self._on_continue_click)
        self._cancel.on_click(self._on_cancel_click)

        parts: list[widgets.Widget] = [self._open, self._waiting]
        if paste:
            explain = widgets.HTML(
                '<div class="nbauth-text nbauth-muted">If the tab ends on an error page because it cannot reach '
                "127.0.0.1 (the kernel runs on another machine, e.g. JupyterHub), copy the address from that tab's "
                "address bar, paste it here and press Enter:</div>"
            )
            parts += [explain, widgets.HBox([self._paste, self._continue])]
        parts.append(widgets.HBox([self._cancel], layout=widgets.Layout(margin="4px 0 0 0")))
        super().__init__(provider, title=f"Sign in to {provider.name} in your browser", parts=parts)

    @property
    def url(self) -> str:
        """The authorization request address (no secret in it: state, nonce and the PKCE challenge)."""
        return self.attempt.url

    def start(self) -> None:
        self.state = "waiting"
        self._render_waiting()
        self._worker.start()
        self.started.set()

    def deadline(self) -> float:
        return self._deadline + (60.0 if self.state == "busy" else 0.0)

    # ---- redirects from the listener (worker thread) and pasted addresses (comm handler)
    def _run(self) -> None:
        while not self.done:
            try:
                url = self.attempt.redirects.get(timeout=0.25)
            except queue.Empty:
                continue
            self._try(url, pasted=False)

    def _on_paste_value(self, change: dict[str, Any]) -> None:
        value = change["new"].strip()
        if not value:
            return
        self._paste.value = ""  # at once: the code does not rest in the widget's state
        self._pasted_at = _clock.monotonic()
        threading.Thread(
            target=self._try, args=(value,), kwargs={"pasted": True}, name="nbauth-browser-paste", daemon=True
        ).start()

    def _on_continue_click(self, _button: Any) -> None:
        with self._output:
            recent = _clock.monotonic() - self._pasted_at < 2.0
            if not recent and self.state != "busy" and not self.done:
                self._note("error", "Paste the address of the tab the sign-in ended on first.")

    def _try(self, url: str, *, pasted: bool) -> None:
        with self._lock:
            if self.done or self.state == "busy":
                return
            self.state = "busy"
            self._note("busy", "Finishing the sign-in…")
        try:
            code = self.attempt.code_from(url)
        except AccessDenied as exc:
            self._fail(
                "denied",
                exc,
                f"The sign-in was cancelled or denied at {self.provider.name}. Run the cell again to try once more.",
            )
            return
        except OAuthError as exc:  # the provider refused the request itself: trying again cannot help
            self._fail("error", exc, str(exc))
            return
        except VerificationError as exc:
            self._retry(str(exc) if pasted else f"{exc} Open the sign-in page again.")
            return
        try:
            session = _login.browser_login(self.attempt, code)
        except AuthError as exc:
            self._retry(f"{exc} Open the sign-in page again.")
            return
        except Exception as exc:
            self._fail("error", exc, f"Unexpected {type(exc).__name__} while signing in; see the traceback below.")
            return
        self._succeed(session)

    def _retry(self, text: str) -> None:
        with self._lock:
            if self.done:
                return
            self.state = "error"
            self._note("error", text)

    # ---- rendering
    def _open_html(self) -> str:
        button = _style.link(self.attempt.url, "Open the sign-in page ↗", cls="nbauth-open")
        name = _style.esc(self.attempt.provider.name)
        return (
            f'<div class="nbauth-text"><p>{button} <span class="nbauth-muted">opens {name} in a new tab; '
            "sign in there, then come back here.</span></p></div>"
        )

    def _render_waiting(self) -> None:
        if self.done:
            return
        left = self._deadline - _clock.monotonic()
        html = _style.note(
            "busy",
            f"Waiting for the browser to come back to {self.attempt.redirect_uri} · "
            f"gives up in {_style.duration(left)}",
        )
        if self._waiting.value != html:
            self._waiting.value = html

    def tick(self) -> None:
        self._render_waiting()
        super().tick()

    def _timed_out(self) -> None:
        minutes = max(1, round(self._timeout / 60))
        self._fail(
            "expired",
            LoginRequired(
                f"no browser sign-in to {self.provider.name} within {minutes} min: run "
                "the cell again (or pass timeout=...)"
            ),
            f"Nobody signed in within {minutes} min. Run the cell again to start over.",
        )

    def _closed_parts(self) -> None:
        self.attempt.close()

    # ---- fallbacks
    def fallback_lines(self) -> list[str]:
        if self.done:
            return []
        return [
            f"Open {self.attempt.url} in your browser and sign in; this cell waits for the redirect to "
            f"{self.attempt.redirect_uri} (interrupt the kernel to cancel)."
        ]

    def fallback_html_lines(self) -> list[str]:
        if self.done:
            return []
        return [
            f"{_style.link(self.attempt.url, 'Open the sign-in page')} and sign in; this cell waits for the "
            f"redirect to {_style.esc(self.attempt.redirect_uri)} (interrupt the kernel to cancel)."
        ]
