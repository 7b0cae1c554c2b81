"""What the nbauth command says: the fix first in shell terms, "did you mean", one success line, human durations.

Real `python -m nbauth` subprocesses against the loopback IdP, plus a scan of nbauth's user-facing strings.
"""

import ast
import difflib
import re
from pathlib import Path

import pytest
from test_cli import DeviceLogin, cli, profiles

import nbauth

NOTEBOOK_WORDS = ("notebook", "frontend", "device_login(", "provider.", "kernel")


def first_line(out):
    return out.stderr.splitlines()[0]


def test_no_session_says_the_shell_fix_first(idp, nbauth_env):
    profiles(idp, nbauth_env.config_path)
    out = cli("token", "demo")
    assert out.returncode == 3 and out.stdout == ""
    assert first_line(out).startswith("nbauth: Log in first: nbauth login demo")
    assert not any(word in out.stderr for word in NOTEBOOK_WORDS), out.stderr
    bare = cli("token")
    assert bare.returncode == 3 and first_line(bare).startswith("nbauth: Log in first: nbauth login demo")


@pytest.mark.parametrize(
    ("args", "fix"),
    [
        (("token", "dmeo"), "nbauth: Did you mean 'demo'? nbauth token demo"),
        (("whoami", "dmeo"), "nbauth: Did you mean 'demo'? nbauth whoami demo"),
        (("login", "dmeo"), "nbauth: Did you mean 'demo'? nbauth login demo"),
    ],
)
def test_typos_get_did_you_mean(idp, nbauth_env, args, fix):
    profiles(idp, nbauth_env.config_path)
    out = cli(*args)
    assert out.returncode in (3, 9)
    assert first_line(out).startswith(fix), out.stderr
    assert not any(word in out.stderr for word in NOTEBOOK_WORDS), out.stderr


def test_logout_typo_and_unknown_name(idp, nbauth_env):
    profiles(idp, nbauth_env.config_path, pw="public-client")
    assert cli("login", "pw", "--password-stdin", "--username", "alice", input="alice-password\n").returncode == 0
    typo = cli("logout", "pww")
    assert typo.returncode == 3 and first_line(typo).startswith("nbauth: Did you mean 'pw'? nbauth logout pw")
    unknown = cli("logout", "zzzzzz")
    assert unknown.returncode == 3 and "nbauth login" not in unknown.stderr  # no "log in" advice for a logout
    assert "sessions: pw" in unknown.stderr


def test_login_reports_success_once(idp, nbauth_env):
    profiles(idp, nbauth_env.config_path, pw="public-client")
    rc, _, err = DeviceLogin(idp, "demo").wait()
    assert rc == 0 and err.count("Logged in") == 1, err
    pw = cli("login", "pw", "--password-stdin", "--username", "bob", input="bob-password\n")
    assert pw.returncode == 0 and pw.stderr.count("Logged in") == 1, pw.stderr


def test_list_shows_human_durations(idp_factory, nbauth_env):
    week = idp_factory(IDP_TTL_AccessToken=7 * 86400)
    profiles(week, nbauth_env.config_path, pw="public-client")
    assert cli("login", "pw", "--password-stdin", "--username", "alice", input="alice-password\n").returncode == 0
    out = cli("list")
    assert re.search(r"\bin 7 days\b", out.stdout), out.stdout
    assert not re.search(r"\d{3,} min", out.stdout)


@pytest.mark.parametrize(
    "cls", [c for c in vars(nbauth).values() if isinstance(c, type) and issubclass(c, nbauth.OAuthError) and c.code]
)
def test_oauth_errors_do_not_repeat_themselves(cls):
    exc = cls(cls.code, "the device code expired before it was approved" if cls.code == "expired_token" else "")
    sentences = [s for s in re.split(r"(?<=[.;:])\s+", str(exc)) if len(s) > 12]
    for i, a in enumerate(sentences):
        for b in sentences[i + 1 :]:
            assert difflib.SequenceMatcher(None, a.lower(), b.lower()).ratio() < 0.6, str(exc)


def _message_strings():
    """String literals of nbauth that are not docstrings (messages, help text, labels)."""
    root = Path(nbauth.__file__).parent
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text())
        docs = {
            id(n.body[0].value)
            for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and n.body
            and isinstance(n.body[0], ast.Expr)
            and isinstance(n.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                yield f"{path.name}:{node.lineno}", node.value


def test_no_rfc_numbers_or_seed_names_in_user_facing_text():
    bad = [(where, text) for where, text in _message_strings() if re.search(r"RFC ?\d|§|\bseed \d|OIDC Core", text)]
    assert bad == []
