"""./dev demo: starts non-interactively (as root in CI), JupyterLab answers, a dying part fails loudly.

scripts/demo.py runs with this interpreter (the test venv has JupyterLab; `./dev demo` gives it its own
light .venv-demo); the test reads its output until "ready: URL", asks JupyterLab, then stops it.
"""

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
READY = re.compile(r"ready: (http://127\.0\.0\.1:(\d+)/lab/tree/01-quickstart\.ipynb\?token=(\S+))")


class Demo:
    def __init__(self, *args):
        env = {k: v for k, v in os.environ.items() if not k.startswith("NBAUTH_")}
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "demo.py"), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
        self.lines, self.ready = [], threading.Event()
        self.url = self.port = self.token = None
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            found = READY.search(line)
            if found and not self.ready.is_set():
                self.url, self.port, self.token = found.group(1), int(found.group(2)), found.group(3)
                self.ready.set()

    @property
    def output(self):
        return "".join(self.lines)

    def wait_ready(self, timeout=240):
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.5):
            assert self.proc.poll() is None, f"the demo exited ({self.proc.returncode}):\n{self.output}"
            assert time.monotonic() < deadline, f"not ready after {timeout} s:\n{self.output}"

    def wait(self, timeout=60):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


def lab_pid(port):
    """The JupyterLab server listening on ``port`` (Linux /proc; the demo does not print it)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if f"--ServerApp.port={port}".encode() in cmdline:
                return int(entry.name)
    raise AssertionError(f"no JupyterLab process on port {port}")


def git_status(path):
    return subprocess.run(
        ["git", "status", "--porcelain", "--", str(path)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout


def test_demo_starts_answers_and_stops_cleanly():
    before = git_status(ROOT / "notebooks")
    demo = Demo()
    try:
        demo.wait_ready()
        assert "quick start done" in demo.output, demo.output
        status = requests.get(f"http://127.0.0.1:{demo.port}/api/status", params={"token": demo.token}, timeout=10)
        assert status.status_code == 200
        page = requests.get(demo.url, timeout=30)
        assert page.status_code == 200 and "JupyterLab" in page.text
        contents = requests.get(
            f"http://127.0.0.1:{demo.port}/api/contents/01-quickstart.ipynb", params={"token": demo.token}, timeout=10
        ).json()
        # a save through JupyterLab (what autosave does) lands in the working copy, not in notebooks/
        saved = requests.put(
            f"http://127.0.0.1:{demo.port}/api/contents/01-quickstart.ipynb",
            params={"token": demo.token},
            json={"type": "notebook", "format": "json", "content": contents["content"]},
            timeout=10,
        )
        assert saved.status_code == 200
        assert git_status(ROOT / "notebooks") == before
    finally:
        os.killpg(demo.proc.pid, signal.SIGINT)
    assert demo.wait() == 0, demo.output
    assert "stopped." in demo.output


def test_demo_fails_loudly_when_jupyterlab_dies():
    demo = Demo("--no-headless")
    try:
        demo.wait_ready()
        os.kill(lab_pid(demo.port), signal.SIGKILL)
        assert demo.wait() == 1, demo.output
    finally:
        if demo.proc.poll() is None:
            os.killpg(demo.proc.pid, signal.SIGKILL)
    assert "FAILED: JupyterLab exited" in demo.output, demo.output


def test_help_needs_no_setup(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    for args in (["help"], ["demo", "--help"]):
        out = subprocess.run(
            [str(ROOT / "dev"), *args], capture_output=True, text=True, timeout=30, env=env, cwd=tmp_path
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.startswith("usage: ./dev"), out.stdout
        assert "installing" not in out.stderr and "creating" not in out.stderr
        assert "set -euo" not in out.stdout and "#!" not in out.stdout  # help text, not script lines
    unknown = subprocess.run([str(ROOT / "dev"), "nope"], capture_output=True, text=True, timeout=30, env=env)
    assert unknown.returncode == 2 and "unknown command: nope" in unknown.stderr
