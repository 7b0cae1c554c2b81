"""Task functions and the worker plugin of tests/test_dask.py (imported by the dask workers by name)."""

from __future__ import annotations

import os
import pickle
import tempfile
import time

from distributed.diagnostics.plugin import WorkerPlugin

import nbauth


class EmptyCache(WorkerPlugin):
    """Every worker process gets its own new, empty nbauth cache directory (it must never need one)."""

    name = "nbauth-empty-cache"

    def setup(self, worker):
        os.environ["NBAUTH_CACHE_DIR"] = tempfile.mkdtemp(prefix="nbauth-worker-")
        os.environ.pop("NBAUTH_CLIENT_SECRET", None)


def cache_files():
    """The files in this worker's nbauth cache directory."""
    directory = os.environ["NBAUTH_CACHE_DIR"]
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else []


def call(api, url, pause=0.0):
    """One request; the status code, or the error's class name and message."""
    if pause:
        time.sleep(pause)
    try:
        return api.get(url, timeout=20).status_code
    except nbauth.AuthError as exc:
        return f"{type(exc).__name__}: {exc}"


def call_blob(blob, url):
    return call(pickle.loads(blob), url)


def loop_until_error(api, url, seconds, pause=0.2):
    """Requests until one raises (or ``seconds`` pass): (wall-clock time of the error, error class, message, codes)."""
    if isinstance(api, bytes):
        api = pickle.loads(api)
    end = time.time() + seconds
    codes = []
    while time.time() < end:
        try:
            codes.append(api.get(url, timeout=20).status_code)
        except nbauth.AuthError as exc:
            return time.time(), type(exc).__name__, str(exc), codes
        time.sleep(pause)
    return None, None, None, codes


def token_kind(api):
    return type(api).__name__, repr(api)
