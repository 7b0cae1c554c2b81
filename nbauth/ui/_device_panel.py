"""The device-code panel: the user interaction of the device authorization grant (RFC 8628 §3.3).

It shows the verification URI as a link that opens a new tab, the user code large and
monospaced with a Copy button, a QR code of ``verification_uri_complete`` (§3.3.1), a
countdown to the code's expiry and a Cancel button. The grant (requests and polling, §3.4
and §3.5) runs in a worker thread that sleeps in slices of at most a second, so Cancel
takes effect at once. On approval the panel turns into the status widget; on denial,
expiry or cancel it says what happened and what to do, and :meth:`wait` raises the typed
error. The user code is not a secret (the user types it elsewhere); the device code is, and
never leaves the worker.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets as widgets
import segno

from .. import _clock, _login
from .._device import DevicePrompt
from .._errors import AccessDenied, AuthError, ExpiredToken, LoginCancelled
from .._providers import Provider
from . import _style
from ._panel import LoginPanel

__all__ = ["DevicePanel", "qr_svg"]

#: How long the panel waits for the device authorization answer before its own deadline applies.
START_GRACE = 120.0
#: Slack after the code's expiry for a poll in flight (the grant raises ExpiredToken itself).
EXPIRY_SLACK = 60.0

_COPY_JS = (
    "const b=this;navigator.clipboard.writeText(b.dataset.code).then("
    "()=>{b.textContent='Copied';setTimeout(()=>{b.textContent='Copy'},1500)},"
    "()=>{b.textContent='Select the code and copy it'})"
)


def qr_svg(data: str, *, target_px: int = 170) -> str:
    """An inline SVG QR code of ``data``, dark on light with its quiet zone (it must scan in dark themes too)."""
    code = segno.make(data, error="m", micro=False)
    modules = code.symbol_size(scale=1, border=4)[0]
    scale = max(2, min(6, target_px // modules))
    svg: str = code.svg_inline(
        scale=scale, border=4, dark="#000", light="#fff", title="Scan to open the sign-in page with the code filled in"
    )
    return svg


class DevicePanel(LoginPanel):
    """``provider.device_login()`` in a notebook (RFC 8628)."""

    def __init__(self, provider: Provider, scope: Any = None, *, qr: bool = True) -> None:
        self.prompt: DevicePrompt | None = None
        self._requested = scope if scope is not None else provider.scope
        self._qr_wanted = qr
        self._expires_at = 0.0
        self._deadline = _clock.monotonic() + START_GRACE
        self._qr = widgets.HTML()
        self._steps = widgets.HTML(_style.note("busy", f"Asking {provider.name} for a sign-in code…"))
        self._countdown = widgets.HTML()
        self._cancel = widgets.Button(description="Cancel", icon="times", tooltip="Stop waiting; the code is dropped")
        self._worker = threading.Thread(target=self._run, name="nbauth-device-flow", daemon=True)

        self._cancel.on_click(self._on_cancel_click)

        self._qr.add_class("nbauth-qr")
        column = widgets.VBox([self._steps, self._countdown, widgets.HBox([self._cancel])])
        body = widgets.HBox([self._qr, column], layout=widgets.Layout(align_items="center"))
        super().__init__(provider, title=f"Sign in to {provider.name}", parts=[body])

    @property
    def user_code(self) -> str | None:
        return self.prompt.user_code if self.prompt else None

    def start(self) -> None:
        self._worker.start()

    def deadline(self) -> float:
        return self._deadline

    # ---- the grant, in the worker thread
    def _run(self) -> None:
        try:
            session = _login.device_login(
                self.provider, self._requested, on_prompt=self._show_prompt, cancelled=self._cancelled.is_set
            )
        except LoginCancelled:
            return
        except AccessDenied as exc:
            self._fail(
                "denied",
                exc,
                f"The sign-in was denied at {self.provider.name}. Run the cell again for a new code, and approve it.",
            )
            return
        except ExpiredToken as exc:
            self._fail("expired", exc, "The code expired before it was approved. Run the cell again for a new code.")
            return
        except AuthError as exc:
            self._fail("error", exc, str(exc))
            return
        except Exception as exc:
            self._fail("error", exc, f"Unexpected {type(exc).__name__} while signing in; see the traceback below.")
            return
        if self._cancelled.is_set():
            return  # approved too late: the user gave up on this code
        self._succeed(session)

    def _show_prompt(self, prompt: DevicePrompt) -> None:
        with self._lock:
            if self.done:
                return
            self._expires_at = _clock.monotonic() + prompt.expires_in
            self._deadline = self._expires_at + EXPIRY_SLACK
            self._steps.value = self._steps_html(prompt)
            if self._qr_wanted:
                self._qr.value = qr_svg(prompt.verification_uri_complete or prompt.verification_uri)
            self.prompt = prompt
            self._render_countdown()
            self._dirty = True
            self.state = "waiting"  # published last: whoever sees it sees the whole panel
            self.started.set()

    # ---- rendering
    def _steps_html(self, prompt: DevicePrompt) -> str:
        href = prompt.verification_uri_complete or prompt.verification_uri
        code = _style.esc(prompt.user_code)
        step2 = "Confirm the code" if prompt.verification_uri_complete else "Enter the code"
        if not self._qr_wanted:
            scan = ""
        elif prompt.verification_uri_complete:
            scan = '<p class="nbauth-muted">Or scan the QR code with your phone: it opens the page with the code.</p>'
        else:
            scan = '<p class="nbauth-muted">Or scan the QR code to open the page on your phone.</p>'
        return (
            '<div class="nbauth-text">'
            f"<p>1. Open {_style.link(href, prompt.verification_uri)} "
            '<span class="nbauth-muted">(new tab) and sign in</span></p>'
            f'<p>2. {step2}: <span class="nbauth-nowrap">'
            f'<span class="nbauth-code" title="Click to select">{code}</span>'
            f'<button class="nbauth-copy" type="button" data-code="{code}" onclick="{_style.esc(_COPY_JS)}" '
            'title="Copy the code to the clipboard">Copy</button></span></p>'
            f"{scan}</div>"
        )

    def _render_countdown(self) -> None:
        if self.prompt is None or self.done:
            return
        left = self._expires_at - _clock.monotonic()
        kind = "warn" if left < 60 else "busy"
        html = _style.note(kind, f"Waiting for you to approve · the code expires in {_style.duration(left)}")
        if self._countdown.value != html:
            self._countdown.value = html

    def tick(self) -> None:
        self._render_countdown()
        super().tick()

    def _timed_out(self) -> None:
        self._cancelled.set()  # the worker stops at its next slice
        self._fail(
            "expired",
            ExpiredToken("expired_token", "the device code expired before it was approved"),
            "The code expired before it was approved. Run the cell again for a new code.",
        )

    # ---- fallbacks
    def fallback_lines(self) -> list[str]:
        p = self.prompt
        if p is None or self.done:
            return []
        lines = [f"Open {p.verification_uri} and enter the code {p.user_code}"]
        if p.verification_uri_complete:
            lines.append(f"(or open {p.verification_uri_complete})")
        lines.append(
            f"The code expires in {max(1, round(p.expires_in / 60))} min. Waiting for approval "
            "(interrupt the kernel to cancel)."
        )
        return lines

    def fallback_html_lines(self) -> list[str]:
        p = self.prompt
        if p is None or self.done:
            return []
        return [
            f"Open {_style.link(p.verification_uri_complete or p.verification_uri, p.verification_uri)} and enter "
            f'the code <span class="nbauth-code">{_style.esc(p.user_code)}</span>',
            _style.esc(self.fallback_lines()[-1]),
        ]
