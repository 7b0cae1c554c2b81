"""Shared pieces of the in-process widget tests (tests/test_ui_*.py).

Import the fixtures into a test module to use them (``from ui.helpers import sso_fixture,
widgets_closed_fixture``): ``sso`` is the demo IdP's public client; ``widgets_closed`` is
autouse and closes every widget a test left open (stopping login workers and status tickers).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import nbauth


def keycloak(idp: Any, client_id: str = "public-client", **kwargs: Any) -> nbauth.Keycloak:
    origin, realm = idp.issuer.split("/realms/")
    return nbauth.Keycloak(origin, realm, client_id=client_id, client_auth="none", **kwargs)


@pytest.fixture(name="sso")
def sso_fixture(idp: Any) -> nbauth.Keycloak:
    """The demo IdP's public client, as the notebooks build it."""
    return keycloak(idp)


@pytest.fixture(name="widgets_closed", autouse=True)
def widgets_closed_fixture() -> Iterator[None]:
    yield
    import ipywidgets

    ipywidgets.Widget.close_all()


def wait_until(predicate: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def in_thread(fn: Callable[[], Any]) -> dict[str, Any]:
    """Run ``fn`` in a thread; the returned dict gets ``value`` or ``error``, and ``thread``."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    box["thread"] = threading.Thread(target=run, daemon=True)
    box["thread"].start()
    return box


def widget_state() -> str:
    """Everything ipywidgets would save for the open widgets (what Jupyter writes into the .ipynb)."""
    import ipywidgets

    return json.dumps(ipywidgets.Widget.get_manager_state(drop_defaults=False))


def embedded_html(widget: Any) -> str:
    """The page ipywidgets' embed_minimal_html writes for ``widget`` (state included)."""
    import io

    from ipywidgets.embed import dependency_state, embed_minimal_html

    out = io.StringIO()
    embed_minimal_html(out, views=[widget], state=dependency_state(widget), title="nbauth")
    return out.getvalue()


def secrets_of(session: nbauth.Session) -> list[str]:
    token = session.token
    assert token is not None
    return [s for s in (token.access_token, token.refresh_token, token.id_token) if s]


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret
        assert secret not in text
