"""Sessions for downstream APIs made by token exchange (RFC 8693), renewed from their parent.

``session.exchange(audience=..., scope=..., resource=...)`` (recorded by
:mod:`nbauth._derived`, login layer) sends the parent session's access
token as the ``subject_token`` (RFC 8693 §2.1) and stores the answer as its own cache entry,
whose ``origin`` names the parent's key and the exchange parameters. An exchanged token
usually comes without a refresh token (RFC 8693 §2.2.1: "not recommended"), so renewing it
means exchanging again: the parent's token is made fresh first (its own refresh, single
flight), then exchanged. After a kernel restart the parent is restored from the cache the
same way. A parent that is gone or logged out gives :class:`LoginRequired` naming it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._entries import CacheKey, Entry, read_entry
from ._errors import LoginRequired
from ._registry import Holder, get_holder, put_holder
from ._store import current_store
from ._token_exchange import TokenExchange
from ._tokens import Token

__all__ = ["LOGIN", "renew_exchanged", "token_exchange"]

LOGIN = "exchange"


def token_exchange(subject: Token, origin: dict[str, Any]) -> TokenExchange:
    return TokenExchange(
        subject.access_token,
        audience=origin.get("audience"),
        scope=origin.get("scope"),
        resource=origin.get("resource"),
    )


def _parent_holder(holder: Holder) -> Holder:
    origin = holder.entry.origin or {}
    raw = origin.get("parent")
    if not isinstance(raw, dict):
        raise LoginRequired(
            f"the session {holder.entry.name!r} was made by token exchange but does not name its "
            "parent session: run session.exchange(...) again"
        )
    key = CacheKey(**{f: str(raw.get(f, "")) for f in ("issuer", "client_id", "user", "scope", "resource")})
    parent = get_holder(key)
    if parent is None:
        entry: Entry | None = read_entry(current_store(), key)
        if entry is None:
            raise LoginRequired(
                f"the session {holder.entry.name!r} is renewed from its parent session, which is "
                "no longer in the cache (logged out?): log in again, then call exchange(...)"
            )
        parent = put_holder(Holder(entry, holder.provider))
    if parent.logged_out:
        raise LoginRequired(
            f"the parent of {holder.entry.name!r} ({parent.entry.name!r}) was logged out: log in "
            "again, then call exchange(...)"
        )
    return parent


def renew_exchanged(holder: Holder, ensure_token: Callable[[Holder], Token]) -> Token:
    """A new token for an exchanged session: exchange the parent's (fresh) token again (RFC 8693 §2.1)."""
    parent = _parent_holder(holder)
    subject = ensure_token(parent)
    provider = holder.provider
    grant = token_exchange(subject, holder.entry.origin or {})
    token: Token = provider.fetch_token(grant.request(provider.scope_separator))
    return token
