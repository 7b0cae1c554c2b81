"""Renewal: a token fit to send now, renewed first when due, once for all threads and kernels.

:func:`ensure_token` is the single-flight engine every Session (and the httpx, fsspec and
dask adapters) goes through. Threads share the holder's lock; processes share the cache
entry's file lock and re-read the entry under it, so a refresh token another kernel already
rotated is never sent (RFC 9700 §4.14.2: replaying a rotated refresh token revokes the
grant). A transient failure keeps a still-valid token in use; a dead grant becomes
:class:`LoginRequired` naming the cell to run again.
"""

from __future__ import annotations

import logging

from . import _clock
from ._entries import read_entry
from ._errors import LoginRequired, OAuthError, ProviderError
from ._grants import ClientCredentials
from ._registry import Holder
from ._store import current_store
from ._tokens import Token, TokenState

__all__ = ["ensure_token", "relogin_hint", "save_entry"]

log = logging.getLogger("nbauth")
_RELOGIN = {
    "device_login": "run the cell with .device_login() again",
    "password": "run the cell with .login_form() or .get_token_by_password() again",
    "browser_login": "run the cell with .browser_login() again",
    "client_credentials": "run the cell with .get_token_by_client_credentials() again",
}


def relogin_hint(login: str) -> str:
    """What to run again after a login of that kind can no longer be renewed."""
    return _RELOGIN.get(login, "log in again")


def save_entry(holder: Holder, token: Token, *, store_generation: int | None = None) -> None:
    """Make ``token`` the holder's current token and write it to the cache (caller holds the locks)."""
    base = max(holder.entry.generation, store_generation or 0)
    holder.entry = holder.entry.replace(token=token, generation=base + 1, updated_at=_clock.now())
    current_store().write(holder.key.digest, holder.entry.to_json())


def _usable(token: Token, leeway: float | None, *, force: bool, seen: str | None) -> bool:
    if force:
        return seen is not None and token.access_token != seen
    return token.state(leeway) is TokenState.FRESH


def _renew(holder: Holder) -> Token:
    """Get a new token: refresh grant (RFC 6749 §6), or client_credentials again (§4.4.3)."""
    provider = holder.provider
    token = holder.token
    if holder.entry.provider.get("has_client_secret") and not (provider.client_secret or holder.client_secret):
        raise LoginRequired(
            f"the session {holder.entry.name!r} belongs to a confidential client whose secret is not in this "
            "kernel (nbauth never stores it): re-run the cell that creates the provider with its client_secret, "
            "set NBAUTH_CLIENT_ID and NBAUTH_CLIENT_SECRET, or store it with `nbauth secret`"
        )
    if token.refreshable:
        refreshed: Token = provider.refresh(token)
        return refreshed
    if holder.entry.login == "client_credentials":
        client_id = holder.key.client_id or None
        secret = holder.client_secret if holder.client_secret else None
        if client_id == provider.client_id:
            client_id, secret = None, None
        grant = ClientCredentials(client_id, secret, holder.key.scope.split() or None)
        fetched: Token = provider.fetch_token(grant.request(provider.scope_separator))
        return fetched
    return _renew_derived(holder)


def _renew_derived(holder: Holder) -> Token:
    """Sessions that are renewed from somewhere else than the token endpoint's refresh grant."""
    if holder.entry.login == "jupyterhub":  # ask the hub again, never refresh its token
        from ._hub import renew_from_hub

        return renew_from_hub(holder)
    if holder.entry.login == "exchange":  # exchange the parent's token again (RFC 8693 §2.1)
        from ._exchanged import renew_exchanged

        return renew_exchanged(holder, ensure_token)
    raise LoginRequired(
        f"the session {holder.entry.name!r} has expired and cannot be refreshed: {relogin_hint(holder.entry.login)}"
    )


def _check_alive(holder: Holder) -> None:
    if holder.logged_out:
        raise LoginRequired(f"the session {holder.entry.name!r} was logged out: {relogin_hint(holder.entry.login)}")


def ensure_token(holder: Holder, *, force: bool = False, seen: str | None = None) -> Token:
    """A token fit to send now; renews it first when due. Single flight across threads and processes.

    ``force`` renews even a fresh token (after a 401, RFC 6750 §3.1); ``seen`` is the token the
    caller used, so a caller that lost the race takes the winner's token instead of renewing
    again. A logged-out session raises :class:`LoginRequired` before anything is sent.
    """
    _check_alive(holder)
    leeway = holder.provider.refresh_leeway if holder.provider is not None else None
    token = holder.token
    if not force and token.state(leeway) is TokenState.FRESH:
        return token
    with holder.lock:
        _check_alive(holder)
        token = holder.token
        if _usable(token, leeway, force=force, seen=seen):
            return token
        if not force and holder.retry_at > _clock.monotonic() and token.state(leeway) is not TokenState.EXPIRED:
            return token  # a recent renewal failed transiently: keep using the valid token for now
        return _renew_locked(holder, token, leeway, force=force, seen=seen)


def _renew_locked(holder: Holder, token: Token, leeway: float | None, *, force: bool, seen: str | None) -> Token:
    store = current_store()
    import filelock  # lazy; the same module the store locks with

    try:
        with store.lock(holder.key.digest) as locked:
            disk = read_entry(store, holder.key) if locked else None
            if disk is not None and disk.generation > holder.entry.generation:
                holder.entry = disk.replace(name=holder.entry.name)  # another kernel renewed it
                token = holder.token
                if _usable(token, leeway, force=force, seen=seen):
                    return token
            return _renew_and_save(
                holder, token, leeway, force=force, store_generation=disk.generation if disk else None
            )
    except filelock.Timeout:
        if token.state(leeway) is not TokenState.EXPIRED:
            return token
        raise ProviderError(
            f"another process has held the cache lock of {holder.entry.name!r} for over a minute; try again"
        ) from None


def _dead_grant(holder: Holder, token: Token, exc: OAuthError, *, fatal: bool, store_generation: int | None) -> Token:
    """The refresh token was refused (revoked, expired, or a rotated one replayed): forget it."""
    save_entry(holder, token.replace(refresh_token=None), store_generation=store_generation)
    log.info("nbauth: the refresh token of %r was rejected (%s)", holder.entry.name, exc.error)
    if fatal:
        raise LoginRequired(
            f"the session {holder.entry.name!r} can no longer be refreshed (the provider answered "
            f"{exc.error}: revoked, expired, or logged out elsewhere): {relogin_hint(holder.entry.login)}"
        ) from None
    return token


def _renew_and_save(
    holder: Holder, token: Token, leeway: float | None, *, force: bool, store_generation: int | None
) -> Token:
    fatal = force or token.state(leeway) is TokenState.EXPIRED
    try:
        new = _renew(holder)
    except LoginRequired:
        if fatal:
            raise
        return token
    except OAuthError as exc:
        if exc.error in ("invalid_grant", "invalid_token") or exc.code == "invalid_grant":
            return _dead_grant(holder, token, exc, fatal=fatal, store_generation=store_generation)
        raise
    except ProviderError as exc:
        holder.retry_at = _clock.monotonic() + min(max(exc.retry_after or 5.0, 1.0), 120.0)
        if fatal:
            raise
        log.info("nbauth: renewal of %r failed (%s); the current token stays in use", holder.entry.name, exc.message)
        return token
    holder.retry_at = 0.0
    save_entry(holder, new, store_generation=store_generation)
    log.info(
        "nbauth: renewed the token of %r (expires in %s s)",
        holder.entry.name,
        "?" if new.expires_in is None else f"{new.expires_in:.0f}",
    )
    return new
