"""A real JupyterLab for the browser tests: started on 127.0.0.1 with a temp root, driven by Playwright.

    with JupyterLab.start(root, env, workdir) as lab:       # root: a temp dir with the notebooks
        page = lab.open(browser_context, "02-device-login.ipynb")
        lab.run_all(page)
        saved = lab.save(page, "02-device-login.ipynb")      # the .ipynb as written to disk

The server exposes the application object (``window.jupyterapp``) so the tests run JupyterLab
commands instead of clicking through menus, saves widget state automatically (the setting a
user would turn on; the tests check no secret ends up in it), and does not fetch news.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"

SETTINGS = {
    "@jupyter-widgets/jupyterlab-manager/plugin.jupyterlab-settings": {"saveState": True},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/apputils-extension/themes.jupyterlab-settings": {"theme": "JupyterLab Light"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class JupyterLab:
    def __init__(self, root: Path, proc: subprocess.Popen[bytes], port: int, token: str, log: Path) -> None:
        self.root, self.proc, self.port, self.token, self.log_path = root, proc, port, token, log
        self.base = f"http://127.0.0.1:{port}"

    @classmethod
    def start(
        cls,
        root: Path,
        env: dict[str, str],
        workdir: Path,
        timeout: float = 90.0,
        settings_extra: dict[str, Any] | None = None,
    ) -> JupyterLab:
        settings = workdir / "settings"
        for name, value in {**SETTINGS, **(settings_extra or {})}.items():
            path = settings / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(value))
        for sub in ("config", "runtime", "workspaces", "ipython"):
            (workdir / sub).mkdir(parents=True, exist_ok=True)
        port, token = free_port(), secrets.token_hex(16)
        full_env = {
            **os.environ,
            **env,
            "JUPYTER_CONFIG_DIR": str(workdir / "config"),
            "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
            "IPYTHONDIR": str(workdir / "ipython"),
            "JUPYTER_PLATFORM_DIRS": "1",
        }
        full_env.pop("NBAUTH_UI", None)
        log = workdir / "jupyterlab.log"
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={root}",
            f"--LabApp.user_settings_dir={settings}",
            f"--LabApp.workspaces_dir={workdir / 'workspaces'}",
            "--LabApp.expose_app_in_browser=True",
            "--JupyterNotebookApp.expose_app_in_browser=True",
            "--LabServerApp.open_browser=False",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:  # CI containers run as root
            cmd.append("--allow-root")
        with log.open("wb") as out:
            proc = subprocess.Popen(cmd, env=full_env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        lab = cls(root, proc, port, token, log)
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited ({proc.returncode}):\n{lab.log()}")
            try:
                if requests.get(f"{lab.base}/api/status", params={"token": token}, timeout=2).status_code == 200:
                    return lab
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                lab.stop()
                raise RuntimeError(f"JupyterLab not ready after {timeout} s:\n{lab.log()}")
            time.sleep(0.3)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)

    def __enter__(self) -> JupyterLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def shutdown_kernels(self) -> None:
        """Stop every kernel (a test that failed mid-login leaves its cell blocking)."""
        params = {"token": self.token}
        for session in requests.get(f"{self.base}/api/sessions", params=params, timeout=10).json():
            requests.delete(f"{self.base}/api/sessions/{session['id']}", params=params, timeout=30)

    # ---- pages
    def open(self, context: Any, notebook: str, *, ui: str = "lab", workspace: str | None = None) -> Any:
        """Open ``notebook`` in JupyterLab (or Notebook 7 with ui="notebooks") and wait for an idle kernel."""
        page = context.new_page()
        if ui == "lab":
            space = workspace or notebook.split(".")[0]
            url = f"{self.base}/lab/workspaces/{space}/tree/{notebook}?reset&token={self.token}"
        else:
            url = f"{self.base}/notebooks/{notebook}?token={self.token}"
        page.goto(url)
        page.wait_for_function(
            """() => { const app = window.jupyterapp; const w = app && app.shell.currentWidget;
                       const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                       return k && k.status === 'idle' && w.content && w.content.widgets.length > 0; }""",
            timeout=60_000,
        )
        return page

    @staticmethod
    def command(page: Any, command: str, args: dict[str, Any] | None = None, *, wait: bool = True) -> Any:
        """Run a JupyterLab command; ``wait=False`` does not wait for it (running cells that block)."""
        if wait:
            return page.evaluate("([c, a]) => window.jupyterapp.commands.execute(c, a)", [command, args or {}])
        return page.evaluate("([c, a]) => { window.jupyterapp.commands.execute(c, a); }", [command, args or {}])

    def run_all(self, page: Any) -> None:
        self.command(page, "notebook:run-all-cells", wait=False)

    def run_cells(self, page: Any, *indices: int) -> None:
        """Run these cells (0-based) one after the other, as Shift+Enter on each would (they queue)."""
        for index in indices:
            page.evaluate("i => { window.jupyterapp.shell.currentWidget.content.activeCellIndex = i; }", index)
            self.command(page, "notebook:run-cell", wait=False)

    def save(self, page: Any, notebook: str) -> dict[str, Any]:
        """Save (widget state included) and return the notebook as written to disk."""
        path = self.root / notebook
        before = path.stat().st_mtime_ns
        self.command(page, "docmanager:save")
        deadline = time.monotonic() + 20
        while path.stat().st_mtime_ns == before:
            if time.monotonic() > deadline:
                raise AssertionError(f"{notebook} was not saved")
            time.sleep(0.1)
        time.sleep(0.3)
        return dict(json.loads(path.read_text()))

    def theme(self, page: Any, name: str) -> None:
        self.command(page, "apputils:change-theme", {"theme": name})
        dark = "Dark" in name
        page.wait_for_function(
            """([t, dark]) => { if (document.body.dataset.jpThemeName !== t) return false;
                 const c = getComputedStyle(document.querySelector('.jp-Notebook')).backgroundColor.match(/\\d+/g);
                 const light = c && (Number(c[0]) + Number(c[1]) + Number(c[2])) > 384;
                 return dark ? !light : light; }""",
            arg=[name, dark],
            timeout=20_000,
        )
        page.wait_for_timeout(300)

    @staticmethod
    def shot(page_or_locator: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page_or_locator.screenshot(path=str(path))
        return path
