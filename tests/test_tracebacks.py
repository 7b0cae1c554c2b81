"""AuthError in a notebook: the rendered traceback shows the user's cell and the message, no machinery.

A real ipykernel runs the cells (nbclient) against the loopback IdP; the test inspects the error output
the frontend would render, and the streams, for frames of nbauth / requests / IPython and stray log lines.
"""

import re

import nbformat
import pytest
from nbclient import NotebookClient

ANSI = re.compile(r"\x1b\[[0-9;]*m")
MACHINERY = ("site-packages", "/nbauth/", "requests", "urllib3", "interactiveshell", "_panel.py", "ipywidgets")


def run_cells(*sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True)
    client.execute()
    return nb.cells


def rendered(cell):
    """(error text as the frontend shows it, other output text)."""
    errors = [o for o in cell.outputs if o.output_type == "error"]
    streams = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
    text = "\n".join(ANSI.sub("", line) for o in errors for line in o.traceback)
    return (errors[0] if errors else None), text, streams


def setup_cell(idp):
    return (
        f"import nbauth\nsso = nbauth.Keycloak({idp.origin!r}, 'demo', client_id='public-client', "
        "client_auth='none')\napi = sso.get_token_by_password('alice', 'alice-password', 'openid profile')"
    )


def check_clean(cell, ename, user_line):
    error, text, streams = rendered(cell)
    assert error is not None and error.ename == ename, cell.outputs
    assert user_line in text, text  # the user's own line, where it failed
    assert error.evalue in text  # the message
    for word in MACHINERY:
        assert word not in text, (word, text)
    assert "The above exception" not in text and "During handling" not in text, text
    assert "WARNING" not in streams and "nbauth:" not in streams, streams  # no stray log line
    return text


def test_login_required_from_api_get_shows_only_the_cell(idp):
    userinfo = f"{idp.issuer}/me"
    cells = run_cells(
        setup_cell(idp),
        # the grant dies at the provider and the token expires (nbauth's clock): the refresh is refused
        "import time\nfrom nbauth import _clock\n_clock.now = lambda: time.time() + 3600\n"
        "import requests\nrequests.post(" + repr(idp.admin_url + "/reset") + ").raise_for_status()",
        f"r = api.get({userinfo!r})",
        "nbauth.session('no-such-session')",
        "def helper():\n    return api.get(" + repr(userinfo) + ")\n\nhelper()",
        "raise ValueError('not nbauth')",
    )
    assert not [o for o in cells[0].outputs + cells[1].outputs if o.output_type == "error"], cells[1].outputs
    check_clean(cells[2], "LoginRequired", f"r = api.get({userinfo!r})")
    check_clean(cells[3], "LoginRequired", "nbauth.session('no-such-session')")
    text = check_clean(cells[4], "LoginRequired", "return api.get(")
    assert "helper()" in text  # the user's own function frames stay
    error, text, _ = rendered(cells[5])
    assert error.ename == "ValueError" and "not nbauth" in text  # other errors keep IPython's own rendering


def test_panel_errors_show_only_the_cell(idp):
    cells = run_cells(
        "import nbauth\nsso = nbauth.Keycloak(" + repr(idp.origin) + ", 'demo', client_id='no-such-client', "
        "client_auth='none')",
        "api = sso.device_login('openid profile')",
    )
    check_clean(cells[1], rendered(cells[1])[0].ename, "api = sso.device_login('openid profile')")
    assert rendered(cells[1])[0].ename in ("InvalidClient", "UnauthorizedClient", "OAuthError")


def test_full_tracebacks_on_request(idp, monkeypatch):
    monkeypatch.setenv("NBAUTH_TRACEBACK", "full")
    (_, cell) = run_cells("import nbauth", "nbauth.session('no-such-session')")
    _, text, _ = rendered(cell)
    assert "_lookup.py" in text  # the frames are there for a bug report


@pytest.mark.parametrize("wait", ["", "\nimport time\ntime.sleep(2.5)  # the card's ticker sees it first"])
def test_session_shown_beneath_the_card_says_logged_out_after_logout(idp, monkeypatch, wait):
    """The text of `api` on a cell's last line is rewritten (update_display) after a logout in another cell."""
    monkeypatch.setenv("NBAUTH_UI", "widgets")  # nbclient has no frontend of its own: widgets as in JupyterLab
    cells = run_cells(setup_cell(idp) + "\ncard = api.status()", "api", "api.logout()" + wait)
    shown = [o for o in cells[1].outputs if "text/plain" in o.get("data", {})]
    assert shown, cells[1].outputs
    text = shown[0]["data"]["text/plain"]
    assert "logged out" in text and "expires" not in text, text
