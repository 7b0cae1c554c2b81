"""./dev demo: the tour's local servers, the quick start run headless, then JupyterLab on a copy of the notebooks.

1. Starts the loopback servers of the notebook tour (notebooks/tour_servers.py): a real OpenID
   provider with Keycloak-shaped URLs (users alice / alice-password, bob / bob-password), the same
   provider in IdentityServer, SimpleIdServer and legacy-Keycloak shapes, a Fusio stand-in and a
   JSON-body token API.
2. Runs 01-quickstart.ipynb headless (a test driver in the kernel approves the device code as alice)
   and prints what each cell did (--no-headless skips it).
3. Opens JupyterLab on a working copy of notebooks/ (your edits and autosaves stay out of git), checks
   it answers, and prints the quick start's URL. Device codes are yours to approve there: open the
   link in the panel and sign in as alice / alice-password. Ctrl-C stops everything.

Exits non-zero, with the reason, when a part fails or dies: the quick start, an OpenID provider,
JupyterLab. --no-lab stops after step 2.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
QUICKSTART = "01-quickstart.ipynb"
DRIVER = "import sys\nsys.path.insert(0, {tests!r})\nfrom ui import driver\ndriver.start({admin!r})\n"
LAB_TIMEOUT = 120.0


class DemoFailed(Exception):
    """A part of the demo failed; the message says which and why."""


def say(text: str) -> None:
    print(f"\033[1m[demo]\033[0m {text}", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./dev demo", description=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--no-lab", action="store_true", help="stop after the headless quick-start run")
    parser.add_argument("--no-headless", action="store_true", help="skip the headless quick-start run")
    parser.add_argument("--port", type=int, default=0, help="JupyterLab's port (default: a free one)")
    parser.add_argument("--keep", action="store_true", help="keep the working copy of the notebooks at the end")
    return parser.parse_args(argv)


def working_copy(workdir: Path) -> Path:
    """notebooks/ copied to ``workdir`` (autosave and edits never touch the repository)."""
    target = workdir / "notebooks"
    shutil.copytree(
        NOTEBOOKS,
        target,
        ignore=shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "conftest.py", "tour_servers.py"),
    )
    return target


def run_quickstart(env: dict[str, str], workdir: Path, notebooks: Path) -> None:
    import nbformat
    from idp.helpers import IdP
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    ipython_dir = workdir / "ipython-headless"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    admin = IdP(env["NBAUTH_DEMO_ISSUER"]).admin_url
    (startup / "50-nbauth-demo-driver.py").write_text(DRIVER.format(tests=str(ROOT / "tests"), admin=admin))
    kernel_env = {
        **env,
        "IPYTHONDIR": str(ipython_dir),
        "NBAUTH_UI": "widgets",
        "NBAUTH_CACHE_DIR": str(workdir / "headless-cache"),
    }
    nb = nbformat.read(notebooks / QUICKSTART, as_version=4)  # run in memory: the copy stays clean
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(notebooks)}})
    old = dict(os.environ)
    os.environ.update(kernel_env)  # the kernel inherits this process's environment
    try:
        client.execute()
    except CellExecutionError as exc:
        raise DemoFailed(f"the headless quick start failed:\n{exc}") from None
    finally:
        os.environ.clear()
        os.environ.update(old)
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.get("outputs"):
            continue
        print("\n>>> " + cell.source.strip().splitlines()[-1])
        for out in cell.outputs:
            text = out.get("text") or out.get("data", {}).get("text/plain", "")
            if text:
                print(text.rstrip()[:1200])
    print(flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=3) as reply:  # noqa: S310 - our own loopback URL
            return bool(reply.status == 200)
    except (urllib.error.URLError, OSError):
        return False


class Lab:
    """JupyterLab on the working copy, its output in a log file, as root too (--allow-root)."""

    def __init__(self, env: dict[str, str], workdir: Path, notebooks: Path, port: int) -> None:
        self.token = secrets.token_urlsafe(16)
        self.port = port or free_port()
        self.log = workdir / "jupyterlab.log"
        lab_env = {
            **env,
            "NBAUTH_CACHE_DIR": str(workdir / "lab-cache"),
            "JUPYTER_RUNTIME_DIR": str(workdir / "jupyter-runtime"),
        }
        lab_env.pop("NBAUTH_UI", None)
        cmd = [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.root_dir={notebooks}",
        ]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")  # JupyterLab refuses root without it (containers, CI)
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(
                cmd, env=lab_env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}"

    def died(self) -> str | None:
        if self.proc.poll() is None:
            return None
        return f"JupyterLab exited (status {self.proc.returncode}); the end of {self.log}:\n{_tail(self.log)}"

    def wait_ready(self, tour: Any, timeout: float = LAB_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while not _answers(f"{self.base}/api/status?token={self.token}"):
            problem = self.died() or tour.dead()
            if problem:
                raise DemoFailed(problem)
            if time.monotonic() > deadline:
                raise DemoFailed(
                    f"JupyterLab did not answer within {timeout:.0f} s; the end of {self.log}:\n{_tail(self.log)}"
                )
            time.sleep(0.3)

    def supervise(self, tour: Any) -> None:
        """Until Ctrl-C (or SIGTERM): fail loudly as soon as JupyterLab or a provider dies."""
        while True:
            problem = self.died() or tour.dead()
            if problem:
                raise DemoFailed(problem)
            time.sleep(0.5)

    def stop(self) -> None:
        if self.proc.poll() is None:
            with _suppress_lookup():
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with _suppress_lookup():
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)


def _suppress_lookup() -> Any:
    import contextlib

    return contextlib.suppress(ProcessLookupError, PermissionError)


def run(args: argparse.Namespace, workdir: Path) -> None:
    sys.path[:0] = [str(ROOT / "tests"), str(NOTEBOOKS)]
    import tour_servers

    say("starting the local OpenID providers and stand-in servers")
    try:
        tour = tour_servers.start(workdir)
    except Exception as exc:  # node missing, npm packages missing, a port...
        raise DemoFailed(f"the local servers did not start: {exc}") from None
    lab: Lab | None = None
    try:
        env = {**os.environ, **tour.env}
        notebooks = working_copy(workdir)
        if not args.no_headless:
            say(f"running {QUICKSTART} headless (a test driver approves the device code as alice)")
            started = time.monotonic()
            run_quickstart(env, workdir, notebooks)
            say(f"quick start done in {time.monotonic() - started:.1f} s")
        if args.no_lab:
            return
        say(f"starting JupyterLab on a working copy of the notebooks: {notebooks}")
        lab = Lab(env, workdir, notebooks, args.port)
        lab.wait_ready(tour)
        say(f"ready: {lab.url(QUICKSTART)}")
        say("open that URL; sign in as alice / alice-password (or bob / bob-password) when a notebook asks.")
        say(f"the copy{' is kept' if args.keep else ' is deleted when the demo stops'}. Ctrl-C stops everything.")
        lab.supervise(tour)
    finally:
        if lab is not None:
            lab.stop()
        tour.stop()


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="nbauth-demo-"))
    try:
        run(args, workdir)
    except KeyboardInterrupt:
        say("stopped.")
    except DemoFailed as exc:
        say(f"FAILED: {exc}")
        return 1
    finally:
        if args.keep:
            say(f"kept {workdir / 'notebooks'}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
