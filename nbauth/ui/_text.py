"""Text fallbacks of the interactive logins, for terminals, scripts, papermill and nbval."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any, TextIO

from .. import _clock, _device
from .._errors import LoginCancelled, LoginRequired
from .._grants import scope_items
from .._login import describe_expiry
from .._providers import Provider
from .._session import Session
from .._sessions import establish

__all__ = ["device_login_text", "password_login_text", "wait_sliced"]


def wait_sliced(seconds: float, cancelled: Callable[[], bool] | None = None) -> None:
    """Sleep in slices of at most 1 s, checking ``cancelled`` between them (MSAL's poller)."""
    deadline = _clock.monotonic() + seconds
    while True:
        if cancelled is not None and cancelled():
            raise LoginCancelled("the login was cancelled")
        left = deadline - _clock.monotonic()
        if left <= 0:
            return
        _clock.sleep(min(1.0, left))


def device_login_text(provider: Provider, scope: Any, *, out: TextIO | None = None,
                      cancelled: Callable[[], bool] | None = None) -> Session:
    """The device flow in plain text: print the URL and code, block until approved (RFC 8628 §3.3)."""
    out = out or sys.stdout
    requested = scope if scope is not None else provider.scope
    flow = provider.device_flow(requested)
    try:
        step = next(flow)
        while True:
            if isinstance(step, _device.DevicePrompt):
                minutes = max(1, round(step.expires_in / 60))
                print(f"To sign in to {provider.name}, open {step.verification_uri} and enter the code "
                      f"{step.user_code}", file=out)
                if step.verification_uri_complete:
                    print(f"(or open {step.verification_uri_complete})", file=out)
                print(f"The code expires in {minutes} min. Waiting for approval...", file=out, flush=True)
            elif isinstance(step, _device.Wait):
                wait_sliced(step.seconds, cancelled)
            step = next(flow)
    except StopIteration as done:
        token = done.value
    finally:
        flow.close()
    session = establish(provider, token, login="device_login", username=None, scope=scope_items(requested))
    who = f" as {session.user}" if session.user else ""
    print(f"Logged in to {provider.name}{who} ({describe_expiry(session)}).", file=out, flush=True)
    return session


def password_login_text(provider: Provider, scope: Any, username: str | None = None,
                        out: TextIO | None = None) -> Session:
    """Ask for the username and password on the terminal (getpass: the password is not echoed)."""
    import getpass

    out = out or sys.stdout
    if not sys.stdin or not sys.stdin.isatty():
        raise LoginRequired(f"{provider.name}: no terminal or notebook to ask for a password; use "
                            "get_token_by_password(...) or client credentials for unattended runs")
    user = username or input(f"Username for {provider.name}: ")
    password = getpass.getpass(f"Password for {user}: ")
    try:
        return provider.get_token_by_password(user, password, scope, force=True)
    finally:
        del password


