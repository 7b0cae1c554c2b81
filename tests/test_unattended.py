"""notebooks/20-unattended.ipynb under papermill (no frontend): with credentials, from the cache, and without."""

import os
import pathlib
import subprocess
import sys
import time

import nbformat
import papermill
import pytest

import nbauth

NOTEBOOK = pathlib.Path(__file__).resolve().parent.parent / "notebooks" / "20-unattended.ipynb"


@pytest.fixture(autouse=True)
def _no_frontend_override(monkeypatch):
    monkeypatch.delenv("NBAUTH_UI", raising=False)  # the kernel must detect "no frontend" by itself


def write_profile(idp, path):
    path.write_text(
        f'[demo]\npreset = "keycloak"\nserver_url = "{idp.origin}"\nrealm = "demo"\n'
        'client_id = "public-client"\nclient_auth = "none"\nscope = "openid profile"\nflow = "device"\n'
    )


def run(tmp_path, api_url):
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"profile": "demo", "api_url": api_url},
        kernel_name="python3",
        execution_timeout=60,
        progress_bar=False,
        cwd=str(NOTEBOOK.parent),
        log_output=False,
    )
    return nbformat.read(out, as_version=4)


def outputs(book):
    text = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            text.append(out.get("text") or out.get("data", {}).get("text/plain", ""))
    return "\n".join(text)


def token_requests(idp):
    return sum(v for k, v in idp.stats().items() if k.startswith("token:"))


def test_runs_with_client_credentials_from_the_environment(idp, nbauth_env, resource_api, tmp_path, monkeypatch):
    write_profile(idp, nbauth_env.config_path)
    monkeypatch.setenv("NBAUTH_CLIENT_ID", "service-client")
    monkeypatch.setenv("NBAUTH_CLIENT_SECRET", "service-secret")
    book = run(tmp_path, resource_api.whoami_url)
    text = outputs(book)
    assert "'service-client'" in text  # the API saw the service client's token
    assert '"active": true' in text  # the shell cell's curl with $(nbauth token demo)
    assert "service-secret" not in text
    assert idp.stats().get("token:client_credentials:200") == 1  # the CLI in the shell cell reused it
    before = token_requests(idp)
    assert nbauth.session("demo").key.client_id == "service-client"  # cached across kernels
    assert token_requests(idp) == before


def test_reuses_a_terminal_login_without_credentials(idp, nbauth_env, resource_api, tmp_path):
    write_profile(idp, nbauth_env.config_path)
    login = subprocess.run(
        [sys.executable, "-m", "nbauth", "login", "demo", "--password-stdin", "--username", "alice"],
        input="alice-password\n",
        capture_output=True,
        text=True,
        timeout=60,
        env=os.environ.copy(),
    )
    assert login.returncode == 0, login.stderr
    before = token_requests(idp)
    book = run(tmp_path, resource_api.whoami_url)
    assert "'public-client'" in outputs(book)  # alice's session from the cache
    assert token_requests(idp) == before


def test_without_credentials_fails_fast_with_a_clear_error(idp, nbauth_env, resource_api, tmp_path):
    write_profile(idp, nbauth_env.config_path)
    start = time.monotonic()
    with pytest.raises(papermill.PapermillExecutionError) as info:
        run(tmp_path, resource_api.whoami_url)
    assert time.monotonic() - start < 60  # seconds (kernel start-up), not a hang
    assert info.value.ename == "LoginRequired"
    for needed in ("NBAUTH_CLIENT_ID", "NBAUTH_CLIENT_SECRET", "`nbauth login demo`", "no notebook frontend"):
        assert needed in info.value.evalue
    assert token_requests(idp) == 0 and resource_api.requests == []
