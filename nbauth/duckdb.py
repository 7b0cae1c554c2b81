"""DuckDB reads protected files through nbauth: ``nbauth.duckdb.attach(con, session, prefix)``.

    import duckdb, nbauth.duckdb
    con = duckdb.connect()
    nbauth.duckdb.attach(con, session, "https://data.example.com/v1/")
    con.sql("SELECT count(*) FROM read_parquet('https://data.example.com/v1/sales/*.parquet')")

DuckDB's fsspec bridge (``DuckDBPyConnection.register_filesystem``) sends every http(s) read of
that connection through an :class:`nbauth.fs.SessionFileSystem` limited to ``prefix``: each ranged
read carries a token fresh at that moment (RFC 6750 §2.1), so a query running for several token
lifetimes succeeds, and the token goes to no URL outside the prefix (those raise a
:class:`nbauth.ConfigurationError` before anything is sent). No DuckDB secret ever holds the
token: a ``CREATE OR REPLACE SECRET`` does not reach a running query and ``duckdb_secrets()``
shows bearer tokens unredacted. Nothing is persisted: the registration lives as long as the
connection. The bridge needs ``modified()`` and no read-ahead cache (DuckDB does its own
buffering), which ``attach`` sets up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from .fs import SessionFileSystem

if TYPE_CHECKING:
    from ._session import Session

__all__ = ["attach", "detach"]


def attach(connection: Any, session: Session, prefix: str | Iterable[str], **options: Any) -> SessionFileSystem:
    """Let ``connection`` read URLs under ``prefix`` with ``session``'s tokens; returns the filesystem.

    ``prefix`` is required (a URL such as ``"https://data.example.com/v1/"``, or several), so a
    query naming another host never receives the token. ``options`` go to the filesystem
    (e.g. ``block_size``). Call :func:`detach` (or close the connection) to stop.
    """
    if not prefix:
        raise ConfigurationError(
            "nbauth.duckdb.attach needs the prefix of the URLs the token may go to, "
            "e.g. attach(con, session, 'https://data.example.com/v1/')"
        )
    if not hasattr(connection, "register_filesystem"):
        raise ConfigurationError(
            f"attach() needs a duckdb connection (duckdb.connect()), got {type(connection).__name__}"
        )
    options.setdefault("cache_type", "none")
    fs = SessionFileSystem(session, prefix=prefix, **options)
    detach(connection)
    connection.register_filesystem(fs)
    return fs


def detach(connection: Any) -> None:
    """Undo :func:`attach` on ``connection`` (no-op when nothing is attached)."""
    registered = set(connection.list_filesystems())
    for name in SessionFileSystem.protocol:
        if name in registered:
            connection.unregister_filesystem(name)
