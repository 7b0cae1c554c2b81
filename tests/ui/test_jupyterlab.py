"""The widgets in a real JupyterLab 4 (and Notebook 7), driven in headless Chromium with Playwright.

One JupyterLab server for the module, started on the notebooks under notebooks/ (copied to a
temp dir) with ``NBAUTH_DEMO_ISSUER`` pointing at the loopback IdP and its own cache dir;
widget state is saved with the notebook (the tests check that no token or password ends up
in the file). Screenshots go to tests/ui/screenshots/ (git-ignored): look at them.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from ui.lab import CHROMIUM, CHROMIUM_ARGS, JupyterLab

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"),
]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("02-device-login.ipynb", "03-login-form.ipynb", "04-browser-sign-in.ipynb")
PASSWORD = "alice-password"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def start_lab(idp: Any, tmp_path_factory: pytest.TempPathFactory, **kw: Any) -> JupyterLab:
    root = tmp_path_factory.mktemp("lab-root")
    for name in NOTEBOOKS:
        shutil.copy(ROOT / "notebooks" / name, root / name)
    work = tmp_path_factory.mktemp("lab-work")
    env = {"NBAUTH_DEMO_ISSUER": idp.issuer, "NBAUTH_CACHE_DIR": str(work / "nbauth-cache")}
    server = JupyterLab.start(root, env, work, **kw)
    server.cache_dir = work / "nbauth-cache"  # type: ignore[attr-defined]
    return server


@pytest.fixture(scope="module")
def lab(idp: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    with start_lab(idp, tmp_path_factory) as server:
        yield server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def context(browser: Any, lab: JupyterLab) -> Iterator[Any]:
    shutil.rmtree(lab.cache_dir, ignore_errors=True)  # type: ignore[attr-defined] # no login reused across tests
    for name in NOTEBOOKS:  # no outputs or widget state saved by an earlier test
        shutil.copy(ROOT / "notebooks" / name, lab.root / name)
    ctx = browser.new_context(viewport={"width": 1200, "height": 1000})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=lab.base)
    ctx.set_default_timeout(30_000)
    try:
        yield ctx
    finally:
        ctx.close()
        lab.shutdown_kernels()


def cached_secrets(cache_dir: Path) -> list[str]:
    """Every token value in nbauth's cache files (what must never appear in the notebook)."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key in ("access_token", "refresh_token", "id_token") and isinstance(item, str) and item:
                    found.append(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in cache_dir.glob("*.json"):
        walk(json.loads(path.read_text()))
    return found


def without_sources(saved: dict[str, Any]) -> str:
    """The saved notebook minus what the author wrote (the demo password is in a markdown cell)."""
    cells = [{k: v for k, v in cell.items() if k != "source"} for cell in saved["cells"]]
    return json.dumps({**saved, "cells": cells})


def assert_no_secrets(saved: dict[str, Any], lab: JupyterLab, *extra: str) -> None:
    text = without_sources(saved)
    tokens = cached_secrets(lab.cache_dir)  # type: ignore[attr-defined]
    assert tokens, "the login left no token in the cache: nothing was checked"
    for secret in (*tokens, *extra):
        assert secret not in text
        for part in secret.split("."):  # a JWT's payload alone would do harm too
            if len(part) > 20:
                assert part not in text


def widget_state(saved: dict[str, Any]) -> str:
    state = saved["metadata"].get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    assert state, "no widget state was saved: the secret checks would prove nothing"
    return json.dumps(state)


def test_device_login_in_jupyterlab(lab: JupyterLab, context: Any, idp: Any) -> None:
    page = lab.open(context, "02-device-login.ipynb")
    lab.run_all(page)  # the device cell blocks; the cells below it wait ("Run All" works)
    code = page.locator(".nbauth-code").first
    code.wait_for()
    user_code = code.inner_text().strip()
    assert len(user_code) >= 8
    panel = page.locator(".nbauth-panel").first
    expect(panel).to_contain_text("expires in")
    expect(page.locator(".nbauth-qr svg")).to_have_count(1)
    link = panel.locator("a.nbauth-link").first
    assert link.get_attribute("target") == "_blank"
    assert user_code in (link.get_attribute("href") or "")
    lab.shot(page, "device-waiting-lab-light")

    page.locator(".nbauth-copy").first.click()
    page.wait_for_function("() => document.querySelector('.nbauth-copy').textContent === 'Copied'")
    assert page.evaluate("navigator.clipboard.readText()") == user_code
    lab.theme(page, "JupyterLab Dark")
    lab.shot(page, "device-waiting-lab-dark")
    lab.theme(page, "JupyterLab Light")

    idp.approve(user_code)
    status = page.locator(".nbauth-status").first
    status.wait_for()
    expect(status).to_contain_text("Signed in as alice")
    page.get_by_text("alice@example.test").first.wait_for()  # the next cell ran after the login
    page.get_by_text("Using the cached session demo#").first.wait_for()  # no second prompt
    page.locator("table.nbauth-sessions").first.wait_for()
    lab.shot(page, "device-approved-lab-light")
    page.locator(".jp-CodeCell").last.scroll_into_view_if_needed()
    lab.shot(page, "reuse-line-and-sessions-lab-light")

    text_before = status.inner_text()
    page.wait_for_timeout(2200)
    assert status.inner_text() != text_before, "the expiry countdown does not tick"

    saved = lab.save(page, "02-device-login.ipynb")
    state = widget_state(saved)
    assert "alice" in state
    assert_no_secrets(saved, lab)


def test_login_form_in_jupyterlab(lab: JupyterLab, context: Any) -> None:
    page = lab.open(context, "03-login-form.ipynb")
    lab.run_cells(page, 1, 3, 4, 5)  # set-up, the form, and two cells that wait for it
    form = page.locator(".nbauth-panel").first
    user = form.locator("input[type=text]").first
    password = form.locator("input[type=password]").first
    user.wait_for()
    lab.shot(form, "form-empty-lab-light")

    user.fill("alice")
    password.fill("not-her-password")
    password.press("Enter")  # Enter submits (the password reaches the kernel just after the Enter)
    form.get_by_text("Wrong username or password.").wait_for()
    expect(password).to_have_value("")
    lab.shot(form, "form-wrong-password-lab-light")
    lab.theme(page, "JupyterLab Dark")
    lab.shot(form, "form-wrong-password-lab-dark")
    lab.theme(page, "JupyterLab Light")

    # typed and left (not submitted): the kernel took it out of the box, so it is not in a save either
    password.fill(PASSWORD)
    user.click()
    page.wait_for_function("() => document.querySelector('.nbauth-panel input[type=password]').value === ''")
    expect(password).to_have_attribute("placeholder", re.compile("entered"))
    saved = lab.save(page, "03-login-form.ipynb")
    assert "Wrong username or password" in widget_state(saved)
    assert PASSWORD not in without_sources(saved)

    form.get_by_role("button", name="Log in").click()
    status = page.locator(".nbauth-status").first
    status.wait_for()
    expect(status).to_contain_text("Signed in as alice")
    page.get_by_text("'alice'").first.wait_for()  # the cell after the form ran
    expect(page.locator(".nbauth-status")).to_have_count(2)  # api.status() too
    lab.shot(page, "form-signed-in-lab-light")
    lab.theme(page, "JupyterLab Dark")
    lab.shot(page.locator(".nbauth-status").first, "status-lab-dark")
    lab.theme(page, "JupyterLab Light")

    saved = lab.save(page, "03-login-form.ipynb")
    assert "alice" in widget_state(saved)
    assert_no_secrets(saved, lab, PASSWORD)

    page.locator(".nbauth-status").nth(1).get_by_role("button", name="Log out").click()
    page.get_by_text("Logged out of demo").first.wait_for()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.nbauth-status')].every(e => e.innerText.includes('Logged out'))"
    )  # the other status widget follows
    lab.shot(page.locator(".nbauth-status").first, "status-logged-out-lab-light")


def test_browser_sign_in_in_jupyterlab(lab: JupyterLab, context: Any, idp: Any) -> None:
    idp.auto_login("alice")  # the IdP's sign-in page completes by itself
    page = lab.open(context, "04-browser-sign-in.ipynb")
    lab.run_all(page)
    button = page.locator("a.nbauth-open").first
    button.wait_for()
    lab.shot(page.locator(".nbauth-panel").first, "browser-waiting-lab-light")
    with context.expect_page() as opened:
        button.click()
    tab = opened.value
    tab.wait_for_load_state()
    tab.get_by_text("You can close this tab").wait_for()
    assert tab.url.startswith("http://127.0.0.1:") and "/callback?" in tab.url
    lab.shot(tab, "browser-redirect-tab")
    status = page.locator(".nbauth-status").first
    status.wait_for()
    expect(status).to_contain_text("Signed in as alice")
    page.get_by_text("'Alice Liddell'").first.wait_for()
    saved = lab.save(page, "04-browser-sign-in.ipynb")
    assert "alice" in widget_state(saved)
    assert_no_secrets(saved, lab)


def test_login_form_in_notebook7(lab: JupyterLab, context: Any) -> None:
    page = lab.open(context, "03-login-form.ipynb", ui="notebooks")
    lab.run_cells(page, 1, 3)
    cell = page.locator(".jp-CodeCell").nth(1)
    form = cell.locator(".nbauth-panel").first
    form.locator("input[type=text]").first.fill("alice")
    password = form.locator("input[type=password]").first
    password.fill(PASSWORD)
    password.press("Enter")
    status = cell.locator(".nbauth-status").first
    status.wait_for()
    expect(status).to_contain_text("Signed in as alice")
    lab.shot(page, "form-signed-in-notebook7")
    saved = lab.save(page, "03-login-form.ipynb")
    assert_no_secrets(saved, lab, PASSWORD)


def test_cancel_in_jupyterlab(lab: JupyterLab, context: Any) -> None:
    page = lab.open(context, "02-device-login.ipynb")
    lab.run_cells(page, 1, 3)
    cell = page.locator(".jp-CodeCell").nth(1)
    cell.locator(".nbauth-code").wait_for()
    cell.get_by_role("button", name="Cancel").click()  # handled while the cell still blocks
    cell.get_by_text("Sign-in cancelled.").wait_for()
    cell.get_by_text("LoginCancelled").first.wait_for()  # and the call raised the typed error
    expect(cell.locator(".nbauth-code")).to_have_count(0)
    lab.shot(cell, "device-cancelled-lab-light")
    lab.theme(page, "JupyterLab Dark")
    lab.shot(cell, "device-cancelled-lab-dark")
    lab.theme(page, "JupyterLab Light")


def test_widgets_stay_live_when_the_frontend_sends_comms_to_the_main_shell(
    idp: Any, browser: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Frontends that do not use kernel subshells for comms (VS Code; JupyterLab with the setting off):
    nbauth routes its widgets' messages to a subshell of its own, so the form still works while the
    cell blocks.
    """
    off = {"@jupyterlab/apputils-extension/kernels-settings.jupyterlab-settings": {"commsOverSubshells": "disabled"}}
    with start_lab(idp, tmp_path_factory, settings_extra=off) as lab:
        ctx = browser.new_context(viewport={"width": 1200, "height": 1000})
        try:
            page = lab.open(ctx, "03-login-form.ipynb")
            lab.run_cells(page, 1, 3)
            form = page.locator(".nbauth-panel").first
            form.locator("input[type=text]").first.fill("alice")
            password = form.locator("input[type=password]").first
            password.fill(PASSWORD)
            password.press("Enter")
            status = page.locator(".jp-CodeCell").nth(1).locator(".nbauth-status")
            status.wait_for(timeout=30_000)
            expect(status).to_contain_text("Signed in as alice")
        finally:
            ctx.close()
