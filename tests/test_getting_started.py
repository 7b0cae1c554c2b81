"""docs/getting-started.md and the README's headline example, executed as written against the loopback IdP.

Every block of the page runs in order in one namespace, in the fresh cache of the test (conftest's
nbauth_env): Python blocks with exec, the TOML block as the profile file, the `nbauth ...` lines of bash
blocks as `python -m nbauth` subprocesses. Placeholders map to the loopback servers; the device code the
page's login prints is approved through the IdP's admin API, as a person would approve it.
"""

import io
import os
import re
import shlex
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from test_docs import FENCE

ROOT = Path(__file__).resolve().parent.parent
CODE = re.compile(r"\b([A-Z0-9]{4}-[A-Z0-9]{4})\b")


def fenced(text):
    """(language, code) of every fenced block, in order."""
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m and m.group(1):
            body, i = [], i + 1
            while i < len(lines) and lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            out.append((m.group(1), "\n".join(body) + "\n"))
        i += 1
    return out


def substitute(code, idp, api):
    for placeholder, real in (
        ("https://sso.example.com", idp.origin),
        ('"analytics"', '"demo"'),
        ('"jupyter"', '"public-client"'),
        ("https://data.example.com/v1/whoami", api.whoami_url),
    ):
        code = code.replace(placeholder, real)
    return code


class Approver(io.TextIOBase):
    """stdout that also approves the first device code printed to it (as alice)."""

    def __init__(self, idp, real):
        self.idp, self.real, self.text, self.approved = idp, real, "", []

    def write(self, s):
        self.real.write(s)
        self.text += s
        found = CODE.search(self.text)
        if found and found.group(1) not in self.approved:
            self.approved.append(found.group(1))
            threading.Thread(target=self.idp.approve, args=(found.group(1),), daemon=True).start()
        return len(s)


def run_page(text, idp, api, nbauth_env, monkeypatch):
    approver = Approver(idp, sys.stdout)
    monkeypatch.setattr(sys, "stdout", approver)
    namespace = {"__name__": "getting_started"}
    shell_runs = []
    for lang, code in fenced(text):
        code = substitute(code, idp, api)
        if lang == "python":
            exec(compile(code, "getting-started", "exec"), namespace)  # our own documentation
        elif lang == "toml":
            nbauth_env.config_path.write_text(code)
            os.chmod(nbauth_env.config_path, 0o600)
        elif lang == "bash":
            for line in code.splitlines():
                words = shlex.split(line, comments=True)
                if words and words[0] == "nbauth":
                    out = subprocess.run(
                        [sys.executable, "-m", "nbauth", *words[1:]],
                        capture_output=True,
                        text=True,
                        timeout=60,
                        stdin=subprocess.DEVNULL,
                        env=os.environ.copy(),
                    )
                    assert out.returncode == 0, (line, out.stderr)
                    shell_runs.append((words, out))
    return namespace, approver, shell_runs


def test_getting_started_runs_as_written(idp, resource_api, nbauth_env, monkeypatch):
    text = (ROOT / "docs" / "getting-started.md").read_text()
    namespace, approver, shell = run_page(text, idp, resource_api, nbauth_env, monkeypatch)
    assert len(approver.approved) == 1  # one login for the whole page: every later step reuses it
    assert namespace["reply"].json()["sub"]
    assert "alice" in repr(namespace["api"])
    token = next(out.stdout.strip() for words, out in shell if words[1] == "token")
    assert token and token in namespace["api"].token.access_token
    assert idp.stats().get("token:urn:ietf:params:oauth:grant-type:device_code:200") == 1


def test_readme_headline_example_runs_as_written(idp, resource_api, nbauth_env, monkeypatch):
    readme = (ROOT / "README.md").read_text()
    python = [code for lang, code in fenced(readme) if lang == "python"]
    headline = python[0]
    assert "device_login" in headline and "nbauth.session(" in headline
    headline = headline.replace("https://data.example.com/v1/sales", "https://data.example.com/v1/whoami")
    run_page(f"```python\n{headline}```\n", idp, resource_api, nbauth_env, monkeypatch)


@pytest.mark.parametrize("page", ["README.md", "docs/index.md", "docs/getting-started.md"])
def test_install_from_a_clone_is_documented(page):
    text = (ROOT / page).read_text()
    assert "pip install -e ." in text or (page == "docs/index.md" and "getting-started.md" in text)
