"""Browser sign-in (authorization code + PKCE, loopback redirect), in-process against the loopback IdP.

The user's browser is the requests-only scripted browser of tests/idp/helpers.py.
"""

from __future__ import annotations

import io
import re
import time
import urllib.parse
from typing import Any

import jwt
import pytest
import requests
from idp.helpers import browse
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
from nbauth.ui import BrowserPanel, StatusWidget, interactive

SCOPE = "openid profile"


def redirect_of(panel: BrowserPanel, user: tuple[str, str] = ("alice", "alice-password")) -> str:
    """Sign in on the provider's page and return the redirect address, without following it."""
    location, _ = browse(requests.Session(), panel.url, panel.attempt.redirect_uri, user=user)
    assert location is not None
    return location


def test_the_authorization_request(sso: nbauth.Keycloak) -> None:
    panel = BrowserPanel(sso, SCOPE)
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(panel.url).query))
    assert query["response_type"] == "code" and query["client_id"] == "public-client"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43  # RFC 7636 §4.2
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32  # OIDC Core §3.1.2.1 with openid
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/callback", query["redirect_uri"])  # RFC 8252 §7.3
    assert query["redirect_uri"] == panel.attempt.redirect_uri and panel.attempt.require_iss
    assert panel.attempt._verifier not in panel.url and panel.attempt._verifier not in repr(panel.attempt)
    open_link = panel._open.value
    assert 'class="nbauth-open"' in open_link and 'target="_blank"' in open_link
    assert urllib.parse.quote(query["state"]) in open_link or query["state"] in open_link
    panel.cancel()


def test_no_nonce_without_openid(sso: nbauth.Keycloak) -> None:
    panel = BrowserPanel(sso, "profile")
    assert "nonce=" not in panel.url and panel.attempt.nonce is None
    panel.cancel()


def test_loopback_redirect_signs_in(sso: nbauth.Keycloak) -> None:
    panel = BrowserPanel(sso, SCOPE)
    panel.start()
    assert "Waiting for the browser to come back to http://127.0.0.1:" in panel._waiting.value
    _, last = browse(requests.Session(), panel.url, None)  # follows the redirect to the listener
    assert last.status_code == 200 and "You can close this tab" in last.text
    session = panel.wait()
    assert panel.state == "approved" and session.user == "alice"
    assert isinstance(panel.children[0], StatusWidget)
    assert_hidden(widget_state() + embedded_html(panel), *secrets_of(session))
    with pytest.raises(requests.ConnectionError):  # the listener is closed once done
        requests.get(panel.attempt.redirect_uri, timeout=2)


def test_a_resource_is_named_in_the_authorization_request_and_kept(sso: nbauth.Keycloak) -> None:
    """RFC 8707 §2.1: the resource goes in the authorization request; the token is for it (§2.2)."""
    panel = BrowserPanel(sso.for_resource("urn:demo:api"), "openid api:read")
    query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(panel.url).query))
    assert query["resource"] == "urn:demo:api"
    panel.start()
    browse(requests.Session(), panel.url, None)
    session = panel.wait()
    assert jwt.decode(session.token.access_token, options={"verify_signature": False})["aud"] == "urn:demo:api"
    assert session.key.resource == "urn:demo:api" and sso.resource == ()


def test_pasted_redirect_signs_in_and_leaves_the_box(sso: nbauth.Keycloak) -> None:
    panel = BrowserPanel(sso, SCOPE)
    panel.start()
    location = redirect_of(panel)
    panel._paste.set_state({"value": location})
    assert panel._paste.value == ""  # the one-time code does not rest in the widget state
    session = panel.wait()
    assert session.user == "alice"
    code = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))["code"]
    assert_hidden(widget_state(), code)


def test_a_wrong_paste_is_reported_and_can_be_retried(sso: nbauth.Keycloak, idp: Any) -> None:
    panel = BrowserPanel(sso, SCOPE)
    panel.start()
    other = BrowserPanel(sso, SCOPE)  # a stale tab of another attempt: another state
    stale = redirect_of(other)
    panel._paste.set_state({"value": stale})
    wait_until(lambda: panel.state == "error", what="the error")
    assert "state" in panel.message and "nbauth-error" in panel._message.value
    panel._paste.set_state({"value": "not an address"})
    wait_until(lambda: "whole address" in panel.message, what="the second error")
    panel._paste.set_state({"value": redirect_of(panel)})
    assert panel.wait().user == "alice"
    other.cancel()


def test_missing_iss_is_refused(sso: nbauth.Keycloak) -> None:
    panel = BrowserPanel(sso, SCOPE)
    panel.start()
    location = redirect_of(panel)
    without_iss = re.sub(r"[&?]iss=[^&]*", "", location)
    assert "iss=" in location and "iss=" not in without_iss
    panel._paste.set_state({"value": without_iss})
    wait_until(lambda: panel.state == "error", what="the error")
    assert "mix-up" in panel.message
    panel.cancel()


def test_cancel_on_the_providers_page_is_access_denied(sso: nbauth.Keycloak) -> None:
    panel = BrowserPanel(sso, SCOPE)
    panel.start()
    browse(requests.Session(), panel.url, None, abort=True)
    with pytest.raises(nbauth.AccessDenied):
        panel.wait()
    assert panel.state == "denied" and "cancelled or denied" in panel.message


def test_the_listener_ignores_other_attempts(sso: nbauth.Keycloak) -> None:
    panel = BrowserPanel(sso, SCOPE)
    panel.start()
    r = requests.get(panel.attempt.redirect_uri, params={"state": "forged", "code": "x"}, timeout=5)
    assert r.status_code == 400 and "another sign-in attempt" in r.text
    assert requests.get(panel.attempt.redirect_uri.replace("/callback", "/favicon.ico"), timeout=5).status_code == 404
    time.sleep(0.5)
    assert panel.state == "waiting"
    panel.cancel()


def test_cancel_and_timeout(sso: nbauth.Keycloak) -> None:
    panel = BrowserPanel(sso, SCOPE)
    panel.start()
    box = in_thread(panel.wait)
    panel._cancel.click()
    box["thread"].join(5)
    assert isinstance(box.get("error"), nbauth.LoginCancelled)
    with pytest.raises(requests.ConnectionError):
        requests.get(panel.attempt.redirect_uri, timeout=2)
    late = BrowserPanel(sso, SCOPE, timeout=0.3)
    late.start()
    with pytest.raises(nbauth.LoginRequired, match="within 1 min"):
        late.wait()
    assert late.state == "expired"


def test_without_an_authorization_endpoint(idp: Any) -> None:
    bare = nbauth.Provider(idp.endpoint("token_endpoint"), client_id="public-client", client_auth="none")
    with pytest.raises(nbauth.ConfigurationError, match="authorization_url"):
        BrowserPanel(bare, SCOPE)


def test_text_fallback_prints_the_address_and_waits(sso: nbauth.Keycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBAUTH_UI", "text")
    monkeypatch.delenv("BROWSER", raising=False)
    out = io.StringIO()
    box = in_thread(lambda: interactive("browser", sso, scope=SCOPE, out=out))
    url = wait_until(lambda: re.search(r"^\s+(http://\S+)$", out.getvalue(), re.M), what="the address")[1]
    browse(requests.Session(), url, None)
    box["thread"].join(10)
    assert box["value"].user == "alice"
    assert "Logged in to demo as alice" in out.getvalue()


def test_text_fallback_gives_up_after_the_timeout(sso: nbauth.Keycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBAUTH_UI", "text")
    with pytest.raises(nbauth.LoginRequired, match="timeout="):
        interactive("browser", sso, scope=SCOPE, out=io.StringIO(), timeout=0.5)


def test_widgets_end_to_end(sso: nbauth.Keycloak, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NBAUTH_UI", "widgets")
    from ipywidgets.widgets.widget import _instances

    def sign_in() -> None:
        panel = wait_until(
            lambda: next(
                (w for w in list(_instances.values()) if isinstance(w, BrowserPanel) and w.state == "waiting"), None
            )
        )
        browse(requests.Session(), panel.url, None)

    helper = in_thread(sign_in)
    session = sso.browser_login(scope=SCOPE)
    helper["thread"].join(5)
    assert session.user == "alice" and session.whoami()["name"] == "Alice Liddell"
