"""Benchmark nbauth against its peers in one run: ``python -m bench.run`` (or ``python bench/run.py``).

Installs the ``bench`` extra when a peer is missing, starts the loopback IdPs (``npm ci`` first when
needed) and the API servers, runs every scenario (bench/scenarios.py), writes bench/RESULTS.md and
bench/refresh.png, prints a summary, and exits 1 when one of nbauth's goals is missed.
``--libs`` limits the libraries (a partial run writes bench/out/RESULTS.partial.md instead).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import report  # noqa: E402
from bench.peers import LIBRARIES  # noqa: E402

BENCH = ROOT / "bench"
PEER_MODULES = ("authlib", "requests_auth", "httpx_auth", "httpx", "matplotlib")


def say(line: str) -> None:
    print(line, flush=True)


def ensure_peers() -> None:
    """``pip install -e ".[bench]"`` when a peer library (or matplotlib) is not importable."""
    missing = [m for m in PEER_MODULES if importlib.util.find_spec(m) is None]
    if not missing:
        return
    say(f"installing the bench extra (missing: {', '.join(missing)}) ...")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", ".[bench]"], cwd=ROOT, check=True)
    importlib.invalidate_caches()


def prepare_env(out: Path) -> None:
    """Workers inherit this: bytecode cached (under bench/out), no proxies for loopback."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = str(out / "pycache")
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
    os.environ.pop("NBAUTH_CACHE", None)  # the scenarios need the persistent cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--libs", default="", help="comma-separated subset of libraries (nbauth is always run)")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="work directory (logs, caches)")
    parser.add_argument("--report-only", action="store_true", help="rewrite the report from the last results.json")
    args = parser.parse_args(argv)
    work = args.out.resolve() / "run"
    if args.report_only:
        return write_report(json.loads((work / "results.json").read_text()), args.out)
    started = time.monotonic()
    ensure_peers()
    from bench import scenarios
    from bench.servers import ApiServer, start_idps

    libs = (
        LIBRARIES
        if not args.libs
        else tuple(lib for lib in LIBRARIES if lib == "nbauth" or lib in args.libs.split(","))
    )
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    prepare_env(args.out.resolve())
    say("starting the loopback IdPs (3-second and 300-second access tokens, rotating refresh tokens) ...")
    short, long = start_idps(work)
    apis = [ApiServer(short.endpoint("introspection_endpoint")), ApiServer(long.endpoint("introspection_endpoint"))]
    try:
        bench = scenarios.Bench(short, long, apis[0], apis[1], work, say)
        say(f"IdP {short.issuer} (3 s tokens), {long.issuer} (300 s tokens); running {', '.join(libs)}")
        results = scenarios.run_all(bench, libs)
    finally:
        for api in apis:
            api.stop()
        short.stop()
        long.stop()
    from bench import scaleout

    say("scale-out with dask (bench/scaleout.py): the same tasks for nbauth, the peers and a static header ...")
    results["scaleout"] = scaleout.run(work / "scaleout", say)
    results["runtime_s"] = time.monotonic() - started
    results["machine"] = report.machine()
    (work / "results.json").write_text(json.dumps(results, indent=1))
    return write_report(results, args.out)


def write_report(results: dict[str, Any], out: Path) -> int:
    """RESULTS.md + refresh.png (bench/ for a run of every library, else under ``out``); 1 if a goal is missed."""
    runtime = results["runtime_s"]
    full = all(lib in results["threads32"] for lib in LIBRARIES)
    target = BENCH / "RESULTS.md" if full else out / "RESULTS.partial.md"
    png = BENCH / "refresh.png" if full else out / "refresh.partial.png"
    report.chart(results, png)
    text = report.markdown(results, results["machine"], runtime, os.path.relpath(png, target.parent))
    old = target.read_text() if target.exists() else ""
    begin, end = "<!-- data-tools:begin -->", "<!-- data-tools:end -->"
    if begin in old and end in old:  # bench/data.py's section (python -m bench.data) is kept
        text = text.rstrip("\n") + "\n\n" + begin + old.split(begin, 1)[1].split(end, 1)[0] + end + "\n"
    target.write_text(text)
    scaleout_goals: list[tuple[str, str, bool]] = []
    if "scaleout" in results:
        from bench import scaleout

        scaleout.write_section(results["scaleout"], target)
        scaleout_goals = scaleout.goals(results["scaleout"])
    say(f"\nwrote {os.path.relpath(target, ROOT)} and {os.path.relpath(png, ROOT)} ({runtime:.0f} s)\n")
    missed = 0
    for goal, measured, ok in report.goals(results) + scaleout_goals:
        say(f"  [{'ok' if ok else 'MISSED'}] {goal}: {measured}")
        missed += not ok
    say(f"\n{'all of nbauth goals met' if not missed else f'{missed} of nbauth goals missed'}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
