"""Run the notebooks under nbval (``pytest --nbval-lax notebooks/``) against loopback servers.

Started once per test session, on the first notebook: the demo IdP and the tour's other
servers (``tour_servers.py``). Every notebook kernel then starts with

- ``NBAUTH_DEMO_ISSUER`` and the tour's other ``NBAUTH_DEMO_*`` / ``NBAUTH_CONFIG`` variables;
- its own empty ``NBAUTH_CACHE_DIR`` (no notebook reuses another's login);
- ``NBAUTH_UI=widgets``: the real login widgets run, although nbval sends ``allow_stdin=False``;
- an IPython startup file that starts ``tests/ui/driver.py`` in the kernel: a thread that plays
  the user - approves device codes through the IdP's test admin API, fills the login form,
  walks the browser sign-in with the scripted browser.

These variables are set only while nbval starts a notebook's kernel, so tests running in the
same pytest session do not see them.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS = Path(__file__).resolve().parent
TESTS = NOTEBOOKS.parent / "tests"
for path in (TESTS, NOTEBOOKS):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

_servers: dict[str, Any] = {}

STARTUP = """\
import sys
sys.path.insert(0, {tests!r})
from ui import driver
driver.start({admin!r})
"""


def _start_servers() -> dict[str, str]:
    """The demo IdP and the tour's servers (once); their environment for the kernels."""
    if "env" in _servers:
        return dict(_servers["env"])
    workdir = Path(tempfile.mkdtemp(prefix="nbauth-nbval-"))
    _servers["workdir"] = workdir
    try:
        import tour_servers
    except ImportError:  # only the IdP (the tour's other servers are optional here)
        from idp.helpers import start_idp

        idp = start_idp({"IDP_DEVICE_INTERVAL": "1"}, workdir / "idp")
        _servers["stop"] = idp.stop
        env = {"NBAUTH_DEMO_ISSUER": idp.issuer}
    else:
        tour = tour_servers.start(workdir)
        _servers["stop"] = tour.stop
        env = dict(tour.env)
    from idp.helpers import IdP

    admin = IdP(env["NBAUTH_DEMO_ISSUER"]).admin_url
    ipython_dir = workdir / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True)
    (startup / "50-nbauth-test-driver.py").write_text(STARTUP.format(tests=str(TESTS), admin=admin))
    env.update(IPYTHONDIR=str(ipython_dir), NBAUTH_UI="widgets")
    _servers["env"] = env
    return dict(env)


def _notebook_kernel_pending(item: pytest.Item) -> bool:
    parent = item.parent
    return type(parent).__name__ == "IPyNbFile" and getattr(parent, "kernel", 1) is None


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    """Give the kernel nbval is about to start for a notebook its environment, then restore ours."""
    if not _notebook_kernel_pending(item):
        return (yield)
    env = _start_servers()
    cache = Path(tempfile.mkdtemp(prefix="nbauth-cache-", dir=_servers["workdir"]))
    cache.rmdir()  # nbauth creates it (0700)
    env["NBAUTH_CACHE_DIR"] = str(cache)
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        return (yield)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def pytest_unconfigure(config: pytest.Config) -> None:
    stop = _servers.pop("stop", None)
    if stop is not None:
        stop()
    workdir = _servers.pop("workdir", None)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)
