"""Logins: the backend behind ``provider.get_token*`` and the interactive entry points.

This is the top (``ui``) layer: it decides whether a login is needed at all (a valid or
refreshable session for the same provider, client and scope is reused without a token
request), runs the grant, stores the result and returns the Session. Interactive logins use
widgets when a notebook frontend is attached (``nbauth.ui``, imported only then) and text
otherwise. ipywidgets is never imported by ``import nbauth``.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any, TextIO

from . import _clock, _device
from ._errors import ConfigurationError, LoginCancelled
from ._grants import TokenRequest, scope_items
from ._providers import Provider, set_login_backend
from ._session import Session
from ._sessions import establish, find_reusable

__all__ = ["describe_expiry", "device_login_text", "wait_sliced"]

_KIND_BY_GRANT = {
    "password": "password",
    "client_credentials": "client_credentials",
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    "urn:ietf:params:oauth:grant-type:device_code": "device_login",
}
_REUSABLE = {"password", "client_credentials"}


def describe_expiry(session: Session) -> str:
    left = session.holder.token.expires_in
    if left is None:
        return "no expiry given"
    if left <= 0:
        return "expired, will refresh on first use"
    minutes = int(left // 60)
    return f"expires in {minutes} min" if minutes else f"expires in {int(left)} s"


def reuse_line(session: Session) -> str:
    who = f"{session.user} on " if session.user else ""
    return f"Using cached session for {who}{session.name}, {describe_expiry(session)}"


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
        from ._errors import LoginRequired

        raise LoginRequired(f"{provider.name}: no terminal or notebook to ask for a password; use "
                            "get_token_by_password(...) or client credentials for unattended runs")
    user = username or input(f"Username for {provider.name}: ")
    password = getpass.getpass(f"Password for {user}: ")
    try:
        return provider.get_token_by_password(user, password, scope, force=True)
    finally:
        del password


class _Backend:
    """The login backend registered with the providers layer."""

    def get_token(self, provider: Provider, request: TokenRequest, *, force: bool) -> Session:
        kind = _KIND_BY_GRANT.get(request.params.get("grant_type", ""), "custom")
        client_id = request.client_id or provider.client_id
        if not force and kind in _REUSABLE:
            reused = find_reusable(provider, client_id=client_id, scope=request.scope, username=request.username,
                                   client_secret=request.client_secret)
            if reused is not None:
                return reused
        if kind == "password" and provider.password_login_url:
            request = dataclasses.replace(request, endpoint=provider.password_login_url)
        token = provider.fetch_token(request)
        return establish(provider, token, login=kind, username=request.username, scope=request.scope,
                         client_id=client_id, client_secret=request.client_secret)

    def interactive(self, kind: str, provider: Provider, kwargs: dict[str, Any]) -> Session:
        scope = kwargs.pop("scope", None)
        force = bool(kwargs.pop("force", False))
        requested = scope if scope is not None else provider.scope
        if not force:
            reused = find_reusable(provider, client_id=provider.client_id, scope=scope_items(requested),
                                   username=kwargs.get("username"))
            if reused is not None:
                print(reuse_line(reused), flush=True)
                return reused
        if kind == "device":
            return device_login_text(provider, scope, **kwargs)
        if kind == "password":
            return password_login_text(provider, scope, **kwargs)
        raise ConfigurationError(f"{kind} login is not available yet")


set_login_backend(_Backend())

