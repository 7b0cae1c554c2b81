"""A real JupyterHub for tests: start it against a loopback IdP, log a user in through the hub's
OAuth flow with the scripted browser, and mint the token a single-user server would hold.

Needs ``pip install jupyterhub oauthenticator`` (in nbauth's ``test`` extra) and ``npm ci`` in
tests/hub (configurable-http-proxy); :func:`ensure_proxy` runs it when node_modules is missing.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
from idp.helpers import IdP, browse

HUB_DIR = Path(__file__).resolve().parent
TIMEOUT = 10


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_proxy(hub_dir: Path = HUB_DIR) -> None:
    if not (hub_dir / "node_modules" / ".bin" / "configurable-http-proxy").exists():
        npm = shutil.which("npm")
        if npm is None:
            raise RuntimeError("npm is needed for configurable-http-proxy (tests/hub): install Node.js >= 20")
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=hub_dir, check=True, capture_output=True, timeout=300
        )


class Hub:
    """A running hub: ``url`` (the proxy), ``api_url`` (``<url>/hub/api``), ``admin_token`` (a service token)."""

    def __init__(
        self, port: int, state: Path, proc: subprocess.Popen[bytes], admin_token: str, crypt_key: str, log: Path
    ) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.api_url = f"{self.url}/hub/api"
        self.state, self.proc, self.admin_token = state, proc, admin_token
        self.crypt_key, self.log_path = crypt_key, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def api(self, method: str, path: str, token: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"token {token or self.admin_token}"}
        return requests.request(
            method, f"{self.api_url}/{path.lstrip('/')}", headers=headers, timeout=TIMEOUT, **kwargs
        )

    def login(self, username: str = "alice", password: str = "alice-password") -> requests.Session:
        """The hub's OAuth login at the IdP, as a browser: returns the browser (its cookies)."""
        browser = requests.Session()
        _, last = browse(browser, f"{self.url}/hub/oauth_login", user=(username, password))
        if last.status_code != 200 or "/hub/" not in last.url:
            raise RuntimeError(f"hub login failed: {last.status_code} {last.url}\n{self.log()}")
        return browser

    def server_token(self, username: str = "alice") -> str:
        """A token of the user's with the scopes a single-user server gets for auth_state (design.md)."""
        r = self.api(
            "POST",
            f"users/{username}/tokens",
            json={"scopes": ["read:users!user", "admin:auth_state!user"], "note": "nbauth test", "expires_in": 3600},
        )
        if r.status_code not in (200, 201):
            raise RuntimeError(f"token request failed: {r.status_code} {r.text}")
        return str(r.json()["token"])

    def kernel_env(self, username: str = "alice") -> dict[str, str]:
        """What a single-user server's kernel finds in its environment."""
        return {
            "JUPYTERHUB_API_URL": self.api_url,
            "JUPYTERHUB_API_TOKEN": self.server_token(username),
            "JUPYTERHUB_USER": username,
        }

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_hub(idp: IdP, workdir: Path, *, port: int, auth_refresh_age: int = 300, timeout: float = 60.0) -> Hub:
    """Start jupyterhub (+ configurable-http-proxy) on ``port`` against ``idp``; waits until it answers."""
    ensure_proxy()
    workdir.mkdir(parents=True, exist_ok=True)
    admin_token, crypt_key = secrets.token_hex(16), secrets.token_hex(32)
    env = {
        **os.environ,
        "HUB_PORT": str(port),
        "HUB_API_PORT": str(free_port()),
        "HUB_PROXY_API_PORT": str(free_port()),
        "HUB_DIR": str(workdir),
        "HUB_ADMIN_TOKEN": admin_token,
        "JUPYTERHUB_CRYPT_KEY": crypt_key,
        "HUB_IDP_AUTHORIZE": idp.endpoint("authorization_endpoint"),
        "HUB_IDP_TOKEN": idp.endpoint("token_endpoint"),
        "HUB_IDP_USERINFO": idp.endpoint("userinfo_endpoint"),
        "HUB_AUTH_REFRESH_AGE": str(auth_refresh_age),
    }
    for name in ("JUPYTERHUB_API_URL", "JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER"):
        env.pop(name, None)
    log = workdir / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(HUB_DIR / "jupyterhub_config.py")],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    hub = Hub(port, workdir, proc, admin_token, crypt_key, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyterhub exited ({proc.returncode}):\n{hub.log()}")
        try:
            if requests.get(f"{hub.api_url}/", timeout=2).status_code == 200:
                return hub
        except requests.RequestException:
            pass
        time.sleep(0.2)
    hub.stop()
    raise RuntimeError(f"jupyterhub did not start within {timeout:.0f} s:\n{hub.log()}")
