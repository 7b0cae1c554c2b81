"""What a session's status says, as data, text and static HTML (no widgets here).

Shared by the status widget, the text fallback of ``session.status()`` and the static
fallbacks saved in the notebook. Only names, scopes and times are shown - never a token.
"""

from __future__ import annotations

from typing import Any

from .._errors import AuthError
from .._record import Record
from .._session import Session
from . import _style

__all__ = ["StatusReport", "Who", "expiry_line", "who_of"]


class Who(Record):
    """Who is signed in: the short user name and, when known, the full name."""

    __slots__ = ("name", "user")
    user: str | None
    name: str | None

    def __init__(self, user: str | None, name: str | None = None) -> None:
        self._set(user=user, name=name)

    def __str__(self) -> str:
        if self.user and self.name and self.name != self.user:
            return f"{self.user} ({self.name})"
        return self.user or self.name or "an unnamed user"


def who_of(session: Session, *, ask: bool = True) -> Who:
    """From the verified id_token (OIDC Core §2), else the login's user name; when that gives no
    readable name (nothing, or only the opaque ``sub``), from the provider's UserInfo (§5.3).
    """
    token = session.entry.token
    claims = token.claims
    user, name = session.user, claims.get("name")
    if ask and not name and (not user or user == claims.get("sub")) and session.provider.userinfo_url:
        try:
            info = session.whoami()  # the verified claims completed by UserInfo
        except AuthError:
            info = {}
        for claim in ("preferred_username", "email", "sub"):
            if isinstance(info.get(claim), str) and info[claim]:
                user = info[claim]
                break
        name = info.get("name")
    return Who(user, name if isinstance(name, str) and name else None)


def _renews(session: Session) -> bool:
    token = session.entry.token
    return token.refreshable or (session.login_kind == "client_credentials")


def expiry_line(session: Session) -> tuple[str, str]:
    """``(kind, text)`` for the token's lifetime: kind is ``muted``, ``warn`` or ``error``."""
    if session.logged_out:
        return "muted", "Logged out: the tokens were revoked and forgotten."
    left = session.entry.token.expires_in
    renews = _renews(session)
    if left is None:
        return "muted", "The provider gave no expiry for this token."
    if left > 0:
        tail = "renews itself when due" if renews else "log in again after that"
        return ("muted" if renews or left > 60 else "warn"), f"Access token expires in {_style.duration(left)} · {tail}"
    if renews:
        return "muted", "Access token expired · renews on the next request"
    return "error", "Access token expired · log in again"


def scopes_of(session: Session) -> str:
    scope = session.entry.token.scope or tuple(session.key.scope.split())
    return " ".join(scope) if scope else "(none listed)"


class StatusReport:
    """``session.status()`` without a notebook frontend: text, and static HTML where it renders."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.who = who_of(session)

    def lines(self) -> list[str]:
        s = self.session
        if s.logged_out:
            return [f"Logged out of {s.name}."]
        return [
            f"Signed in to {s.name} as {self.who}",
            f"Scopes: {scopes_of(s)}",
            expiry_line(s)[1],
        ]

    def __str__(self) -> str:
        return "\n".join(self.lines())

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        return status_html(self.session, self.who)


def status_html(session: Session, who: Who) -> str:
    """A static card with the same content as the widget (the notebook keeps it when widgets cannot render)."""
    if session.logged_out:
        return f'{_style.CSS}<div class="nbauth-panel nbauth-text">Logged out of {_style.esc(session.name)}.</div>'
    kind, expiry = expiry_line(session)
    return (
        f'{_style.CSS}<div class="nbauth-panel nbauth-text">'
        f'<div class="nbauth-title"><span class="nbauth-ok">✔</span> Signed in as '
        f"{_style.esc(who)}</div>{_kv(session)}{_style.note(kind, expiry)}</div>"
    )


def _kv(session: Session) -> str:
    rows: list[tuple[str, Any]] = [
        ("Provider", f"{session.name} ({session.key.issuer})"),
        ("Client", session.key.client_id or "-"),
        ("Scopes", scopes_of(session)),
    ]
    cells = "".join(f"<tr><td>{_style.esc(k)}</td><td>{_style.esc(v)}</td></tr>" for k, v in rows)
    return f'<table class="nbauth-kv">{cells}</table>'
