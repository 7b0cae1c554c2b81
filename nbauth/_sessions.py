"""Finding, reusing and listing sessions: ``nbauth.session()`` and ``nbauth.sessions()``.

A login is stored under issuer + client + user + requested scope. Logging in again while
this kernel or the cache holds a valid or refreshable session for the same provider, client
and scope returns it without a token request. A session restored in a new kernel refreshes
with the live provider object of that issuer and client when one exists (it holds the client
secret), else a provider rebuilt from the cache entry, whose confidential client secret
comes from ``NBAUTH_CLIENT_SECRET`` or the OS keyring (``keyring`` extra); it is never read
from the cache, where it is never written.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from . import _clock
from ._cache import CacheKey, Entry, Holder, get_holder, holders, load_entries, put_holder, read_entry
from ._errors import LoginRequired
from ._handle import shared_with
from ._providers import Provider, live_provider
from ._session import Session, save_entry
from ._store import current_store
from ._tokens import Token, TokenState

__all__ = ["SessionTable", "establish", "find_reusable", "session", "sessions"]

KEYRING_SERVICE = "nbauth"


def _secret_for(config: dict[str, Any]) -> str | None:
    """A restored confidential client's secret: NBAUTH_CLIENT_SECRET, else the keyring."""
    if not config.get("has_client_secret"):
        return None
    client_id = config.get("client_id") or ""
    env_id = os.environ.get("NBAUTH_CLIENT_ID")
    secret = os.environ.get("NBAUTH_CLIENT_SECRET")
    if secret and env_id in (None, "", client_id):
        return secret
    try:
        import keyring  # optional extra
    except ImportError:
        return None
    try:
        value = keyring.get_password(KEYRING_SERVICE, f"{client_id}@{config.get('issuer') or config['token_url']}")
    except Exception:
        return None
    return value if isinstance(value, str) else None


def _provider_for(entry: Entry) -> Provider:
    live = live_provider(entry.key.issuer, entry.provider.get("client_id"))
    if live is not None:
        return live
    return Provider.from_config(entry.provider, client_secret=_secret_for(entry.provider))


def _adopt_name(holder: Holder, provider: Provider) -> Holder:
    """A login reused through a provider named differently takes that name (``nbauth.session(name)``)."""
    if holder.entry.name != provider.name:
        store = current_store()
        with holder.lock, store.lock(holder.key.digest):
            holder.entry = holder.entry.replace(name=provider.name)
            save_entry(holder, holder.token)
    return holder


def _session_of(holder: Holder) -> Session:
    if holder.session is None:
        holder.session = Session(holder)
    session: Session = holder.session
    return session


def _alive(holder_or_entry: Holder | Entry, provider: Provider | None) -> bool:
    """Valid now, or refreshable: a refresh token, or client credentials we can repeat."""
    entry = holder_or_entry.entry if isinstance(holder_or_entry, Holder) else holder_or_entry
    if isinstance(holder_or_entry, Holder) and holder_or_entry.logged_out:
        return False
    token = entry.token
    if token.state() is not TokenState.EXPIRED or token.refreshable:
        return True
    return entry.login == "client_credentials" and provider is not None and bool(provider.client_secret)


def _matches(key: CacheKey, entry: Entry, issuer: str, client_id: str, scope: str, username: str | None) -> bool:
    if (key.issuer, key.client_id, key.scope) != (issuer.rstrip("/"), client_id, scope):
        return False
    return username is None or username in (entry.username, key.user, entry.token.user)


def find_reusable(provider: Provider, *, client_id: str | None, scope: tuple[str, ...],
                  username: str | None = None, client_secret: str | None = None) -> Session | None:
    """A live or cached session for this provider, client, scope (and user, when known)."""
    client = client_id or provider.client_id or ""
    scope_key = CacheKey.make("x", None, None, scope).scope
    for holder in holders():
        if _matches(holder.key, holder.entry, provider.issuer_key, client, scope_key, username) and _alive(
            holder, provider
        ):
            holder.provider = provider  # the newest object holds the current secret and settings
            if client_secret:
                holder.client_secret = client_secret
            return _session_of(_adopt_name(holder, provider))
    for entry in load_entries():
        if _matches(entry.key, entry, provider.issuer_key, client, scope_key, username) and _alive(entry, provider):
            holder = put_holder(Holder(entry, provider, client_secret))
            return _session_of(_adopt_name(holder, provider))
    return None


def establish(provider: Provider, token: Token, *, login: str, username: str | None,
              scope: tuple[str, ...], client_id: str | None = None,
              client_secret: str | None = None) -> Session:
    """Store a fresh login under its key and return its Session (one per key per kernel)."""
    user = str(token.claims.get("sub") or username or "")
    key = CacheKey.make(provider.issuer_key, client_id or provider.client_id, user, scope)
    entry = Entry(key, provider.name, provider.config(), token, login, username or token.user)
    holder = put_holder(Holder(entry, provider, client_secret))
    store = current_store()
    with holder.lock, store.lock(key.digest) as locked:
        disk = read_entry(store, key) if locked else None
        holder.entry = entry
        holder.logged_out = False
        save_entry(holder, token, store_generation=disk.generation if disk else None)
    return _session_of(holder)


def session(name: str | None = None) -> Session:
    """A live session from this kernel, or one restored from the cache (no token request).

    ``name`` is the session's name (a Keycloak realm, or ``name=`` of the provider); None
    picks the most recent login. Raises :class:`LoginRequired` when there is none to use.
    """
    for holder in holders():
        if (name is None or holder.entry.name == name) and _alive(holder, holder.provider):
            return _session_of(holder)
    seen: list[str] = []
    for entry in load_entries():
        seen.append(entry.name)
        if name is not None and entry.name != name:
            continue
        existing = get_holder(entry.key)
        provider = existing.provider if existing is not None else _provider_for(entry)
        if _alive(entry, provider):
            return _session_of(put_holder(Holder(entry, provider)))
    known = ", ".join(sorted(set(seen) | {h.entry.name for h in holders()})) or "none"
    what = f"no usable session named {name!r}" if name else "no usable session"
    raise LoginRequired(f"{what} in this kernel or the cache (known: {known}): log in first, e.g. "
                        "provider.device_login() or provider.get_token_by_client_credentials()")


class SessionTable(list[dict[str, Any]]):
    """``nbauth.sessions()``: a list of rows, shown as a table (HTML in a notebook)."""

    COLUMNS = ("name", "user", "issuer", "client_id", "scope", "expires", "refreshable", "where", "shared")

    def _cells(self) -> Iterator[list[str]]:
        now = _clock.now()
        for row in self:
            expires_at = row["expires_at"]
            if expires_at is None:
                expires = "unknown"
            elif expires_at <= now:
                expires = "expired"
            else:
                expires = f"in {int(expires_at - now) // 60} min {int(expires_at - now) % 60} s"
            yield [str(row["name"]), str(row["user"] or ""), str(row["issuer"]), str(row["client_id"]),
                   str(row["scope"]), expires, "yes" if row["refreshable"] else "no", str(row["where"]),
                   ", ".join(row.get("shared", ())) or "-"]

    def __str__(self) -> str:
        rows = [list(self.COLUMNS), *self._cells()]
        if len(rows) == 1:
            return "No nbauth sessions in this kernel or the cache."
        widths = [max(len(r[i]) for r in rows) for i in range(len(self.COLUMNS))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return str(self)

    def _repr_html_(self) -> str:
        if not self:
            return "<p>No nbauth sessions in this kernel or the cache.</p>"
        import html

        cell = 'style="text-align:left; white-space:nowrap"'
        head = "".join(f"<th {cell}>{html.escape(c)}</th>" for c in self.COLUMNS)
        body = "".join("<tr>" + "".join(f"<td {cell}>{html.escape(c)}</td>" for c in cells) + "</tr>"
                       for cells in self._cells())
        return f'<table class="nbauth-sessions"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def sessions() -> SessionTable:
    """Every session of this kernel and the cache, newest first (secrets never shown)."""
    table = SessionTable()
    seen: set[CacheKey] = set()

    def add(entry: Entry, where: str) -> None:
        seen.add(entry.key)
        table.append({
            "name": entry.name, "user": entry.token.user or entry.username, "issuer": entry.key.issuer,
            "client_id": entry.key.client_id, "scope": " ".join(entry.token.scope) or entry.key.scope,
            "expires_at": entry.token.expires_at, "refreshable": entry.token.refreshable, "where": where,
            "shared": shared_with(entry.key),  # the dask clusters it is shared with (nbauth.dask)
        })

    for holder in holders():
        if not holder.logged_out:
            add(holder.entry, "kernel")
    for entry in load_entries():
        if entry.key not in seen:
            add(entry, "cache")
    return table
