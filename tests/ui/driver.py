"""Plays the user inside a notebook kernel, for unattended runs of the notebooks (nbval).

notebooks/conftest.py puts an IPython startup file into each notebook kernel that calls
:func:`start`. A daemon thread then watches the live nbauth panels (ipywidgets' registry)
and answers each one once, as a person would:

- a device-code panel waiting for approval: approves its user code as alice through the
  IdP's test admin API (``POST /_admin/device/approve``);
- a login form: types alice's demo user name and password and clicks Log in;
- a browser sign-in panel: walks the sign-in page with the requests-only scripted browser
  (tests/idp/helpers.py ``browse``), which follows the redirect to the panel's loopback listener.

FOR TESTS ONLY (fixed demo credentials).
"""

from __future__ import annotations

import threading
import time
from typing import Any

import requests

USER = ("alice", "alice-password")
_started = threading.Event()


def start(admin_url: str) -> None:
    """Start the driver thread (once per kernel).

    Everything it uses is imported here, before the thread starts: imports racing the
    notebook's own imports on two threads are not worth debugging.
    """
    if _started.is_set():
        return
    _started.set()
    from idp.helpers import browse
    from ipywidgets.widgets.widget import _instances

    from nbauth.ui import BrowserPanel, DevicePanel, LoginForm

    kinds = (BrowserPanel, DevicePanel, LoginForm)
    threading.Thread(
        target=_run, args=(admin_url, _instances, kinds, browse), name="nbauth-test-driver", daemon=True
    ).start()


def _answer(widget: Any, admin_url: str, kinds: tuple[type, ...], browse: Any) -> bool:
    BrowserPanel, DevicePanel, LoginForm = kinds
    if getattr(widget, "state", None) != "waiting":
        return False
    if isinstance(widget, DevicePanel) and widget.user_code:
        requests.post(
            f"{admin_url}/device/approve", data={"user_code": widget.user_code, "username": USER[0]}, timeout=10
        ).raise_for_status()
        return True
    if isinstance(widget, LoginForm):
        widget._username.value = USER[0]
        widget._password.value = USER[1]  # what the frontend syncs on Enter / leaving the box
        widget._login.click()
        return True
    if isinstance(widget, BrowserPanel):
        browse(requests.Session(), widget.url, None, user=USER)
        return True
    return False


def _run(admin_url: str, instances: dict[str, Any], kinds: tuple[type, ...], browse: Any) -> None:
    done: set[int] = set()
    while True:
        time.sleep(0.2)
        for widget in list(instances.values()):
            if id(widget) in done:
                continue
            try:
                if _answer(widget, admin_url, kinds, browse):
                    done.add(id(widget))
            except Exception as exc:  # keep driving the other panels; the cell times out visibly
                print(f"[nbauth test driver] {type(widget).__name__}: {exc!r}", flush=True)
                done.add(id(widget))
