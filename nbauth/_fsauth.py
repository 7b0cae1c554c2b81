"""The Bearer middleware behind ``session.filesystem()`` and ``session.storage_options()``.

One aiohttp client middleware (aiohttp >= 3.12) sets ``Authorization: Bearer`` on EVERY request an
fsspec HTTP filesystem sends — each HEAD, each ranged GET inside one file — with a token fit to send
at that moment (RFC 6750 §2.1). The token comes from the session's single-flight engine
(``Session.fresh_token``); the event loop is left only when a renewal is due (the refresh is a
blocking ``requests`` call, so it runs in the loop's executor). A 401 whose challenge says the token
is bad (RFC 6750 §3.1) gets one forced renewal (``force=True, seen=<the token sent>``, so concurrent
readers share one refresh) and one retry; a second 401 or a 403 raises an :class:`nbauth.AuthError`
naming the URL. The token travels only to URLs under the allowed prefixes and never over plain
http to a non-loopback host (RFC 6750 §5.3); it never appears in a repr, a pickle or a message.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from ._errors import AuthError, ConfigurationError, LoginRequired
from ._secret import Secret
from ._tokens import TokenState
from ._transport import require_secure

if TYPE_CHECKING:
    from aiohttp import ClientRequest, ClientResponse

    from ._session import Session

__all__ = ["BearerMiddleware", "normalise_prefixes"]

_ids = itertools.count(1)


def normalise_prefixes(prefix: str | Iterable[str] | None) -> tuple[str, ...]:
    """The allowed URL prefixes, each checked for TLS (RFC 6750 §5.3); () means "any URL"."""
    if prefix is None:
        return ()
    items = (prefix,) if isinstance(prefix, str) else tuple(prefix)
    if not items:
        raise ConfigurationError("prefix must be a URL such as 'https://data.example.com/v1/', not empty")
    out = []
    for item in items:
        require_secure(item, "data URL prefix")
        scheme, _, rest = item.partition("://")
        host, slash, path = rest.partition("/")
        if not host:
            raise ConfigurationError(f"the prefix {item!r} has no host: give e.g. 'https://data.example.com/v1/'")
        out.append(f"{scheme.lower()}://{host.lower()}{slash}{path}")
    return tuple(out)


def _under(url: str, prefix: str) -> bool:
    """``url`` is ``prefix`` or below it, by whole path segments (``/data`` does not cover ``/database``)."""
    base = prefix if prefix.endswith("/") else prefix + "/"
    return url.startswith(base) or url == base.rstrip("/")


def _challenge_says_bad_token(response: ClientResponse) -> bool:
    """A 401 whose ``WWW-Authenticate`` names ``invalid_token`` or no error code (RFC 6750 §3.1)."""
    challenge = response.headers.get("WWW-Authenticate", "")
    return "error=" not in challenge or "invalid_token" in challenge


class BearerMiddleware:
    """``ClientSession(middlewares=(BearerMiddleware(session, prefixes),))``: a fresh token per request.

    Holds the :class:`nbauth.Session` (so a pickle carries the session handle) and never a token.
    Its repr names the session and a per-object number: fsspec's instance cache, which keys on
    the repr of the storage options, therefore never hands one login's filesystem to another.
    """

    def __init__(self, session: Session, prefixes: tuple[str, ...] = ()) -> None:
        token = session.token
        if token is not None and token.sender_constrained:
            raise ConfigurationError(
                f"the session {session.name!r} holds a DPoP-bound token: only nbauth's own requests can "
                "sign its proofs, so fsspec, pandas and DuckDB cannot use it. Log in without dpop=True for data "
                "reads, or read through session.get(...)"
            )
        self.session = session
        self.prefixes = prefixes
        self.number = next(_ids)

    def __repr__(self) -> str:
        where = f" for {', '.join(self.prefixes)}" if self.prefixes else ""
        return f"<nbauth bearer auth #{self.number} of session {self.session.name!r}{where}>"

    def __getstate__(self) -> dict[str, Any]:
        return {"session": self.session, "prefixes": self.prefixes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["session"], state["prefixes"])  # type: ignore[misc]

    # ---- policy
    def check_url(self, url: str) -> None:
        """Refuse a URL outside the allowed prefixes, or plain http to a non-loopback host."""
        require_secure(url, "data URL")
        if not self.prefixes:
            return
        scheme, _, rest = url.partition("://")
        host, slash, path = rest.partition("/")
        canonical = f"{scheme.lower()}://{host.lower()}{slash}{path}"
        if not any(_under(canonical, p) for p in self.prefixes):
            raise ConfigurationError(
                f"{url} is outside the URLs this filesystem sends the session {self.session.name!r}'s token to "
                f"({', '.join(self.prefixes)}): use a URL under that prefix, or make a filesystem for this API "
                "with session.filesystem(prefix=...)"
            )

    def _cached_token(self) -> str | None:
        """The session's token when it is fresh and the session alive: no I/O, no lock."""
        session = self.session
        token = session.token
        if not session.authorized or token is None:
            return None
        if token.state(session.provider.refresh_leeway) is not TokenState.FRESH:
            return None
        return token.access_token

    async def token(self, *, force: bool = False, seen: str | None = None) -> str:
        """A token to send now; a due renewal runs in the loop's executor (it blocks on ``requests``)."""
        if not force:
            cached = self._cached_token()
            if cached is not None:
                return cached
        loop = asyncio.get_running_loop()
        fresh = await loop.run_in_executor(None, lambda: self.session.fresh_token(force=force, seen=seen))
        return fresh.access_token

    async def _token_for(self, url: str, *, force: bool = False, seen: str | None = None) -> str:
        try:
            return await self.token(force=force, seen=seen)
        except LoginRequired as exc:
            raise LoginRequired(f"{exc.message} (while reading {url})", url=url, status=exc.status) from None

    # ---- the middleware
    async def __call__(
        self, request: ClientRequest, handler: Callable[[ClientRequest], Awaitable[ClientResponse]]
    ) -> ClientResponse:
        url = str(request.url)
        self.check_url(url)
        sent = await self._token_for(url)
        request.headers["Authorization"] = Secret(f"Bearer {sent}")  # aiohttp errors keep the headers
        response = await handler(request)
        if response.status == 401 and _challenge_says_bad_token(response):
            response.release()
            sent = await self._token_for(url, force=True, seen=sent)
            request.headers["Authorization"] = Secret(f"Bearer {sent}")  # aiohttp errors keep the headers
            response = await handler(request)
        if response.status in (401, 403):
            response.release()
            raise self._refused(url, response)
        return response

    def _refused(self, url: str, response: ClientResponse) -> AuthError:
        challenge = response.headers.get("WWW-Authenticate", "")
        name = self.session.name
        if response.status == 403 or "insufficient_scope" in challenge:
            return AuthError(
                f"{url} refused the session {name!r}'s token ({response.status}, insufficient scope or no "
                "access): log in with the scope / resource this data needs, or ask for access",
                url=url,
                status=response.status,
            )
        return AuthError(
            f"{url} refused the session {name!r}'s token twice (401), also a token renewed just now: the token "
            "is not for this server (check the login's resource / audience) or the server does not trust the "
            "issuer",
            url=url,
            status=401,
        )
