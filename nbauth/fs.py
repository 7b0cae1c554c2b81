"""Protected files straight into data tools: an fsspec HTTP filesystem that logs in by itself.

    fs = session.filesystem()                      # or nbauth.fs.SessionFileSystem(session)
    pd.read_csv(fs.open(url))
    pd.read_parquet(url, filesystem=fs)
    pq.read_table(url, filesystem=fs)
    pyarrow.dataset.dataset(fs.glob(prefix + "*.parquet"), filesystem=fs)   # HTTP has no directories
    pl.read_parquet(fs.open(url))
    dd.read_parquet(url, storage_options=session.storage_options())        # any fsspec caller

Every request the filesystem sends (each HEAD, each ranged GET inside one file) carries a Bearer
token fresh at that moment (RFC 6750 §2.1), renewed by the session's single-flight engine; a 401
gets one forced renewal and one retry (RFC 6750 §3.1), then an :class:`nbauth.AuthError` naming the
URL. Unlike fsspec's stock ``HTTPFileSystem``, whose ``info()`` turns every failure into
``FileNotFoundError``, auth failures surface as ``AuthError`` / ``LoginRequired``; only a real 404
is ``FileNotFoundError``. Requires ``pip install "nbauth[data]"`` (fsspec, aiohttp >= 3.12).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import email.utils
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import aiohttp
from fsspec.implementations.http import HTTPFileSystem, _file_info

from ._errors import AuthError
from ._fsauth import BearerMiddleware, normalise_prefixes

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["SessionFileSystem", "storage_options"]

#: Seconds a ``modified()`` answer is reused (DuckDB asks for every file several times per query).
MODIFIED_TTL = 10.0


def _with_auth(auth: BearerMiddleware, client_kwargs: dict[str, Any] | None) -> dict[str, Any]:
    merged = dict(client_kwargs or {})
    merged["middlewares"] = (auth, *tuple(merged.get("middlewares") or ()))
    return merged


def storage_options(session: Session, prefix: str | Iterable[str] | None = None, **options: Any) -> dict[str, Any]:
    """The fsspec options giving a stock HTTP filesystem the same per-request token (dask, ``fsspec.open``).

    The options hold the session (a pickle carries it, never a token). Each call makes a new
    middleware whose repr differs, so fsspec's instance cache never mixes two logins. One
    difference remains: the stock ``info()`` reports an auth failure as ``FileNotFoundError``
    (its ``__cause__`` is the nbauth error); pass ``filesystem=session.filesystem()`` where the
    tool takes one to get the ``AuthError`` itself.
    """
    auth = BearerMiddleware(session, normalise_prefixes(prefix))
    return {**options, "client_kwargs": _with_auth(auth, options.get("client_kwargs"))}


def status_error(url: str, status: int, reason: str) -> OSError:
    """The error for a data server's error answer (RFC 9110 §15.5, §15.6): what failed, and what to do."""
    if status >= 500:
        return OSError(
            f"{url}: the data server answered {status} {reason}: it failed, not the login; try again later, "
            "or tell the server's operators"
        )
    return OSError(f"{url}: the data server refused the request ({status} {reason})")


class SessionFileSystem(HTTPFileSystem):  # type: ignore[misc]
    """fsspec's ``HTTPFileSystem`` (glob, ranged reads, ``simplecache`` chaining) with nbauth's tokens.

    ``prefix`` (a URL or several) limits where the token goes: a URL outside raises
    :class:`nbauth.ConfigurationError` before anything is sent. Never cached by fsspec's
    instance cache (``cachable = False``): a new login always gets a new filesystem. The pickle
    holds the :class:`nbauth.Session`, never a token.
    """

    cachable = False
    protocol = ("https", "http")

    def __init__(self, session: Session, *, prefix: str | Iterable[str] | None = None, **kwargs: Any) -> None:
        self.auth = BearerMiddleware(session, normalise_prefixes(prefix))
        self._modified: dict[str, tuple[float, datetime.datetime]] = {}
        kwargs["client_kwargs"] = _with_auth(self.auth, kwargs.get("client_kwargs"))
        super().__init__(**kwargs)

    @property
    def session(self) -> Session:
        return self.auth.session

    def __repr__(self) -> str:
        where = f" under {', '.join(self.auth.prefixes)}" if self.auth.prefixes else ""
        return f"<nbauth.fs.SessionFileSystem of {self.session!r}{where}>"

    def __reduce__(self) -> tuple[Any, ...]:
        # fsspec keeps the constructor's own arguments in storage_options (without the middleware)
        options = {k: v for k, v in self.storage_options.items() if k not in ("session", "prefix")}
        return _rebuild, (self.session, self.auth.prefixes or None, options)

    async def _info(self, url: str, **kwargs: Any) -> dict[str, Any]:
        """HEAD (then GET) like fsspec, but an auth failure stays an ``AuthError``, a server error an ``OSError``
        and an unreachable server a ``ConnectionError``: only 404 / 410 are ``FileNotFoundError``.
        """
        info: dict[str, Any] = {}
        session = await self.set_session()
        for policy in ("head", "get"):
            try:
                info.update(
                    await _file_info(self.encode_url(url), size_policy=policy, session=session, **self.kwargs, **kwargs)
                )
            except AuthError:
                raise
            except aiohttp.ClientResponseError as exc:
                if exc.status in (404, 410):
                    raise FileNotFoundError(url) from exc
                if policy == "get":  # a server error is not "no such file" (RFC 9110 §15.6)
                    raise status_error(url, exc.status, exc.message) from exc
                continue
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError) as exc:
                if policy == "get":
                    why = type(exc).__name__
                    raise ConnectionError(f"{url}: the data server could not be reached ({why})") from exc
                continue
            except Exception as exc:
                if policy == "get":
                    raise FileNotFoundError(url) from exc
                continue
            if info.get("size") is not None:
                break
        return {"name": url, "size": None, **info, "type": "file"}

    def _raise_not_found_for_status(self, response: aiohttp.ClientResponse, url: str) -> None:
        """The check fsspec makes of every answer it reads (cat, get, listings): 404 / 410 -> FileNotFoundError,
        another error status an ``OSError`` that names it (never aiohttp's error, which keeps the headers).
        """
        if response.status in (404, 410):
            raise FileNotFoundError(url)
        if response.status >= 400:
            raise status_error(url, response.status, response.reason or "")

    async def _exists(self, path: str, strict: bool = False, **kwargs: Any) -> bool:
        """A HEAD (fsspec's stock one GETs the whole file); an auth failure raises instead of saying False."""
        try:
            await self._info(path, **kwargs)
        except FileNotFoundError:
            return False
        return True

    def modified(self, path: str) -> datetime.datetime:
        """The ``Last-Modified`` time of ``path`` (RFC 9110 §8.8.2); DuckDB's fsspec bridge asks for it.

        DuckDB asks many times per query: an answer is reused for ``MODIFIED_TTL`` seconds.
        """
        now = time.monotonic()
        known = self._modified.get(path)
        if known is not None and now - known[0] < MODIFIED_TTL:
            return known[1]
        when = datetime.datetime.fromtimestamp(0, tz=datetime.timezone.utc)
        stamp = self.info(path).get("Last-Modified")
        if stamp:
            with contextlib.suppress(TypeError, ValueError):
                when = email.utils.parsedate_to_datetime(stamp)
        if len(self._modified) > 4096:
            self._modified.clear()
        self._modified[path] = (now, when)
        return when


def _rebuild(session: Session, prefix: tuple[str, ...] | None, options: dict[str, Any]) -> SessionFileSystem:
    return SessionFileSystem(session, prefix=prefix, **options)
