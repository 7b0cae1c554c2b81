"""Finding and listing sessions: ``nbauth.session()`` and ``nbauth.sessions()``.

``nbauth.session(name)`` returns a live session of this kernel or restores one from the
cache, without a token request. Names need not be unique (two issuers may have a realm of
the same name): when several sessions answer to a name the call raises with the candidates
listed, and each session's ``id`` (``name#xxxxxx``) picks exactly one. A restored session
renews with the live provider object of the same issuer, client *and* endpoints when there
is one (it holds the client secret), else a provider rebuilt from the entry, whose secret
comes from :mod:`nbauth._credentials` (never from the cache, where it is never written).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from . import _clock
from ._credentials import secret_for
from ._entries import CacheKey, Entry, load_entries
from ._errors import ConfigurationError, LoginRequired
from ._handle import shared_with
from ._humanize import duration
from ._login import session_of
from ._providers import Provider, live_provider
from ._registry import Holder, get_holder, holders, put_holder
from ._reuse import alive
from ._session import Session

__all__ = ["SessionTable", "restore", "session", "sessions"]


def _provider_for(entry: Entry) -> Provider:
    live = live_provider(entry.key.issuer, entry.provider.get("client_id"), entry.provider)
    if live is not None:
        return live
    secret = (
        secret_for(entry.provider.get("client_id"), entry.key.issuer)
        if entry.provider.get("has_client_secret")
        else None
    )
    return Provider.from_config(entry.provider, client_secret=secret)


def restore(entry: Entry) -> Session:
    """The Session of a cache entry in this kernel (its live holder, or a new one)."""
    existing = get_holder(entry.key)
    if existing is not None:
        return session_of(existing)
    return session_of(put_holder(Holder(entry, _provider_for(entry))))


def _answers(entry: Entry, name: str | None) -> bool:
    return name is None or name in (entry.name, f"{entry.name}#{entry.key.short}")


def _candidates(name: str | None) -> list[tuple[Entry, Holder | None]]:
    """Live and cached entries answering to ``name``, newest first, one per key."""
    found: dict[CacheKey, tuple[Entry, Holder | None]] = {}
    for holder in holders():
        if _answers(holder.entry, name) and alive(holder.entry, holder, holder.provider):
            found.setdefault(holder.key, (holder.entry, holder))
    for entry in load_entries():
        if entry.key not in found and _answers(entry, name):
            live = get_holder(entry.key)
            if live is None or not live.logged_out:
                found.setdefault(entry.key, (entry, live))
    return list(found.values())


def _describe(entry: Entry) -> str:
    who = entry.username or entry.token.user or "no user"
    return f"{entry.name}#{entry.key.short} ({who} at {entry.key.issuer}, client {entry.key.client_id or '-'})"


def session(name: str | None = None) -> Session:
    """A live session from this kernel, or one restored from the cache (no token request).

    ``name`` is the session's name (a Keycloak realm, a profile, or ``name=`` of the provider)
    or its ``id`` (``name#xxxxxx``, shown by ``nbauth.sessions()``); None picks the most recent
    login. Raises :class:`ConfigurationError` when several sessions answer to the name and
    :class:`LoginRequired` when there is none to use.
    """
    found = [
        (e, h)
        for e, h in _candidates(name)
        if alive(e, h, h.provider if h else None) or e.token.refreshable or e.login == "client_credentials"
    ]
    if name is not None and len(found) > 1:
        listed = "; ".join(_describe(e) for e, _ in found)
        raise ConfigurationError(
            f"{len(found)} sessions are named {name!r}: {listed}. Pass the id of the one "
            "you mean, e.g. nbauth.session(" + repr(f"{found[0][0].name}#{found[0][0].key.short}") + ")"
        )
    for entry, holder in found:
        if holder is not None:
            return session_of(holder)
        restored = restore(entry)
        if alive(entry, None, restored.provider):
            return restored
    known = (
        ", ".join(
            sorted(
                {f"{e.name}#{e.key.short}" for e in load_entries()}
                | {f"{h.entry.name}#{h.key.short}" for h in holders()}
            )
        )
        or "none"
    )
    what = f"no usable session named {name!r}" if name else "no usable session"
    raise LoginRequired(
        f"{what} in this kernel or the cache (known: {known}): log in first, e.g. "
        "provider.device_login() or nbauth.login(profile)"
    )


class SessionTable(list[dict[str, Any]]):
    """``nbauth.sessions()``: a list of rows, shown as a table (HTML in a notebook)."""

    COLUMNS = ("id", "user", "issuer", "client_id", "scope", "expires", "refreshable", "where", "shared")
    #: Columns shown without wrapping in a notebook (the others wrap, so the table fits the page).
    _NOWRAP = frozenset({"id", "user", "client_id", "expires", "refreshable", "where"})
    #: URLs break anywhere, but are given room first.
    _URLS = frozenset({"issuer", "resource"})

    @property
    def columns(self) -> tuple[str, ...]:
        """COLUMNS, with ``resource`` after ``scope`` when a session is for one API (RFC 8707)."""
        if not any(row.get("resource") for row in self):
            return self.COLUMNS
        at = self.COLUMNS.index("scope") + 1
        return (*self.COLUMNS[:at], "resource", *self.COLUMNS[at:])

    def _cells(self) -> Iterator[list[str]]:
        now = _clock.now()
        for row in self:
            expires_at = row["expires_at"]
            if expires_at is None:
                expires = "unknown"
            elif expires_at <= now:
                expires = "expired"
            else:
                expires = f"in {duration(expires_at - now)}"
            shown = {
                **{c: str(row.get(c) or "") for c in ("id", "user", "issuer", "client_id", "scope", "where")},
                "resource": str(row.get("resource") or "-"),
                "expires": expires,
                "refreshable": "yes" if row["refreshable"] else "no",
                "shared": ", ".join(row.get("shared", ())) or "-",
            }
            yield [shown[c] for c in self.columns]

    def __str__(self) -> str:
        rows = [list(self.columns), *self._cells()]
        if len(rows) == 1:
            return "No nbauth sessions in this kernel or the cache."
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if not self:
            return "<p>No nbauth sessions in this kernel or the cache.</p>"
        import html

        def style(column: str) -> str:
            if column in self._NOWRAP:
                return 'style="text-align:left; white-space:nowrap"'
            if column in self._URLS:
                return 'style="text-align:left; overflow-wrap:anywhere; min-width:10em"'
            return 'style="text-align:left; min-width:6em"'  # scopes wrap between words

        styles = [style(c) for c in self.columns]
        head = "".join(f"<th {st}>{html.escape(c)}</th>" for c, st in zip(self.columns, styles, strict=True))
        body = "".join(
            "<tr>" + "".join(f"<td {st}>{html.escape(c)}</td>" for c, st in zip(cells, styles, strict=True)) + "</tr>"
            for cells in self._cells()
        )
        return f'<table class="nbauth-sessions"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def sessions() -> SessionTable:
    """Every session of this kernel and the cache, newest first (secrets never shown)."""
    table = SessionTable()
    seen: set[CacheKey] = set()

    def add(entry: Entry, where: str) -> None:
        seen.add(entry.key)
        table.append(
            {
                "id": f"{entry.name}#{entry.key.short}",
                "name": entry.name,
                "user": entry.token.user or entry.username,
                "issuer": entry.key.issuer,
                "client_id": entry.key.client_id,
                "scope": " ".join(entry.token.scope) or entry.key.scope,
                "resource": entry.key.resource or None,
                "expires_at": entry.token.expires_at,
                "refreshable": entry.token.refreshable,
                "where": where,
                "shared": shared_with(entry.key),  # the dask clusters it is shared with (nbauth.dask)
            }
        )

    for holder in holders():
        if not holder.logged_out:
            add(holder.entry, "kernel")
    for entry in load_entries():
        if entry.key not in seen:
            add(entry, "cache")
    return table
