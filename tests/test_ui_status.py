"""The status widget and its text version, the sessions table, frontend detection, and the UI's rules."""

from __future__ import annotations

import re
import subprocess
import sys
from typing import Any

import pytest
from ui.helpers import (  # noqa: F401 - fixtures
    assert_hidden,
    embedded_html,
    keycloak,
    secrets_of,
    sso_fixture,
    wait_until,
    widget_state,
    widgets_closed_fixture,
)

import nbauth
from nbauth import _clock, ui
from nbauth.ui import StatusReport, StatusWidget
from nbauth.ui._status import TICKER

SCOPE = "openid profile"


@pytest.fixture
def api(sso: nbauth.Keycloak) -> nbauth.Session:
    return sso.get_token_by_password("alice", "alice-password", SCOPE)


def test_shows_who_scopes_and_expiry(api: nbauth.Session) -> None:
    w = StatusWidget(api)
    assert "Signed in as alice (Alice Liddell)" in w._header.value
    assert "openid profile" in w._details.value and "public-client" in w._details.value
    assert re.search(r"Access token expires in 4 min \d\d s · renews itself when due", w._expiry.value)
    assert [b.description for b in (w._refresh, w._logout)] == ["Refresh", "Log out"]
    assert w in TICKER
    assert_hidden(widget_state() + embedded_html(w) + repr(w) + str(w._repr_mimebundle_()), *secrets_of(api))


def test_who_comes_from_userinfo_without_verified_claims(idp: Any) -> None:
    from nbauth.ui import DevicePanel

    unverified = keycloak(idp, jwks_url=None)  # no JWKS: the id_token's claims cannot be verified, so none
    panel = DevicePanel(unverified, SCOPE)
    panel.start()
    wait_until(lambda: panel.user_code, what="the code")
    idp.approve(panel.user_code)
    session = panel.wait()
    assert session.user is None and session.token is not None and not session.token.claims
    before = idp.stats().get("userinfo:200", 0)
    w = StatusWidget(session)
    assert "Signed in as alice (Alice Liddell)" in w._header.value
    assert idp.stats()["userinfo:200"] == before + 1


def test_the_countdown_ticks(api: nbauth.Session, monkeypatch: pytest.MonkeyPatch) -> None:
    w = StatusWidget(api)
    first = w._expiry.value
    wait_until(lambda: w._expiry.value != first, timeout=3, what="the ticker")  # the real one-second ticker
    now = _clock.now()
    monkeypatch.setattr(_clock, "now", lambda: now + 290)
    assert w.tick()
    assert re.search(r"expires in \d+ s · renews itself", w._expiry.value)
    monkeypatch.setattr(_clock, "now", lambda: now + 400)
    w.tick()
    assert "expired · renews on the next request" in w._expiry.value


def test_refresh_button_renews_the_token(api: nbauth.Session, idp: Any) -> None:
    w = StatusWidget(api)
    old = api.token.access_token if api.token else None
    w._refresh.click()
    assert api.token is not None and api.token.access_token != old
    assert "Access token renewed." in w._message.value
    assert not w._refresh.disabled and not w._logout.disabled
    assert idp.stats()["token:refresh_token:200"] == 1


def test_refresh_errors_are_shown_inside(api: nbauth.Session, idp: Any) -> None:
    w = StatusWidget(api)
    idp.reset()  # the provider forgot the grant
    w._refresh.click()
    assert "nbauth-error" in w._message.value and "can no longer be refreshed" in w._message.value
    assert not w._refresh.disabled  # back on in `finally`


def test_log_out_button(api: nbauth.Session, idp: Any) -> None:
    w = StatusWidget(api)
    w._logout.click()
    assert "Logged out of demo" in w._header.value
    assert w._refresh.disabled and w._logout.disabled
    assert w._buttons.layout.display == "none"  # no greyed buttons left on the card
    assert "expires" not in w._expiry.value and "expires" not in w.fallback_text()
    assert w not in TICKER
    assert len(nbauth.sessions()) == 0
    assert idp.stats().get("revocation:200", 0) >= 1


def test_a_logout_elsewhere_shows_on_the_next_tick(api: nbauth.Session) -> None:
    w = StatusWidget(api)
    api.logout()
    assert w.tick() is False
    assert "Logged out of demo" in w._header.value
    assert w._buttons.layout.display == "none"


def test_closed_widgets_stop_ticking(api: nbauth.Session) -> None:
    w = StatusWidget(api)
    w.close()
    assert w not in TICKER and w.tick() is False


def test_status_is_a_widget_with_a_frontend_and_text_without(
    api: nbauth.Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NBAUTH_UI", "widgets")
    assert isinstance(api.status(), StatusWidget)
    monkeypatch.setenv("NBAUTH_UI", "text")
    report = api.status()
    assert isinstance(report, StatusReport)
    lines = str(report).splitlines()
    assert lines[0] == "Signed in to demo as alice (Alice Liddell)"
    assert lines[1] == "Scopes: openid profile"
    assert lines[2].startswith("Access token expires in 4 min")
    page = report._repr_html_()
    assert "var(--jp-" in page and "alice" in page
    assert_hidden(repr(report) + page, *secrets_of(api))


def test_sessions_table_in_html_and_text(api: nbauth.Session) -> None:
    table = nbauth.sessions()
    assert "<table" in table._repr_html_() and "alice" in table._repr_html_()
    assert str(table).splitlines()[0].split()[:3] == ["id", "user", "issuer"]
    assert_hidden(table._repr_html_() + str(table), *secrets_of(api))


def test_has_frontend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBAUTH_UI", raising=False)
    assert ui.has_frontend() is False  # plain Python: no kernel
    monkeypatch.setenv("NBAUTH_UI", "widgets")
    assert ui.has_frontend() is True
    monkeypatch.setenv("NBAUTH_UI", "text")
    assert ui.has_frontend() is False


def test_has_frontend_follows_allow_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NBAUTH_UI", raising=False)

    class Kernel:
        _allow_stdin = True

    class Shell:
        kernel = Kernel()

    import IPython

    monkeypatch.setattr(IPython, "get_ipython", lambda: Shell())
    assert ui.has_frontend() is True  # JupyterLab, Notebook 7, VS Code
    Kernel._allow_stdin = False
    assert ui.has_frontend() is False  # nbclient, papermill, nbval


def test_importing_the_ui_package_does_not_load_widgets() -> None:
    code = (
        "import sys, nbauth.ui as ui; print([m for m in ('ipywidgets', 'segno', 'jupyter_ui_poll') "
        "if m in sys.modules]); ui.DevicePanel; print('ipywidgets' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split("\n")[:2] == ["[]", "True"]


def test_no_fixed_colours_in_the_style_sheet() -> None:
    from nbauth.ui import _style

    css = _style.CSS
    assert not re.findall(r"#[0-9a-fA-F]{3,8}\b|rgb\(|hsl\(", css)
    for name in ("--jp-ui-font-color1", "--jp-layout-color1", "--jp-brand-color1", "--jp-error-color1"):
        assert name in css
