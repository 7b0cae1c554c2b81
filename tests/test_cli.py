"""The nbauth command, run as `python -m nbauth` subprocesses against the real loopback IdP."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests

from nbauth._cli import EXIT_CODES

EXIT_CODES_BY_NAME = {cls.__name__: code for code, cls, _ in EXIT_CODES}

CODE = re.compile(r"user_code=([\w-]+)|code ([A-Z0-9]{4}-[A-Z0-9]{4})")


@pytest.fixture(autouse=True)
def _terminal_ui(monkeypatch):
    monkeypatch.delenv("NBAUTH_UI", raising=False)


def cli(*args, input=None, env=None, timeout=60):
    stdin = {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}  # never the test's terminal
    return subprocess.run(
        [sys.executable, "-m", "nbauth", *args],
        env=env or os.environ.copy(),
        **stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def profiles(idp, path, **clients):
    """[demo] public client with the device flow, plus one profile per extra client."""
    text = (
        f'[demo]\npreset = "keycloak"\nserver_url = "{idp.origin}"\nrealm = "demo"\n'
        'client_id = "public-client"\nclient_auth = "none"\nscope = "openid profile"\nflow = "device"\n'
    )
    for name, client in clients.items():
        text += (
            f'[{name}]\npreset = "keycloak"\nserver_url = "{idp.origin}"\nrealm = "demo"\n'
            f'client_id = "{client}"\nclient_auth = "none"\nscope = "openid profile"\nflow = "password"\n'
        )
    path.write_text(text)
    os.chmod(path, 0o600)


class DeviceLogin:
    """`nbauth login ...` in the background; the IdP approves (or denies) the code it prints on stderr."""

    def __init__(self, idp, *args, action="approve", env=None):
        self.idp, self.action, self.lines, self.seen = idp, action, [], threading.Event()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nbauth", "login", *args],
            env=env or os.environ.copy(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)
            found = CODE.search(line)
            if found and not self.seen.is_set():
                self.seen.set()
                if self.action == "approve":
                    self.idp.approve(found.group(1) or found.group(2))
                elif self.action == "deny":
                    self.idp.deny(found.group(1) or found.group(2))

    def wait(self, timeout=30):
        rc = self.proc.wait(timeout)
        self.reader.join(5)
        return rc, self.proc.stdout.read(), "".join(self.lines)


def cached_secrets(cache_dir):
    found = []
    for path in cache_dir.glob("*.json"):
        token = json.loads(path.read_text())["token"]
        found += [token[k] for k in ("access_token", "refresh_token", "id_token") if token.get(k)]
    return found


def test_help_documents_every_exit_code():
    out = cli("--help")
    assert out.returncode == 0
    for code, cls, _ in EXIT_CODES:
        assert re.search(rf"^\s+{code}\s+{cls.__name__}:", out.stdout, re.M), cls
    assert cli("frobnicate").returncode == 2
    assert cli("logout").returncode == 9  # neither NAME nor --all


def test_console_script_is_declared():
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["nbauth"] == "nbauth_cli:main"  # the fast `nbauth token` path, else nbauth._cli


def test_device_login_then_token_whoami_list_logout(idp, nbauth_env):
    profiles(idp, nbauth_env.config_path)
    rc, out, err = DeviceLogin(idp, "demo").wait()
    assert rc == 0, err
    assert out == "" and "Logged in" in err and "alice" in err
    token = cli("token", "demo")
    assert token.returncode == 0 and token.stderr == ""
    assert re.fullmatch(r"[\w.~+/-]+=*\n", token.stdout)  # only the token, for $(nbauth token demo)
    userinfo = requests.get(
        idp.endpoint("userinfo_endpoint"), timeout=10, headers={"Authorization": f"Bearer {token.stdout.strip()}"}
    )
    assert userinfo.json()["sub"]
    who = cli("whoami", "demo", "--json")
    assert who.returncode == 0 and json.loads(who.stdout)["claims"]["preferred_username"] == "alice"
    listed = json.loads(cli("list", "--json").stdout)
    assert [s["name"] for s in listed["sessions"]] == ["demo"] and listed["profiles"][0]["client_id"] == "public-client"
    assert "demo" in cli("list").stdout
    before = idp.stats().get("token:urn:ietf:params:oauth:grant-type:device_code:200")
    again = cli("login", "demo")  # a valid session is reused: no new device code
    assert again.returncode == 0 and idp.stats().get("token:urn:ietf:params:oauth:grant-type:device_code:200") == before
    secrets = cached_secrets(nbauth_env.cache_dir)
    assert secrets
    logout = cli("logout", "demo")
    assert logout.returncode == 0, logout.stderr
    assert idp.stats().get("revocation:200", 0) >= 1
    gone = cli("token", "demo")
    assert gone.returncode == 3 and gone.stdout == "" and "nbauth login demo" in gone.stderr
    for text in (err, who.stderr, again.stderr, logout.stderr, gone.stderr):
        assert not any(s in text for s in secrets)


def test_token_refreshes_once_for_many_processes(idp, nbauth_env):
    """Holds on a loaded machine: 300 s tokens, and the processes' clock 250 s ahead (NBAUTH_CLOCK_OFFSET)
    instead of sleeping into a 3 s lifetime - a late process still finds the renewed token fresh."""
    profiles(idp, nbauth_env.config_path, short="public-client")  # 300 s access tokens, 60 s leeway
    login = cli("login", "short", "--password-stdin", "--username", "alice", input="alice-password\n")
    assert login.returncode == 0, login.stderr
    first = cli("token", "short").stdout.strip()
    assert cli("token", "short").stdout.strip() == first  # fresh: no refresh yet
    later = {**os.environ, "NBAUTH_CLOCK_OFFSET": "250"}  # 50 s left: due for refresh
    go = nbauth_env.config_path.parent / "go"
    start = (
        "import os, sys, time\nfrom nbauth._cli import main\nopen(sys.argv[1], 'w').close()\n"
        f"while not os.path.exists({str(go)!r}):\n    time.sleep(0.002)\nsys.exit(main(['token', 'short']))\n"
    )
    ready = [nbauth_env.config_path.parent / f"ready{i}" for i in range(4)]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", start, str(r)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=later
        )
        for r in ready
    ]
    deadline = time.monotonic() + 60
    while not all(r.exists() for r in ready):  # all imported: released together, they race for the refresh
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
        time.sleep(0.01)
    go.touch()
    tokens = {p.communicate(timeout=60)[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(tokens) == 1 and first not in tokens
    assert idp.stats().get("token:refresh_token:200") == 1  # single flight across processes
    forced = cli("token", "short", "--refresh", "--json", env=later)
    assert json.loads(forced.stdout)["access_token"] not in tokens | {first}


def test_unattended_token_with_client_credentials(idp, nbauth_env, resource_api):
    profiles(idp, nbauth_env.config_path)
    env = {**os.environ, "NBAUTH_CLIENT_ID": "service-client", "NBAUTH_CLIENT_SECRET": "service-secret"}
    shell = subprocess.run(
        ["bash", "-c", f'{sys.executable} -m nbauth token demo > tok && test -s tok && echo "Bearer $(cat tok)"'],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=nbauth_env.cache_dir.parent,
    )
    assert shell.returncode == 0, shell.stderr
    r = requests.get(resource_api.whoami_url, headers={"Authorization": shell.stdout.strip()}, timeout=10)
    assert r.json()["client_id"] == "service-client"
    who = cli("whoami", "demo", env=env)
    assert who.returncode == 0 and "service-client" in who.stdout
    assert "service-secret" not in shell.stderr + who.stderr + who.stdout


def test_password_prompt_on_a_terminal(idp, nbauth_env):
    import pty  # stdlib on POSIX (the suite runs there)

    profiles(idp, nbauth_env.config_path, pw="public-client")
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nbauth", "login", "pw", "--username", "alice"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=os.environ.copy(),
        start_new_session=True,
    )  # no controlling terminal: getpass reads the pty on stdin
    os.close(terminal)
    err = b""
    try:
        while b"Password" not in err:  # getpass flushes earlier input: answer after the prompt
            chunk = proc.stderr.read1(1024)
            assert chunk, err
            err += chunk
        os.write(controller, b"alice-password\n")
        out, rest = proc.communicate(timeout=60)
    finally:
        os.close(controller)
    err += rest
    assert proc.returncode == 0, err
    assert b"alice" in err and b"alice-password" not in err + out


def test_login_by_issuer_url(idp, nbauth_env):
    out = cli(
        "login",
        idp.issuer,
        "--client-id",
        "public-client",
        "--scope",
        "openid profile",
        "--password-stdin",
        "--username",
        "bob",
        "--json",
        input="bob-password\n",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["name"] == "demo" and json.loads(out.stdout)["user"] == "bob"


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("wrong-password", 4),
        ("wrong-secret", 5),
        ("denied", 6),
        ("unreachable", 7),
        ("issuer-mismatch", 8),
        ("bad-profile", 9),
        ("no-tty", 3),
        ("unknown-session", 3),
    ],
)
def test_each_error_class_has_its_exit_code(idp, nbauth_env, case, code):
    profiles(idp, nbauth_env.config_path, pw="public-client")
    env = os.environ.copy()
    if case == "wrong-password":
        out = cli("login", "pw", "--password-stdin", "--username", "alice", input="wrong-password-123\n")
    elif case == "wrong-secret":
        env.update(NBAUTH_CLIENT_ID="service-client", NBAUTH_CLIENT_SECRET="not-the-secret")
        out = cli("token", "demo", env=env)
    elif case == "denied":
        rc, stdout, stderr = DeviceLogin(idp, "demo", action="deny").wait()
        out = subprocess.CompletedProcess([], rc, stdout, stderr)
    elif case == "unreachable":
        nbauth_env.config_path.write_text('[down]\nissuer = "http://127.0.0.1:9/realms/x"\nclient_id = "c"\n')
        out = cli("login", "down")
    elif case == "issuer-mismatch":
        out = cli("login", idp.issuer.replace("127.0.0.1", "localhost"), "--client-id", "public-client")
    elif case == "bad-profile":
        nbauth_env.config_path.write_text('[demo]\npreset = "keycloak"\nserver_url = "https://sso.example.com"\n')
        out = cli("token", "demo")
    elif case == "no-tty":
        out = cli("login", "pw")
    else:
        out = cli("whoami", "nobody")
    assert out.returncode == code, (out.stdout, out.stderr)
    assert out.stdout == ""
    assert out.stderr.startswith("nbauth: ") or "nbauth: " in out.stderr
    assert "not-the-secret" not in out.stderr and "wrong-password-123" not in out.stderr


def test_ctrl_c_while_waiting_for_approval_exits_10(idp, nbauth_env):
    profiles(idp, nbauth_env.config_path)
    login = DeviceLogin(idp, "demo", action="none")
    assert login.seen.wait(30)
    time.sleep(0.2)
    login.proc.send_signal(signal.SIGINT)
    rc, _, err = login.wait()
    assert rc == 10 and "cancelled" in err


def test_logout_all_wipes_the_cache(idp, nbauth_env):
    profiles(idp, nbauth_env.config_path, pw="public-client")
    for user in ("alice", "bob"):
        assert (
            cli("login", "pw", "--password-stdin", "--username", user, "--force", input=f"{user}-password\n").returncode
            == 0
        )
    assert len(list(nbauth_env.cache_dir.glob("*.json"))) == 2
    out = cli("logout", "--all")
    assert out.returncode == 0 and "2 session" in out.stderr
    assert list(nbauth_env.cache_dir.glob("*.json")) == []
    assert json.loads(cli("list", "--json").stdout)["sessions"] == []


KEYRING_BACKEND = """
import json, pathlib
from keyring.backend import KeyringBackend

class FileKeyring(KeyringBackend):
    priority = 1
    path = pathlib.Path(__file__).with_name("keyring.json")

    def _load(self):
        return json.loads(self.path.read_text()) if self.path.exists() else {}

    def get_password(self, service, username):
        return self._load().get(f"{service}/{username}")

    def set_password(self, service, username, password):
        data = self._load(); data[f"{service}/{username}"] = password; self.path.write_text(json.dumps(data))

    def delete_password(self, service, username):
        data = self._load(); data.pop(f"{service}/{username}", None); self.path.write_text(json.dumps(data))
"""


def test_secret_command_without_a_keyring_backend_is_a_clear_error(idp, nbauth_env):
    nbauth_env.config_path.write_text(
        f'[svc]\npreset = "keycloak"\nserver_url = "{idp.origin}"\nrealm = "demo"\n'
        'client_id = "service-client"\nflow = "client_credentials"\n'
    )
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    out = cli("secret", "svc", input="service-secret\n", env=env)
    assert out.returncode == EXIT_CODES_BY_NAME["ConfigurationError"], out.stderr
    assert "Traceback" not in out.stderr and "no usable keyring backend" in out.stderr
    assert "NBAUTH_CLIENT_SECRET" in out.stderr and "service-secret" not in out.stderr
    assert len(out.stderr.strip().splitlines()) <= 2


def test_secret_command_stores_the_client_secret_in_the_keyring(idp, nbauth_env, tmp_path):
    (tmp_path / "testkeyring.py").write_text(KEYRING_BACKEND)
    nbauth_env.config_path.write_text(
        f'[svc]\npreset = "keycloak"\nserver_url = "{idp.origin}"\nrealm = "demo"\n'
        'client_id = "service-client"\nflow = "client_credentials"\n'
    )
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
        "PYTHON_KEYRING_BACKEND": "testkeyring.FileKeyring",
    }
    assert cli("token", "svc", env=env).returncode == 3
    stored = cli("secret", "svc", input="service-secret\n", env=env)
    assert stored.returncode == 0, stored.stderr
    assert "service-secret" not in stored.stderr
    assert json.loads((tmp_path / "keyring.json").read_text()) == {
        f"nbauth/service-client@{idp.issuer}": "service-secret"
    }
    assert cli("token", "svc", env=env).returncode == 0
