"""The device-code panel, driven in-process against the loopback IdP: every state, and the text fallback."""

from __future__ import annotations

import io
import re
import socket
import time
from typing import Any

import pytest
from ui.helpers import (  # noqa: F401 - fixtures
    assert_hidden,
    embedded_html,
    in_thread,
    keycloak,
    secrets_of,
    sso_fixture,
    wait_until,
    widget_state,
    widgets_closed_fixture,
)

import nbauth
from nbauth import _device
from nbauth.ui import DevicePanel, StatusWidget, interactive

SCOPE = "openid profile"


def waiting(panel: DevicePanel) -> DevicePanel:
    panel.start()
    wait_until(lambda: panel.state != "starting", what="the device code")
    return panel


def test_waiting_shows_link_code_copy_qr_countdown_and_cancel(sso: nbauth.Keycloak, idp: Any) -> None:
    panel = waiting(DevicePanel(sso, SCOPE))
    assert panel.state == "waiting"
    prompt = panel.prompt
    assert prompt is not None and panel.user_code == prompt.user_code
    steps = panel._steps.value
    # the verification URI as a link that opens a new tab, without leaking the notebook URL (RFC 8628 §3.3)
    assert f'href="{prompt.verification_uri_complete}"' in steps
    assert 'target="_blank"' in steps and 'rel="noopener noreferrer"' in steps
    assert f">{prompt.verification_uri}</a>" in steps
    # the user code, large and monospaced, with a Copy button carrying it
    assert f'<span class="nbauth-code" title="Click to select">{prompt.user_code}</span>' in steps
    assert f'data-code="{prompt.user_code}"' in steps and "navigator.clipboard.writeText" in steps
    # a QR code of verification_uri_complete, inline
    assert panel._qr.value.startswith("<svg") and "</svg>" in panel._qr.value
    assert re.search(r"expires in (9 min|10 min)", panel._countdown.value)
    assert panel._cancel.description == "Cancel" and not panel._cancel.disabled
    # the text version travels with the widget (frontends without widgets, the saved notebook)
    bundle = panel._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert prompt.user_code in bundle["text/plain"] and prompt.verification_uri in bundle["text/plain"]
    assert prompt.user_code in bundle["text/html"]
    assert "var(--jp-" in bundle["text/html"]
    panel.cancel()


def test_qr_code_encodes_the_complete_uri(sso: nbauth.Keycloak) -> None:
    from nbauth.ui._device_panel import qr_svg

    svg = qr_svg("http://127.0.0.1:1/realms/demo/device?user_code=ABCD-EFGH")
    assert svg.startswith("<svg") and 'fill="#fff"' in svg  # dark on light, whatever the theme
    assert qr_svg("x") != qr_svg("y")


def test_approved_turns_into_the_status_widget(sso: nbauth.Keycloak, idp: Any) -> None:
    panel = waiting(DevicePanel(sso, SCOPE))
    idp.approve(panel.user_code)
    session = panel.wait()
    assert panel.state == "approved"
    assert session.user == "alice"
    assert len(panel.children) == 1 and isinstance(panel.children[0], StatusWidget)
    status = panel.children[0]
    assert "Signed in as alice (Alice Liddell)" in status._header.value
    assert "openid profile" in status._details.value
    assert "Signed in as alice" in panel._repr_mimebundle_()["text/html"]
    assert nbauth.session("demo") is session
    assert_hidden(widget_state(), *secrets_of(session))
    assert_hidden(embedded_html(panel), *secrets_of(session))


def test_denied_says_so_and_raises_access_denied(sso: nbauth.Keycloak, idp: Any) -> None:
    panel = waiting(DevicePanel(sso, SCOPE))
    idp.deny(panel.user_code)
    with pytest.raises(nbauth.AccessDenied):
        panel.wait()
    assert panel.state == "denied"
    assert "denied" in panel.message and "Run the cell again" in panel.message
    assert "denied" in panel._message.value and "nbauth-warn" in panel._message.value
    assert panel._qr.comm is None  # the code, QR and Cancel are gone (closed widgets)
    assert "denied" in panel._repr_mimebundle_()["text/plain"]


def test_expired_says_so_and_raises_expired_token(idp: Any) -> None:
    short = keycloak(idp, "short-lived-client")  # its device code lives 4 s
    panel = waiting(DevicePanel(short, SCOPE))
    start = time.monotonic()
    with pytest.raises(nbauth.ExpiredToken):
        panel.wait()
    assert time.monotonic() - start < 8
    assert panel.state == "expired"
    assert "expired" in panel.message and "new code" in panel.message


def test_cancel_button_stops_at_once(sso: nbauth.Keycloak, idp: Any) -> None:
    panel = waiting(DevicePanel(sso, SCOPE))
    box = in_thread(panel.wait)
    start = time.monotonic()
    panel._cancel.click()
    box["thread"].join(5)
    assert isinstance(box.get("error"), nbauth.LoginCancelled)
    assert time.monotonic() - start < 1.5
    assert panel.state == "cancelled" and "cancelled" in panel.message
    panel._worker.join(3)  # the worker sleeps in slices of at most 1 s
    assert not panel._worker.is_alive()
    idp.approve(panel.user_code, check=False)
    time.sleep(1.2)
    assert "token:urn:ietf:params:oauth:grant-type:device_code:200" not in idp.stats()


def test_unreachable_provider_shows_the_error(idp: Any) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = nbauth.Keycloak(f"http://127.0.0.1:{port}", "demo", client_id="public-client", client_auth="none")
    panel = DevicePanel(dead, SCOPE)
    panel.start()
    with pytest.raises(nbauth.ProviderError):
        panel.wait()
    assert panel.state == "error"
    assert f"127.0.0.1:{port}" in panel.message and "nbauth-error" in panel._message.value


def test_the_device_code_never_reaches_a_widget(
    sso: nbauth.Keycloak, idp: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[str] = []
    real = _device.parse_device_response

    def spy(body: Any) -> Any:
        device_code, prompt = real(body)
        seen.append(device_code)
        return device_code, prompt

    monkeypatch.setattr(_device, "parse_device_response", spy)
    panel = waiting(DevicePanel(sso, SCOPE))
    assert seen
    assert_hidden(widget_state() + embedded_html(panel) + repr(panel) + str(panel._repr_mimebundle_()), seen[0])
    idp.approve(panel.user_code)
    session = panel.wait()
    assert_hidden(widget_state() + embedded_html(panel), seen[0], *secrets_of(session))


def test_interactive_blocks_until_approved_with_widgets(
    sso: nbauth.Keycloak, idp: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NBAUTH_UI", "widgets")
    from ipywidgets.widgets.widget import _instances

    def approve_when_shown() -> None:
        panel = wait_until(
            lambda: next((w for w in list(_instances.values()) if isinstance(w, DevicePanel) and w.user_code), None)
        )
        idp.approve(panel.user_code)

    helper = in_thread(approve_when_shown)
    session = sso.device_login(scope=SCOPE)
    helper["thread"].join(5)
    assert session.user == "alice"
    out = capsys.readouterr().out
    assert "enter the code" in out  # no notebook to draw on: the panel's text version was printed


def test_no_second_prompt_while_the_session_lives(
    sso: nbauth.Keycloak, idp: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    first = sso.get_token_by_password("alice", "alice-password", SCOPE)
    monkeypatch.setenv("NBAUTH_UI", "widgets")
    from ipywidgets.widgets.widget import _instances

    before = idp.stats()
    again = sso.device_login(scope=SCOPE)
    assert again is first
    out = capsys.readouterr().out
    expected = r"Using the cached session demo#\w{6} \(alice, expires in [45] min( \d+ s)?\); force=True logs in anew\n"
    assert re.fullmatch(expected, out)
    assert not [w for w in _instances.values() if isinstance(w, DevicePanel)]  # no widget at all
    assert idp.stats() == before  # and no request


def test_text_fallback_prints_url_and_code_and_waits(idp_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    auto = idp_factory(IDP_DEVICE_AUTO_APPROVE="alice", IDP_DEVICE_AUTO_APPROVE_DELAY=1)
    monkeypatch.setenv("NBAUTH_UI", "text")
    out = io.StringIO()
    session = interactive("device", keycloak(auto), scope=SCOPE, out=out)
    text = out.getvalue()
    assert re.search(r"open http://127\.0\.0\.1:\d+/realms/demo/device and enter the code [A-Z]{4}-[A-Z]{4}", text)
    assert "Logged in to demo as alice" in text
    assert session.user == "alice" and auto.stats().get("device_auto_approved") == 1


def test_text_fallback_never_waits_past_the_expiry(idp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBAUTH_UI", "text")
    start = time.monotonic()
    with pytest.raises(nbauth.ExpiredToken):
        interactive("device", keycloak(idp, "short-lived-client"), scope=SCOPE, out=io.StringIO())
    assert time.monotonic() - start < 8
