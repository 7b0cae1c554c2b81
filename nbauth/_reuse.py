"""The reuse decision: may this login be answered with an existing session? (design.md's rules).

An entry is reused only when all of these hold:

- the same issuer *and* the same secret-receiving endpoints (token, device, revocation,
  introspection, password-login URLs): a changed ``token_url`` never gets a user's refresh
  token or a keyring secret;
- the same RFC 8707 resources, and a DPoP-bound token when the provider asks for DPoP;
- the same client, and the same family of login: a client-credentials call never gets a
  user's session, and a user login never gets a service token;
- the same user, when the call names one;
- a call that carries a password or client secret only when those very credentials made the
  entry in this process (compared as keyed fingerprints held in memory, never written);
- the entry is alive: not logged out, and valid or renewable.
"""

from __future__ import annotations

from typing import Any

from ._entries import Entry, load_entries, resource_key
from ._record import Record
from ._registry import Holder, holders, put_holder
from ._scope import scope_key
from ._secret import Secret
from ._tokens import TokenState

__all__ = ["DERIVED_LOGINS", "USER_LOGINS", "Intent", "alive", "find_reusable", "matches", "same_routes"]

#: Logins made by a person; the others (client_credentials) are the client's own.
USER_LOGINS = frozenset({"password", "device_login", "browser_login", "authorization_code"})
#: Kinds a new login may be answered from an existing entry for.
REUSABLE = frozenset({"password", "client_credentials", "device_login", "browser_login"})
#: Sessions made from another token (RFC 8693 exchange) or handed over by JupyterHub: never the answer
#: to a new login (not in REUSABLE; each has its own login family), and alive while their source is.
DERIVED_LOGINS = frozenset({"exchange", "jupyterhub"})


class Intent(Record):
    """What a login asks for: its kind, client, user, scope and the proof of the credentials it carries.

    ``secret`` is a client_credentials grant's own client secret (memory only, for renewal).
    """

    __slots__ = ("client_id", "kind", "proof", "scope", "secret", "username")
    _hidden = frozenset({"proof", "secret"})
    kind: str
    client_id: str | None
    username: str | None
    scope: tuple[str, ...]
    proof: bytes | None
    secret: Secret | None

    def __init__(
        self,
        kind: str,
        client_id: str | None,
        username: str | None = None,
        scope: tuple[str, ...] = (),
        proof: bytes | None = None,
        secret: Secret | None = None,
    ) -> None:
        self._set(kind=kind, client_id=client_id, username=username, scope=tuple(scope), proof=proof, secret=secret)

    @property
    def family(self) -> str:
        return "user" if self.kind in USER_LOGINS else self.kind


def _family(login: str) -> str:
    return "user" if login in USER_LOGINS else login


def same_routes(entry: Entry, provider: Any) -> bool:
    """True when the entry was made with exactly the provider's secret-receiving endpoints."""
    routes: dict[str, str | None] = provider.routes()
    return all((entry.provider.get(attr) or None) == (url or None) for attr, url in routes.items())


def alive(entry: Entry, holder: Holder | None, provider: Any) -> bool:
    """Valid now, or renewable: a refresh token, or client credentials nbauth can repeat."""
    if holder is not None and holder.logged_out:
        return False
    token = entry.token
    if token.state() is not TokenState.EXPIRED or token.refreshable:
        return True
    if entry.login in DERIVED_LOGINS:  # renewed from the parent session / the hub, not by a refresh grant
        return True
    return (
        entry.login == "client_credentials"
        and provider is not None
        and bool(provider.client_secret or getattr(provider, "_private_key", None))
    )


def _matches(entry: Entry, provider: Any, intent: Intent, client_id: str) -> bool:
    key = entry.key
    wanted = (provider.issuer_key, client_id, scope_key(intent.scope), resource_key(provider.resource))
    if (key.issuer, key.client_id, key.scope, key.resource) != wanted:
        return False  # another API's token (RFC 8707 §2) is no answer either
    if provider.dpop and not entry.token.sender_constrained:
        return False  # dpop=True asks for a sender-constrained token (RFC 9449 §5): a Bearer one is no answer
    if _family(entry.login) != intent.family or not same_routes(entry, provider):
        return False
    return intent.username is None or intent.username in (entry.username, entry.token.user)


def matches(entry: Entry, provider: Any, intent: Intent) -> bool:
    """True when ``entry`` is of this provider, client, login family, user and scope (design.md's reuse rules)."""
    return _matches(entry, provider, intent, intent.client_id or provider.client_id or "")


def find_reusable(provider: Any, intent: Intent) -> Holder | None:
    """The holder of a session this login may be answered with, or None (then log in anew)."""
    if intent.kind not in REUSABLE:
        return None
    client = intent.client_id or provider.client_id or ""
    for holder in holders():
        if _matches(holder.entry, provider, intent, client) and alive(holder.entry, holder, provider):
            if intent.proof is not None and holder.proof != intent.proof:
                continue  # other credentials than those that made it: prove them with a token request
            return holder
    if intent.proof is not None:
        return None  # an entry only on disk cannot be matched to credentials (they are never stored)
    for entry in load_entries():
        if _matches(entry, provider, intent, client) and alive(entry, None, provider):
            return put_holder(Holder(entry, provider))
    return None
