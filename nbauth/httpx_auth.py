"""httpx support (``pip install 'nbauth[httpx]'``): an ``httpx.Auth`` backed by an nbauth session.

    import httpx, nbauth
    from nbauth.httpx_auth import SessionAuth

    auth = SessionAuth("analytics")            # or SessionAuth(session), SessionAuth() for the newest
    with httpx.Client(auth=auth) as client:
        client.get("https://data.example.com/v1/sales")
    async with httpx.AsyncClient(auth=auth) as client:
        await client.get("https://data.example.com/v1/sales")

The token comes from the same in-kernel holder and cache as the ``requests`` session, so
httpx clients, ``requests`` calls and ``nbauth token`` share one token and one single-flight
refresh (threads and processes). A token due for renewal is refreshed before the request; a
``401`` with ``error="invalid_token"`` (RFC 6750 §3.1) gets one forced refresh and one retry
when the request body can be replayed. Async clients run a needed refresh in a worker thread
(``anyio.to_thread``), so the event loop never blocks on the token endpoint.

This is the only module of nbauth that imports httpx.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Generator

import httpx

from ._bearer import _check_origin
from ._lookup import session as find_session
from ._session import Session
from ._tokens import Token, TokenState

__all__ = ["SessionAuth"]


def invalid_token(response: httpx.Response) -> bool:
    """A 401 whose challenge says the token is bad, or names no error (RFC 6750 §3.1)."""
    if response.status_code != 401:
        return False
    challenge = response.headers.get("WWW-Authenticate", "")
    return "error=" not in challenge or "invalid_token" in challenge


def replayable(request: httpx.Request) -> bool:
    """True when the body is in memory (bytes, form, JSON), so the request can be sent again."""
    return isinstance(request.stream, httpx.ByteStream)


class SessionAuth(httpx.Auth):
    """Bearer authentication (RFC 6750 §2.1) from an :class:`nbauth.Session`.

    ``session``: a Session, a session name (``nbauth.session(name)``: a live or cached
    session, :class:`nbauth.LoginRequired` when there is none), or None for the newest.
    """

    def __init__(self, session: Session | str | None = None) -> None:
        self.session = session if isinstance(session, Session) else find_session(session)

    def __repr__(self) -> str:
        return f"<nbauth SessionAuth {self.session.name!r}>"

    def _fresh(self) -> Token | None:
        """The current token when no renewal is due (no I/O, no lock)."""
        session = self.session
        token = session.entry.token
        leeway = session.provider.refresh_leeway if session.provider is not None else None
        return token if token.state(leeway) is TokenState.FRESH and not session.logged_out else None

    def token(self, *, force: bool = False, seen: str | None = None) -> Token:
        """A token fit to send, through the session layer's single-flight renewal."""
        return self.session.fresh_token(force=force, seen=seen)

    async def atoken(self, *, force: bool = False, seen: str | None = None) -> Token:
        """:meth:`token` for async clients: renewal runs in a worker thread."""
        if not force:
            fresh = self._fresh()
            if fresh is not None:
                return fresh
        import anyio.to_thread  # httpx depends on anyio; works under asyncio and trio

        call = functools.partial(self.session.fresh_token, force=force, seen=seen)
        return await anyio.to_thread.run_sync(call)

    @staticmethod
    def _authorize(request: httpx.Request, token: Token) -> None:
        _check_origin(str(request.url), None)  # a token only goes over https, or http on loopback
        from ._dpop import api_headers  # Bearer, or DPoP + a proof for this request (RFC 9449 §7.1)

        request.headers.update(api_headers(token, request.method, str(request.url)))

    @staticmethod
    def _wants_nonce(token: Token, request: httpx.Request, response: httpx.Response) -> bool:
        """The API asked for a DPoP nonce (RFC 9449 §9) and the request can be sent again with one."""
        if token.dpop_key is None or not replayable(request):
            return False
        from ._dpop import resource_nonce_challenge  # remembers the nonce for the retry's proof

        return resource_nonce_challenge(str(request.url), response.status_code, response.headers)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self.token()
        self._authorize(request, token)
        response = yield request
        if self._wants_nonce(token, request, response):  # once: a new proof carrying the nonce
            self._authorize(request, token)
            response = yield request
        if invalid_token(response) and replayable(request):
            self._authorize(request, self.token(force=True, seen=token.access_token))
            yield request

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        token = await self.atoken()
        self._authorize(request, token)
        response = yield request
        if self._wants_nonce(token, request, response):
            self._authorize(request, token)
            response = yield request
        if invalid_token(response) and replayable(request):
            self._authorize(request, await self.atoken(force=True, seen=token.access_token))
            yield request
