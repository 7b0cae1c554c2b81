"""./dev demo: the local OpenID provider and the seed stand-ins, the quick start run headless, then JupyterLab.

1. Starts the loopback servers of the notebook tour (notebooks/tour_servers.py): a real OpenID
   provider with Keycloak-shaped URLs (users alice / alice-password, bob / bob-password), the same
   provider in IdentityServer, SimpleIdServer and legacy-Keycloak shapes, and stand-ins for Fusio and
   the JSON-body API of seed 001.
2. Runs notebooks/01-quickstart.ipynb headless (a test driver in the kernel approves the device code
   as alice) and prints what each cell did.
3. Opens JupyterLab on notebooks/ with those servers wired in (NBAUTH_DEMO_* variables). Device codes
   are yours to approve there: open the link in the panel and sign in as alice / alice-password.
   Ctrl-C stops everything. ``--no-lab`` stops after step 2.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
sys.path[:0] = [str(ROOT / "tests"), str(NOTEBOOKS)]

import tour_servers  # noqa: E402

DRIVER = "import sys\nsys.path.insert(0, {tests!r})\nfrom ui import driver\ndriver.start({admin!r})\n"


def say(text: str) -> None:
    print(f"\033[1m[demo]\033[0m {text}", flush=True)


def run_quickstart(env: dict[str, str], workdir: Path) -> bool:
    import nbformat
    from idp.helpers import IdP
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    ipython_dir = workdir / "ipython"
    startup = ipython_dir / "profile_default" / "startup"
    startup.mkdir(parents=True, exist_ok=True)
    admin = IdP(env["NBAUTH_DEMO_ISSUER"]).admin_url
    (startup / "50-nbauth-demo-driver.py").write_text(DRIVER.format(tests=str(ROOT / "tests"), admin=admin))
    kernel_env = {**os.environ, **env, "IPYTHONDIR": str(ipython_dir), "NBAUTH_UI": "widgets",
                  "NBAUTH_CACHE_DIR": str(workdir / "headless-cache")}
    nb = nbformat.read(NOTEBOOKS / "01-quickstart.ipynb", as_version=4)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}})
    old = dict(os.environ)
    os.environ.update(kernel_env)  # the kernel inherits this process's environment
    try:
        client.execute()
        ok = True
    except CellExecutionError as exc:
        say(f"a cell failed:\n{exc}")
        ok = False
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
    return ok


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_lab(env: dict[str, str], workdir: Path) -> None:
    token = secrets.token_urlsafe(16)
    port = free_port()
    lab_env = {**os.environ, **env, "NBAUTH_CACHE_DIR": str(workdir / "lab-cache")}
    lab_env.pop("NBAUTH_UI", None)
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.token={token}", f"--ServerApp.root_dir={NOTEBOOKS}"]
    proc = subprocess.Popen(cmd, env=lab_env)
    say(f"JupyterLab: http://127.0.0.1:{port}/lab?token={token}")
    say("sign in as alice / alice-password (or bob / bob-password) when a notebook asks. Ctrl-C stops.")
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=15)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-lab", action="store_true", help="stop after the headless quick-start run")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="nbauth-demo-"))
    say("starting the local OpenID provider and the seed stand-ins")
    tour = tour_servers.start(workdir)
    try:
        for name, value in sorted(tour.env.items()):
            say(f"  {name}={value}")
        say("running notebooks/01-quickstart.ipynb headless")
        started = time.monotonic()
        ok = run_quickstart(dict(tour.env), workdir)
        say(f"quick start {'done' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
        if not args.no_lab:
            run_lab(dict(tour.env), workdir)
        return 0 if ok else 1
    finally:
        tour.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
