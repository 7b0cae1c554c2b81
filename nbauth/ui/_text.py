"""Text fallbacks of the interactive logins, for terminals, scripts, papermill and nbval.

Each one blocks until done and has a deadline: the device code's expiry (RFC 8628 §3.2
``expires_in``), or ``timeout`` for the browser sign-in. The password prompt needs a
terminal; without one it raises :class:`LoginRequired` instead of waiting for input nobody
can give.
"""

from __future__ import annotations

import os
import queue
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .. import _clock, _device, _login
from .._drivers import DEFAULT_TIMEOUT, BrowserAttempt
from .._errors import LoginCancelled, LoginRequired, VerificationError
from .._providers import Provider
from .._session import Session
from .._terminal import printable

__all__ = ["browser_login_text", "device_login_text", "password_login_text"]


def device_login_text(
    provider: Provider, scope: Any, *, out: TextIO | None = None, cancelled: Callable[[], bool] | None = None
) -> Session:
    """The device flow in plain text: print the URL and code, block until approved (RFC 8628 §3.3)."""
    out = out or sys.stdout

    def show(step: _device.DevicePrompt) -> None:
        minutes = max(1, round(step.expires_in / 60))
        uri, code = printable(step.verification_uri, newlines=False), printable(step.user_code, newlines=False)
        print(f"To sign in to {printable(provider.name)}, open {uri} and enter the code {code}", file=out)
        if step.verification_uri_complete:
            print(f"(or open {printable(step.verification_uri_complete, newlines=False)})", file=out)
        print(f"The code expires in {minutes} min. Waiting for approval...", file=out, flush=True)

    session = _login.device_login(provider, scope, on_prompt=show, cancelled=cancelled)
    who = f" as {printable(session.user, newlines=False)}" if session.user else ""
    print(f"Logged in to {provider.name}{who} ({session.expiry_text()}).", file=out, flush=True)
    return session


def password_login_text(
    provider: Provider, scope: Any, username: str | None = None, out: TextIO | None = None
) -> Session:
    """Ask for the username and password on the terminal (getpass: the password is not echoed)."""
    import getpass

    out = out or sys.stdout
    if not sys.stdin or not sys.stdin.isatty():
        raise LoginRequired(
            f"{provider.name}: no terminal or notebook to ask for a password; use "
            "get_token_by_password(...) or client credentials for unattended runs"
        )
    user = username or input(f"Username for {provider.name}: ")
    password = getpass.getpass(f"Password for {user}: ")
    try:
        return provider.get_token_by_password(user, password, scope, force=True)
    finally:
        del password


def _stdin_line(timeout: float) -> str | None:
    """A line typed on the terminal within ``timeout`` seconds, or None (POSIX terminals only)."""
    import select

    stdin = sys.stdin
    ready, _, _ = select.select([stdin], [], [], timeout)
    return stdin.readline().strip() if ready else None


def _open_browser(url: str, choice: bool | None) -> bool:
    """Open ``url`` in the user's browser: always (True), never (False), or when it is sure to be
    theirs (None: a terminal is attached, or ``$BROWSER`` names one).
    """
    if choice is False or (choice is None and not (sys.stdin and sys.stdin.isatty()) and not os.environ.get("BROWSER")):
        return False
    import webbrowser

    try:
        return webbrowser.open(url, new=2)
    except webbrowser.Error:
        return False


def browser_login_text(
    provider: Provider,
    scope: Any,
    *,
    out: TextIO | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    port: int = 0,
    open_browser: bool | None = None,
    extra: dict[str, str] | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Session:
    """Browser sign-in in plain text: print the address, wait for the loopback redirect (RFC 8252 §7.3),
    or read the redirect address pasted on the terminal. Gives up after ``timeout`` seconds.
    """
    out = out or sys.stdout
    attempt = BrowserAttempt(provider, scope, port=port, extra=extra)
    minutes = max(1, round(timeout / 60))
    try:
        print(f"To sign in to {provider.name}, open this address in your browser:\n\n    {attempt.url}\n", file=out)
        opened = _open_browser(attempt.url, open_browser)
        pasting = bool(sys.stdin and sys.stdin.isatty()) and os.name == "posix"  # select() on a terminal
        print(
            f"Waiting up to {minutes} min for the browser to come back to {attempt.redirect_uri}"
            f"{' (opened in your browser)' if opened else ''}.",
            file=out,
            flush=True,
        )
        if pasting:
            print(
                "If that page cannot load (the browser runs on another machine), copy the address it shows, "
                "paste it here and press Enter.",
                file=out,
                flush=True,
            )
        deadline = _clock.monotonic() + timeout
        while True:
            if cancelled is not None and cancelled():
                raise LoginCancelled("the browser sign-in was cancelled")
            left = deadline - _clock.monotonic()
            if left <= 0:
                raise LoginRequired(
                    f"no browser sign-in to {provider.name} within {minutes} min: run the login "
                    "again (or pass timeout=...)"
                )
            pasted = False
            try:
                url: str | None = attempt.redirects.get(timeout=min(0.2, left))
            except queue.Empty:
                url = _stdin_line(min(0.5, left)) if pasting else None
                pasted = True
            if not url:
                continue
            try:
                code = attempt.code_from(url)
            except VerificationError as exc:
                if not pasted:
                    raise
                print(f"That did not work: {printable(exc)}", file=out, flush=True)
                continue
            session = _login.browser_login(attempt, code)
            who = f" as {printable(session.user, newlines=False)}" if session.user else ""
            print(f"Logged in to {provider.name}{who} ({session.expiry_text()}).", file=out, flush=True)
            return session
    finally:
        attempt.close()
