"""One benchmark process: ``python -m bench.worker '<json job>'`` (started by bench/scenarios.py).

Jobs (``job["kind"]``):
- ``login``: log in with ``lib`` and leave the login in ``share``; prints ``DONE {...}``.
- ``burst``: log in (or restore from ``share``), print ``READY``, then for each ``go`` line on stdin
  release ``threads`` threads at once through a barrier, one API call each, and print ``DONE {...}``;
  ``quit`` ends.
- ``loop``: log in, ``READY``, on ``go`` call the API every ``every`` s for ``seconds`` s, ``DONE {...}``.
- ``reuse``: restore the login from ``share`` in this new process, make one call, ``DONE {...}``.
- ``overhead``: per-request latency of bare sessions and of each library on the bare server.

Protocol lines go to stdout; everything else (library logs, warnings) to stderr.
"""

from __future__ import annotations

import collections
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

from bench.peers import Call, Probe, open_client
from bench.servers import Target


class Tally:
    """Outcomes of API calls: ok (200) or failed (another status, or the exception's class name)."""

    def __init__(self) -> None:
        self.ok = 0
        self.failed: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def run(self, call: Call, url: str) -> None:
        try:
            status = call(url)
            outcome = "ok" if status == 200 else f"HTTP {status}"
        except Exception as exc:
            outcome = type(exc).__name__
        with self._lock:
            if outcome == "ok":
                self.ok += 1
            else:
                self.failed[outcome] += 1

    def result(self, probe: Probe) -> dict[str, Any]:
        with self._lock:
            return {"ok": self.ok, "failed": sum(self.failed.values()), "errors": dict(self.failed), **probe.counts()}


def _emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _client(job: dict[str, Any], restore: bool) -> tuple[Call, Probe]:
    target = Target(**job["target"])
    probe = Probe(target.token_url, job["api_url"])
    probe.install(job["lib"])
    call = open_client(job["lib"], target, Path(job["share"]), job["api_url"], restore=restore)
    probe.sent = probe.sent_expired = probe.unknown = 0  # the login's own request is not measured
    return call, probe


def burst(job: dict[str, Any]) -> None:
    call, probe = _client(job, restore=job.get("restore", False))
    tally = Tally()
    _emit("READY")
    for line in sys.stdin:
        if line.strip() != "go":
            break
        barrier = threading.Barrier(job["threads"])

        def one(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            tally.run(call, job["api_url"])

        threads = [threading.Thread(target=one) for _ in range(job["threads"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _emit("DONE " + json.dumps(tally.result(probe)))


def loop(job: dict[str, Any]) -> None:
    call, probe = _client(job, restore=False)
    tally = Tally()
    _emit("READY")
    if sys.stdin.readline().strip() != "go":
        return
    start = time.monotonic()
    for i in range(round(job["seconds"] / job["every"])):
        time.sleep(max(0.0, start + i * job["every"] - time.monotonic()))
        tally.run(call, job["api_url"])
    _emit("DONE " + json.dumps(tally.result(probe)))


def login(job: dict[str, Any]) -> None:
    _client(job, restore=False)
    _emit("DONE {}")


def reuse(job: dict[str, Any]) -> None:
    call, probe = _client(job, restore=True)
    tally = Tally()
    tally.run(call, job["api_url"])
    _emit("DONE " + json.dumps(tally.result(probe)))


def main() -> None:
    job = json.loads(sys.argv[1])
    if job["kind"] == "overhead":
        from bench.overhead import measure

        _emit("DONE " + json.dumps(measure(job)))
        return
    {"burst": burst, "loop": loop, "login": login, "reuse": reuse}[job["kind"]](job)


if __name__ == "__main__":
    main()
