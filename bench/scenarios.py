"""The scenarios: each runs the libraries one after the other in fresh worker processes.

Token requests are counted by the IdP (``/_admin/stats``, diffed around the measured part, so the
login itself is not counted); requests with an invalid (expired or revoked) token by the API
server; failed calls and the client-side expiry check by the workers (bench/worker.py).
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from bench.peers import LIBRARIES
from bench.servers import ROOT, ApiServer, IdP, OkServer, Target, token_requests

EXPIRED_AFTER = 3.6  # seconds after a login or refresh when a 3-second access token is surely expired


@dataclasses.dataclass
class Bench:
    """The running servers and where workers put their files."""

    short: IdP
    long: IdP
    api: ApiServer  # checks tokens of the short IdP
    api_long: ApiServer  # checks tokens of the long IdP
    out: Path
    say: Callable[[str], None] = print

    def job(self, kind: str, lib: str, scenario: str, *, long: bool = False, **extra: Any) -> dict[str, Any]:
        idp, api = (self.long, self.api_long) if long else (self.short, self.api)
        return {
            "kind": kind,
            "lib": lib,
            "target": dataclasses.asdict(Target.of(idp)),
            "api_url": api.url,
            "share": str(self.out / scenario / lib),
            **extra,
        }


class Worker:
    """A ``bench.worker`` process; its stdout lines arrive on a queue, its stderr goes to a log file."""

    def __init__(self, job: dict[str, Any], log: Path) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        self.log = log
        with log.open("a") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "bench.worker", json.dumps(job)],
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
            )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, word: str, timeout: float = 120.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                tail = self.log.read_text(errors="replace")[-3000:]
                raise RuntimeError(f"worker {self.proc.args[-1][:120]} gave no {word}; its log:\n{tail}")
            if line.startswith(word):
                rest = line[len(word) :].strip()
                return json.loads(rest) if rest else {}

    def result(self, timeout: float = 120.0) -> dict[str, Any]:
        """The DONE line of a one-shot job, once the process has exited."""
        done = self.expect("DONE", timeout)
        self.proc.wait(timeout=30)
        return done

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("quit")
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def _merge(results: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": 0, "failed": 0, "sent": 0, "sent_expired_client": 0, "unknown_tokens": 0}
    errors: collections.Counter[str] = collections.Counter()
    for r in results:
        for key in out:
            out[key] += r[key]
        errors.update(r["errors"])
    out["errors"] = dict(errors)
    return out


def _measured(bench: Bench, api: ApiServer, idp: IdP, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    stats, (_, invalid) = idp.stats(), api.snapshot()
    result = run()
    tokens = token_requests(stats, idp.stats())
    result.update(
        token_requests=sum(tokens.values()),
        by_grant=tokens,
        refreshes=sum(n for k, n in tokens.items() if k.startswith("refresh_token:")),
        invalid_at_api=api.snapshot()[1] - invalid,
    )
    return result


def threads32(bench: Bench, lib: str, threads: int = 32) -> dict[str, Any]:
    """One session, its token expired, ``threads`` threads call the API at the same instant."""
    w = Worker(bench.job("burst", lib, "threads32", threads=threads), bench.out / "logs" / f"threads32-{lib}.log")
    try:
        w.expect("READY")
        time.sleep(EXPIRED_AFTER)

        def burst() -> dict[str, Any]:
            w.send("go")
            return w.expect("DONE")

        return _measured(bench, bench.api, bench.short, burst) | {"threads": threads}
    finally:
        w.stop()


def processes(bench: Bench, lib: str, procs: int = 8, threads: int = 8, rounds: int = 2) -> dict[str, Any]:
    """One login shared by ``procs`` new processes of ``threads`` threads; each round starts on an expired token."""
    logs = bench.out / "logs"
    Worker(bench.job("login", lib, "processes"), logs / f"processes-{lib}-login.log").result()
    logged_in = time.monotonic()
    workers = [
        Worker(bench.job("burst", lib, "processes", threads=threads, restore=True), logs / f"processes-{lib}-{i}.log")
        for i in range(procs)
    ]
    try:
        for w in workers:
            w.expect("READY")
        time.sleep(max(0.0, logged_in + EXPIRED_AFTER - time.monotonic()))

        def run() -> dict[str, Any]:
            last: list[dict[str, Any]] = []
            per_round = []
            for r in range(rounds):
                if r:
                    time.sleep(EXPIRED_AFTER)
                before = bench.short.stats()
                for w in workers:
                    w.send("go")
                last = [w.expect("DONE") for w in workers]
                per_round.append(sum(token_requests(before, bench.short.stats()).values()))
            return _merge(last) | {"token_requests_per_round": per_round}

        result = _measured(bench, bench.api, bench.short, run)
    finally:
        for w in workers:
            w.stop()
    return result | {
        "processes": procs,
        "threads": threads,
        "rounds": rounds,
        "per_expiry": result["token_requests"] / rounds,
    }


def loop(bench: Bench, lib: str, seconds: float = 12.0, every: float = 0.4) -> dict[str, Any]:
    """A fresh login, then one call every ``every`` s for ``seconds`` s (3-second tokens)."""
    w = Worker(bench.job("loop", lib, "loop", seconds=seconds, every=every), bench.out / "logs" / f"loop-{lib}.log")
    try:
        w.expect("READY")

        def run() -> dict[str, Any]:
            w.send("go")
            return w.expect("DONE", timeout=seconds + 120)

        return _measured(bench, bench.api, bench.short, run) | {"seconds": seconds, "every": every}
    finally:
        w.stop()


def reuse(bench: Bench, lib: str) -> dict[str, Any]:
    """Log in (300-second tokens), then a new process picks the login up and calls the API once."""
    logs = bench.out / "logs"
    Worker(bench.job("login", lib, "reuse", long=True), logs / f"reuse-{lib}-login.log").result()
    job = bench.job("reuse", lib, "reuse", long=True)
    return _measured(bench, bench.api_long, bench.long, lambda: Worker(job, logs / f"reuse-{lib}.log").result())


def overhead(bench: Bench, batches: int = 40, batch_size: int = 100, warmup: int = 300) -> dict[str, Any]:
    server = OkServer()
    try:
        job = bench.job(
            "overhead",
            "all",
            "overhead",
            long=True,
            ok_url=server.url,
            batches=batches,
            batch_size=batch_size,
            warmup=warmup,
        )
        job["share"] = str(bench.out / "overhead")
        return Worker(job, bench.out / "logs" / "overhead.log").result(timeout=600)
    finally:
        server.stop()


_IMPORT = (
    "import sys, time; t = time.perf_counter(); import {module}; d = time.perf_counter() - t; "
    "rss = next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmRSS')); "
    "print(d, rss, int('ipywidgets' in sys.modules))"
)
#: What nbauth adds on top of its base, timed in the same interpreter right after ``import requests_oauthlib``.
_ADDED = "import time, requests_oauthlib; t = time.perf_counter(); import nbauth; print(time.perf_counter() - t)"
IMPORTS = {
    "requests_oauthlib": 31,
    "nbauth": 31,
    "requests": 7,
    "authlib.integrations.requests_client": 7,
    "requests_auth": 7,
    "httpx_auth": 7,
}


def imports(bench: Bench) -> dict[str, Any]:
    """Import time and RSS after import, each in a fresh interpreter (warm file cache), interleaved."""
    samples: dict[str, list[tuple[float, int, int]]] = {m: [] for m in IMPORTS}
    # warm the file cache and write the bytecode (an installed package ships it; PYTHONDONTWRITEBYTECODE,
    # set on some machines, would otherwise make nbauth compile from source on every run while the peers,
    # installed by pip, load theirs)
    warm_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for module in IMPORTS:
        subprocess.run([sys.executable, "-c", f"import {module}"], cwd=ROOT, check=True, env=warm_env)
    added: list[float] = []
    for i in range(max(IMPORTS.values())):
        out = subprocess.run([sys.executable, "-c", _ADDED], cwd=ROOT, check=True, capture_output=True, text=True)
        added.append(float(out.stdout.split()[0]))
        for module, runs in IMPORTS.items():
            if i < runs:
                out = subprocess.run(
                    [sys.executable, "-c", _IMPORT.format(module=module)],
                    cwd=ROOT,
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()
                samples[module].append((float(out[0]), int(out[1]), int(out[2])))
    modules = {
        m: {
            "runs": len(s),
            "median_ms": 1000 * statistics.median(x[0] for x in s),
            "rss_mib": statistics.median(x[1] for x in s) / 1024,
            "ipywidgets": any(x[2] for x in s),
        }
        for m, s in samples.items()
    }
    paired = [a[0] / b[0] for a, b in zip(samples["nbauth"], samples["requests_oauthlib"], strict=True)]
    quartiles = statistics.quantiles(paired, n=4)
    base = modules["requests_oauthlib"]["median_ms"]
    added_ms = 1000 * statistics.median(added)
    return {
        "modules": modules,
        # nbauth imports requests_oauthlib: its import is that one plus what nbauth adds, timed on its own
        "ratio": (base + added_ms) / base,
        "added_ms": added_ms,
        "ratio_of_medians": modules["nbauth"]["median_ms"] / base,
        "paired_iqr": (quartiles[0], quartiles[2]),
        "heaviest": _heaviest_nbauth_imports(),
    }


def _heaviest_nbauth_imports(top: int = 6) -> dict[str, Any]:
    """What ``import nbauth`` costs after requests_oauthlib (``-X importtime``, ms): in all, and the top modules."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import requests_oauthlib; import nbauth"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stderr.splitlines()
    rows = [line.split("|") for line in err if line.startswith("import time:") and "self [us]" not in line]
    start = next(i for i, r in enumerate(rows) if r[2].rstrip() == " requests_oauthlib") + 1
    extra = [(r[2].strip(), int(r[0].split(":")[1]) / 1000) for r in rows[start:]]
    total = next(int(r[1]) / 1000 for r in rows[start:] if r[2].rstrip() == " nbauth")
    return {"total_ms": total, "top": sorted(extra, key=lambda x: -x[1])[:top]}


def run_all(bench: Bench, libs: tuple[str, ...] = LIBRARIES) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name, fn in (("threads32", threads32), ("processes", processes), ("loop", loop), ("reuse", reuse)):
        results[name] = {}
        for lib in libs:
            started = time.monotonic()
            results[name][lib] = fn(bench, lib)
            r = results[name][lib]
            bench.say(
                f"  {name:<10} {lib:<18} token requests {r['token_requests']:>3}  refreshes {r['refreshes']:>3}"
                f"  failed {r['failed']:>3}  invalid at API {r['invalid_at_api']:>3}"
                f"  ({time.monotonic() - started:.1f} s)"
            )
    bench.say("  overhead: timing bare sessions and each library on the bare server ...")
    results["overhead"] = overhead(bench)
    for lib in libs:
        o = results["overhead"][lib]
        bench.say(f"  overhead   {lib:<18} {o['median_us']:.0f} us  x{o['ratio']:.3f} vs {o['baseline']}")
    bench.say("  imports: fresh interpreters ...")
    results["imports"] = imports(bench)
    modules = results["imports"]["modules"]
    bench.say(
        f"  import     nbauth {modules['nbauth']['median_ms']:.0f} ms vs requests_oauthlib "
        f"{modules['requests_oauthlib']['median_ms']:.0f} ms: x{results['imports']['ratio']:.3f}"
    )
    return results
