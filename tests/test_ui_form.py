"""The login form, driven in-process against the loopback IdP: submit, Enter, busy, errors, retry, secrets."""

from __future__ import annotations

import io
import time
from typing import Any

import pytest
from servers.faulty import html, no_answer
from ui.helpers import (  # noqa: F401 - fixtures
    assert_hidden,
    embedded_html,
    in_thread,
    secrets_of,
    sso_fixture,
    wait_until,
    widget_state,
    widgets_closed_fixture,
)

import nbauth
from nbauth.ui import LoginForm, StatusWidget, interactive

PASSWORD = "alice-password"
SCOPE = "openid profile"


def typed(form: LoginForm, user: str, password: str) -> None:
    """What the frontend syncs: the user name as typed, the password on Enter or when the box loses focus."""
    form._username.set_state({"value": user})
    form._password.set_state({"value": password})


def enter(widget: Any) -> None:
    """The frontend's Enter key in a text box (ipywidgets sends a custom "submit" message)."""
    widget._handle_custom_msg({"event": "submit"}, [])


def test_the_password_leaves_the_box_as_soon_as_it_arrives(sso: nbauth.Keycloak) -> None:
    form = LoginForm(sso, SCOPE)
    typed(form, "alice", PASSWORD)
    assert form._password.value == ""
    assert "entered" in form._password.placeholder
    assert form.state == "waiting"  # nothing sent yet
    assert PASSWORD not in widget_state()
    assert PASSWORD not in embedded_html(form)
    assert PASSWORD not in repr(form) and PASSWORD not in str(form._repr_mimebundle_())


def test_the_password_is_not_echoed_to_other_frontends(sso: nbauth.Keycloak) -> None:
    form = LoginForm(sso, SCOPE)
    sent: list[Any] = []
    form._password._send = lambda msg, buffers=None: sent.append(msg)
    form._password.set_state({"value": PASSWORD})
    assert sent  # the box was emptied on the frontend...
    assert PASSWORD not in str(sent)  # ...and the password was not echoed back (echo_update=False)
    assert form._password.trait_metadata("value", "echo_update") is False


def test_log_in_button_signs_in_and_shows_the_status(sso: nbauth.Keycloak) -> None:
    form = LoginForm(sso, SCOPE)
    typed(form, "alice", PASSWORD)
    form._login.click()
    session = form.wait()
    assert form.state == "approved" and session.user == "alice"
    assert isinstance(form.children[0], StatusWidget)
    assert "Signed in as alice" in form.children[0]._header.value
    assert form._password.comm is None  # the form is closed: it leaves the saved widget state
    state = widget_state()
    assert "alice" in state
    assert_hidden(state + embedded_html(form), PASSWORD, *secrets_of(session))


def test_enter_submits_even_before_the_password_arrives(sso: nbauth.Keycloak) -> None:
    form = LoginForm(sso, SCOPE)
    form._username.set_state({"value": "alice"})
    enter(form._password)  # browsers fire keypress (submit) before change (the value)
    assert form.state == "waiting"
    form._password.set_state({"value": PASSWORD})
    assert form.wait().user == "alice"


def test_enter_in_the_user_name_submits_an_entered_password(sso: nbauth.Keycloak) -> None:
    form = LoginForm(sso, SCOPE)
    typed(form, "alice", PASSWORD)
    enter(form._username)
    assert form.wait().user == "alice"


def test_enter_without_a_password_asks_for_it(sso: nbauth.Keycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    form = LoginForm(sso, SCOPE)
    form._username.set_state({"value": "alice"})
    enter(form._password)
    monkeypatch.setattr("nbauth.ui._login_form.SUBMIT_GRACE", 0.0)
    time.sleep(0.01)
    form.tick()
    assert form.message == "Enter your password." and form.state == "waiting"
    form._login.click()
    assert form.message == "Enter your password."


def test_wrong_password_is_shown_and_can_be_retried(sso: nbauth.Keycloak, idp: Any) -> None:
    form = LoginForm(sso, SCOPE)
    typed(form, "alice", "not-her-password")
    form._login.click()
    wait_until(lambda: form.state == "error", what="the error")
    assert form.message == "Wrong username or password."
    assert "Wrong username or password." in form._message.value and "nbauth-error" in form._message.value
    assert not (form._username.disabled or form._password.disabled or form._login.disabled)
    assert form._secret is None and form._password.value == ""  # a rejected password is not kept
    assert form._username.value == "alice"
    typed(form, "alice", PASSWORD)
    form._login.click()
    assert form.wait().user == "alice"
    assert idp.stats()["token:password:400"] == 1


def test_busy_while_the_request_runs_then_the_providers_url(faulty: Any) -> None:
    faulty.set("POST", "/token", no_answer(30))
    slow = nbauth.Provider(
        faulty.url + "/token", client_id="public-client", client_auth="none", timeout=1.5, name="slow"
    )
    form = LoginForm(slow, SCOPE)
    typed(form, "alice", PASSWORD)
    form._login.click()
    assert form.state == "busy"
    assert form._username.disabled and form._password.disabled and form._login.disabled
    assert "Logging in to slow as alice" in form._message.value and "nbauth-spin" in form._message.value
    form._login.click()  # a second click while busy sends nothing more
    wait_until(lambda: form.state == "error", timeout=15, what="the timeout")
    assert f"{faulty.url}/token" in form.message and "did not answer" in form.message
    assert not form._login.disabled  # buttons come back in `finally`
    assert len(faulty.requests) == 1


def test_provider_error_names_url_and_status(faulty: Any) -> None:
    faulty.set("POST", "/token", html(status=502))
    broken = nbauth.Provider(faulty.url + "/token", client_id="public-client", client_auth="none", name="broken")
    form = LoginForm(broken, SCOPE)
    typed(form, "alice", PASSWORD)
    form._login.click()
    wait_until(lambda: form.state == "error", what="the error")
    assert f"{faulty.url}/token" in form.message and "502" in form.message
    assert_hidden(form.message, PASSWORD)


def test_cancel_raises_login_cancelled(sso: nbauth.Keycloak) -> None:
    form = LoginForm(sso, SCOPE)
    box = in_thread(form.wait)
    form._cancel.click()
    box["thread"].join(5)
    assert isinstance(box.get("error"), nbauth.LoginCancelled)
    assert form.state == "cancelled" and form._password.comm is None


def test_nobody_logging_in_times_out(sso: nbauth.Keycloak) -> None:
    form = LoginForm(sso, SCOPE, timeout=0.3)
    with pytest.raises(nbauth.LoginRequired, match="within 1 min"):
        form.wait()
    assert form.state == "expired" and "Run the cell again" in form.message


def test_login_form_prefills_the_user_name(sso: nbauth.Keycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBAUTH_UI", "widgets")
    from ipywidgets.widgets.widget import _instances

    def fill() -> None:
        form = wait_until(lambda: next((w for w in list(_instances.values()) if isinstance(w, LoginForm)), None))
        assert form._username.value == "bob"
        form._password.set_state({"value": "bob-password"})
        enter(form._password)

    helper = in_thread(fill)
    session = sso.login_form(scope=SCOPE, username="bob")
    helper["thread"].join(5)
    assert "error" not in helper
    assert session.user == "bob"


def test_text_fallback_without_a_terminal_does_not_wait(sso: nbauth.Keycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBAUTH_UI", "text")
    monkeypatch.setattr("sys.stdin", io.StringIO())
    with pytest.raises(nbauth.LoginRequired, match="get_token_by_password"):
        interactive("password", sso, scope=SCOPE)


def test_unknown_options_are_refused(sso: nbauth.Keycloak) -> None:
    with pytest.raises(nbauth.ConfigurationError, match="takes no option 'pasword'"):
        sso.login_form(pasword="x")
    with pytest.raises(nbauth.ConfigurationError, match="timeout"):
        sso.login_form(timeout=-1)
