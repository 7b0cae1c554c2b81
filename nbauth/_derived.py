"""Logins made from another token: RFC 8693 token exchange and JupyterHub's ``auth_state``.

Neither asks anyone: token exchange sends a parent session's access token as the
``subject_token`` (RFC 8693 §2.1); on a JupyterHub the hub hands over the user's tokens
(:mod:`nbauth._hub`). Both are recorded by the login pipeline (:func:`nbauth._login.record`) as
their own kinds, ``exchange`` and ``jupyterhub``: never the answer to another login
(``_reuse.REUSABLE``), and renewed from their source by :mod:`nbauth._refresh`
(:mod:`nbauth._exchanged`, :func:`nbauth._hub.renew_from_hub`), never by a refresh grant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import _exchanged, _hub
from ._errors import ConfigurationError, LoginRequired
from ._login import record
from ._reuse import Intent
from ._session import Session
from ._store import current_store

__all__ = ["exchange_session", "hub_login"]


def exchange_session(
    parent: Session,
    *,
    audience: str | None = None,
    scope: str | Sequence[str] | None = None,
    resource: str | None = None,
    name: str | None = None,
) -> Session:
    """A Session for a downstream API from ``parent``'s token (RFC 8693 §2.1), renewed from the parent."""
    if audience is None and resource is None:
        raise ConfigurationError(
            "exchange() needs audience= (the downstream API's name at the IdP) or resource= (its URI)"
        )
    provider = parent.provider
    scope_list = list(scope.split() if isinstance(scope, str) else scope) if scope is not None else None
    origin: dict[str, Any] = {
        "parent": parent.key.as_dict(),
        "audience": audience,
        "resource": resource,
        "scope": scope_list,
    }
    grant = _exchanged.token_exchange(parent.fresh_token(), origin)
    token = provider.fetch_token(grant.request(provider.scope_separator))
    target = resource or audience or ""
    # the target is part of the key: two exchanges for different APIs are different sessions
    key_scope = (f"exchange:{target}", *(scope_list or token.scope))
    intent = Intent(_exchanged.LOGIN, provider.client_id, username=parent.user, scope=key_scope)
    session = record(provider, intent, token)
    holder = session.holder
    store = current_store()
    with holder.lock, store.lock(holder.key.digest):
        holder.entry = holder.entry.replace(origin=origin, name=name or f"{parent.name}→{target}")
        store.write(holder.key.digest, holder.entry.to_json())
    return session


def hub_login(provider: Any, *, environ: Mapping[str, str] | None = None) -> Session:
    """A Session from the hub user's auth_state (no prompt, no token request); LoginRequired when none."""
    hub = _hub.hub_config(environ)
    if hub is None:
        raise LoginRequired(
            "not on a JupyterHub: JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN and JUPYTERHUB_USER are not all set"
        )
    token = _hub.hub_token(provider, hub)
    session = record(provider, Intent(_hub.LOGIN, provider.client_id, username=hub.user, scope=token.scope), token)
    _hub.fetched(session.key.digest)
    return session
