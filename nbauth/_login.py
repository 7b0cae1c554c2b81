"""The login pipeline: every way in passes the same three steps.

1. **Decide reuse** (:mod:`nbauth._reuse`): may an existing entry answer this login?
2. **Obtain a token**: a grant request (:meth:`Exchange.fetch_token`), or an interactive
   driver (:mod:`nbauth._drivers`: device polling, the browser attempt) that the ui feeds.
3. **Record it** (:func:`record`): one cache event - key, entry, holder, file - that yields
   the :class:`Session`.

``provider.get_token*``, ``device_login``, ``login_form``, ``browser_login``, profiles, the
CLI and restored entries all come through here; the ui only draws and collects input.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._entries import CacheKey, Entry, read_entry
from ._errors import LoginCancelled
from ._grants import DEVICE_CODE_GRANT, TokenRequest
from ._refresh import save_entry
from ._registry import Holder, credential_proof, put_holder
from ._reuse import Intent, find_reusable
from ._scope import Scope, scope_items
from ._session import Session
from ._store import current_store
from ._tokens import Token

if TYPE_CHECKING:
    from ._device import DevicePrompt
    from ._drivers import BrowserAttempt

__all__ = ["LOGIN_KIND", "device_login", "grant_login", "interactive", "login", "record", "session_of"]

#: The interactive logins and the kind of cache entry each makes.
LOGIN_KIND = {"device": "device_login", "password": "password", "browser": "browser_login"}

_KIND_BY_GRANT = {
    "password": "password",
    "client_credentials": "client_credentials",
    "authorization_code": "authorization_code",
    "refresh_token": "refresh_token",
    DEVICE_CODE_GRANT: "device_login",
}


def session_of(holder: Holder) -> Session:
    """The one Session object of a holder in this kernel."""
    if holder.session is None:
        holder.session = Session(holder)
    session: Session = holder.session
    return session


def _adopt(holder: Holder, provider: Any, intent: Intent) -> Session:
    """Answer a login with an existing entry: the caller's provider object (it holds the current secret
    and settings) renews it from now on, and the session answers to the caller's name.
    """
    holder.provider = provider
    if intent.secret:
        holder.client_secret = intent.secret
    if holder.entry.name != provider.name:
        with holder.lock, current_store().lock(holder.key.digest):
            holder.entry = holder.entry.replace(name=provider.name)
            save_entry(holder, holder.token)
    return session_of(holder)


def _user_of(token: Token, intent: Intent) -> str:
    """Who the entry belongs to: the verified ``sub``, the login's username, else a fresh anonymous id
    (so two people's logins without ``openid`` never replace each other's entry).
    """
    sub = token.claims.get("sub")
    if isinstance(sub, str) and sub:
        return sub
    if intent.username:
        return intent.username
    return "" if intent.family != "user" else f"~{secrets.token_hex(4)}"


def record(provider: Any, intent: Intent, token: Token) -> Session:
    """Step 3: store a fresh login under its key as one cache event and return its Session."""
    key = CacheKey.make(
        provider.issuer_key,
        intent.client_id or provider.client_id,
        _user_of(token, intent),
        intent.scope,
        getattr(provider, "resource", ()),
    )
    entry = Entry(key, provider.name, provider.config(), token, intent.kind, intent.username or token.user)
    holder = put_holder(Holder(entry, provider, intent.secret, intent.proof))
    store = current_store()
    with holder.lock, store.lock(key.digest) as locked:
        disk = read_entry(store, key) if locked else None
        holder.entry = entry
        holder.logged_out = False
        holder.proof = intent.proof
        save_entry(holder, token, store_generation=disk.generation if disk else None)
    return session_of(holder)


def login(provider: Any, intent: Intent, obtain: Callable[[], Token], *, force: bool = False) -> Session:
    """The pipeline: reuse (unless ``force``), else obtain a token and record it."""
    if not force:
        holder = find_reusable(provider, intent)
        if holder is not None:
            return _adopt(holder, provider, intent)
    return record(provider, intent, obtain())


def _intent_of(provider: Any, request: TokenRequest) -> Intent:
    # a request to an endpoint of its own is a custom login: never answered from another's entry
    kind = "custom" if request.endpoint else _KIND_BY_GRANT.get(request.params.get("grant_type", ""), "custom")
    client_id = request.client_id or provider.client_id
    proof = None
    if kind == "password":
        proof = credential_proof(request.params.get("username"), request.params.get("password"))
    elif kind == "client_credentials":
        proof = credential_proof(client_id, request.client_secret or provider.client_secret)
    return Intent(kind, client_id, request.username, request.scope, proof, request.client_secret)


def grant_login(provider: Any, request: TokenRequest, *, force: bool) -> Session:
    """A programmatic login (``provider.get_token*``) through the pipeline."""
    intent = _intent_of(provider, request)
    return login(provider, intent, lambda: provider.fetch_token(request, retry_unavailable=True), force=force)


def device_login(
    provider: Any,
    scope: Scope,
    *,
    on_prompt: Callable[[DevicePrompt], None],
    cancelled: Callable[[], bool] | None = None,
) -> Session:
    """Steps 2-3 of a device login (RFC 8628): the driver polls, the ui shows the prompt."""
    requested = scope if scope is not None else provider.scope
    from ._drivers import run_device_flow  # the interactive drivers load when a login starts

    token = run_device_flow(provider, requested, on_prompt=on_prompt, cancelled=cancelled)
    if cancelled is not None and cancelled():
        raise LoginCancelled("the login was cancelled")  # approved too late: the user gave up on this code
    return record(provider, Intent("device_login", provider.client_id, scope=scope_items(requested)), token)


def browser_login(attempt: BrowserAttempt, code: str) -> Session:
    """Steps 2-3 of a browser sign-in: redeem the code (RFC 7636 §4.5) and record the session."""
    token = attempt.redeem(code)
    provider = attempt.provider
    return record(provider, Intent("browser_login", provider.client_id, scope=scope_items(attempt.requested)), token)


def reusable(kind: str, provider: Any, scope: Scope, username: str | None = None) -> Session | None:
    """Step 1 for an interactive login: the session that answers it, or None."""
    requested = scope if scope is not None else provider.scope
    intent = Intent(kind, provider.client_id, username, scope_items(requested))
    holder = find_reusable(provider, intent)
    return _adopt(holder, provider, intent) if holder is not None else None


def interactive(kind: str, provider: Any, scope: Scope, *, force: bool, options: dict[str, Any]) -> Session:
    """An interactive login: reuse (one line says so), else the ui draws the login and feeds the driver."""
    __tracebackhide__ = True
    from . import ui  # the one upward step the layers allow: drawing a widget

    resource = options.pop("resource", None)
    if resource is not None:  # a token for that API (RFC 8707 §2), kept for the session's refreshes
        provider = provider.for_resource(resource)
    ui.check_options(kind, options)
    if not force:
        reused = reusable(LOGIN_KIND[kind], provider, scope, options.get("username"))
        if reused is not None:
            print(
                f"Using the cached session {reused.id} ({reused.user or 'no user name'}, "
                f"{reused.expiry_text()}); force=True logs in anew",
                flush=True,
            )
            return reused
    return ui.interactive(kind, provider, scope=scope, **options)
