"""Logins: the backend behind ``provider.get_token*`` and the interactive entry points.

This is the top (``ui``) layer: it decides whether a login is needed at all (a valid or
refreshable session for the same provider, client and scope is reused without a token
request), runs the grant, stores the result and returns the Session. Interactive logins use
widgets when a notebook frontend is attached (``nbauth.ui``, imported only then) and text
otherwise. ipywidgets is never imported by ``import nbauth``.
"""

from __future__ import annotations

from typing import Any

from . import _session
from ._grants import TokenRequest
from ._humanize import duration
from ._providers import Provider, set_login_backend
from ._session import Session
from ._sessions import establish, find_reusable

__all__ = ["describe_expiry", "reuse_line"]

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
    return f"expires in {duration(left)}"


def reuse_line(session: Session) -> str:
    who = f"{session.user} on " if session.user else ""
    return f"Using cached session for {who}{session.name}, {describe_expiry(session)}"


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
        token = provider.fetch_token(request)
        return establish(provider, token, login=kind, username=request.username, scope=request.scope,
                         client_id=client_id, client_secret=request.client_secret)

    def interactive(self, kind: str, provider: Provider, kwargs: dict[str, Any]) -> Session:
        __tracebackhide__ = True
        from . import ui  # widgets only load when a notebook frontend is there

        return ui.interactive(kind, provider, **kwargs)


def _render_status(session: Session) -> Any:
    from . import ui

    return ui.status(session)


set_login_backend(_Backend())

_session.status_renderer = _render_status
