"""``nbauth.dask``: share a session with the workers of a dask cluster (``pip install "nbauth[dask]"``).

    import nbauth, nbauth.dask
    from distributed import Client
    client = Client(cluster)
    api = nbauth.session("analytics")
    client.map(lambda url: api.get(url).json(), urls)   # pickling api shares it with client's cluster

A pickled session is a handle without any token or secret; on the workers its requests carry
the access tokens this kernel renews, one renewal per expiry for the whole cluster (see
docs/scaling-out.md). :func:`share` is for when no client is current while pickling;
:func:`unshare` stops it (the workers' requests then raise ``nbauth.LoginRequired``).
"""

from __future__ import annotations

from typing import Any

from ._scaleout import share as _share
from ._scaleout import unshare as _unshare
from ._session import Session

__all__ = ["share", "unshare"]


def share(session: Session, client: Any = None) -> str:
    """Share ``session`` with ``client``'s cluster (default: the current ``distributed.Client``).

    Publishes the current access token at once (a worker's first request waits for nothing),
    then answers the workers' renewal requests; returns the channel name. Idempotent.
    """
    return _share(session, client)


def unshare(session: Session, client: Any = None) -> bool:
    """Stop sharing ``session`` with ``client``'s cluster (default: with every cluster)."""
    return _unshare(session, client)
