"""The notebook UI layer: device-code panel, login form, browser sign-in, status widget.

Everything here works without a notebook frontend (plain Python, papermill, nbval) through
text fallbacks; ipywidgets is imported only when a frontend can show widgets.
"""

from __future__ import annotations

from typing import Any

from .._grants import scope_items
from .._login import reuse_line
from .._providers import Provider
from .._session import Session
from .._sessions import find_reusable
from ._text import device_login_text, password_login_text

__all__ = ["interactive", "status"]


def interactive(kind: str, provider: Provider, *, scope: Any = None, force: bool = False, **options: Any) -> Session:
    """Run an interactive login of ``kind`` (device, password, browser), unless one can be reused."""
    requested = scope if scope is not None else provider.scope
    if not force:
        reused = find_reusable(provider, client_id=provider.client_id, scope=scope_items(requested),
                               username=options.get("username"))
        if reused is not None:
            print(reuse_line(reused), flush=True)
            return reused
    if kind == "device":
        return device_login_text(provider, scope, **options)
    if kind == "password":
        return password_login_text(provider, scope, **options)
    from .._errors import ConfigurationError

    raise ConfigurationError(f"{kind} login is not available yet")


def status(session: Session) -> Any:
    """Who is logged in, scopes, expiry (text; a widget in a notebook)."""
    return repr(session)
