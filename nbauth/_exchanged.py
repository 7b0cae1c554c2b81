"""Sessions for downstream APIs made by token exchange (RFC 8693), renewed from their parent.

``session.exchange(audience=..., scope=..., resource=...)`` sends the parent session's access
token as the ``subject_token`` (RFC 8693 §2.1) and stores the answer as its own cache entry,
whose ``origin`` names the parent's key and the exchange parameters. An exchanged token
usually comes without a refresh token (RFC 8693 §2.2.1: "not recommended"), so renewing it
means exchanging again: the parent's token is made fresh first (its own refresh, single
flight), then exchanged. After a kernel restart the parent is restored from the cache the
same way. A parent that is gone or logged out gives :class:`LoginRequired` naming it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._cache import CacheKey, Entry, Holder, get_holder, put_holder, read_entry
from ._errors import LoginRequired
from ._store import current_store
from ._token_exchange import TokenExchange
from ._tokens import Token

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["exchange_session", "renew_exchanged"]

LOGIN = "exchange"


def _grant(subject: Token, origin: dict[str, Any]) -> TokenExchange:
    return TokenExchange(subject.access_token, audience=origin.get("audience"), scope=origin.get("scope"),
                         resource=origin.get("resource"))


def exchange_session(parent: Session, *, audience: str | None = None, scope: str | Sequence[str] | None = None,
                     resource: str | None = None, name: str | None = None) -> Session:
    """A Session for a downstream API from ``parent``'s token (RFC 8693 §2.1), renewed from the parent."""
    from ._session import ensure_token
    from ._sessions import establish

    if audience is None and resource is None:
        from ._errors import ConfigurationError

        raise ConfigurationError("exchange() needs audience= (the downstream API's name at the IdP) or resource= "
                                 "(its URI, RFC 8707)")
    provider = parent.provider
    scope_list = list(scope.split() if isinstance(scope, str) else scope) if scope is not None else None
    origin: dict[str, Any] = {"parent": parent.key.as_dict(), "audience": audience, "resource": resource,
                              "scope": scope_list}
    token = provider.fetch_token(_grant(ensure_token(parent.holder), origin).request(provider.scope_separator))
    target = resource or audience or ""
    # the target is part of the key: two exchanges for different APIs are different sessions
    key_scope = (f"exchange:{target}", *(scope_list or token.scope))
    session = establish(provider, token, login=LOGIN, username=parent.user, scope=key_scope)
    holder = session.holder
    store = current_store()
    with holder.lock, store.lock(holder.key.digest):
        holder.entry = holder.entry.replace(origin=origin, name=name or f"{parent.name}→{target}")
        store.write(holder.key.digest, holder.entry.to_json())
    return session


def _parent_holder(holder: Holder) -> Holder:
    origin = holder.entry.origin or {}
    raw = origin.get("parent")
    if not isinstance(raw, dict):
        raise LoginRequired(f"the session {holder.entry.name!r} was made by token exchange but does not name its "
                            "parent session: run session.exchange(...) again")
    key = CacheKey(**{f: str(raw.get(f, "")) for f in ("issuer", "client_id", "user", "scope")})
    parent = get_holder(key)
    if parent is None:
        entry: Entry | None = read_entry(current_store(), key)
        if entry is None:
            raise LoginRequired(f"the session {holder.entry.name!r} is renewed from its parent session, which is "
                                "no longer in the cache (logged out?): log in again, then call exchange(...)")
        parent = put_holder(Holder(entry, holder.provider))
    if parent.logged_out:
        raise LoginRequired(f"the parent of {holder.entry.name!r} ({parent.entry.name!r}) was logged out: log in "
                            "again, then call exchange(...)")
    return parent


def renew_exchanged(holder: Holder, ensure_token: Callable[[Holder], Token]) -> Token:
    """A new token for an exchanged session: exchange the parent's (fresh) token again (RFC 8693 §2.1)."""
    parent = _parent_holder(holder)
    subject = ensure_token(parent)
    provider = holder.provider
    token: Token = provider.fetch_token(_grant(subject, holder.entry.origin or {}).request(provider.scope_separator))
    return token
