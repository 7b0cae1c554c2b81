"""Per-request overhead: each library's session against a bare one, on the bare "200 OK" server.

Every client gets a valid 300-second token first (so no refresh happens while timing), then the
clients take turns in batches (the order rotates each batch) and every request is timed alone.
The ratio of a library is the median, over batches, of (its median latency / the bare session's
median latency in the same batch): drift and noise hit both sides of each ratio alike. A second bare
``requests.Session`` is timed the same way (an A/A control): its ratio shows the noise floor. The
client's CPU time per request (its thread's CPU clock over each batch) is reported too: it hardly
moves when other processes load the machine.
"""

from __future__ import annotations

import gc
import statistics
import time
from pathlib import Path
from typing import Any

from bench.peers import LIBRARIES, Call, open_client
from bench.servers import Target

#: the bare session each library is compared with (httpx-auth is an httpx auth, the others use requests)
BASELINE = {lib: "requests.Session" for lib in LIBRARIES} | {"httpx-auth": "httpx.Client"}
CONTROL = "requests.Session (A/A control)"


def _bare_requests() -> Call:
    import requests

    session = requests.Session()
    return lambda url: session.get(url, timeout=30).status_code


def _bare_httpx() -> Call:
    import httpx

    client = httpx.Client(timeout=30)
    return lambda url: client.get(url).status_code


def _timed(call: Call, url: str, n: int) -> tuple[list[float], float]:
    """Each request's latency (us), and the client thread's CPU time per request (us) over the batch."""
    out = []
    clock = time.perf_counter_ns
    cpu = time.thread_time_ns()
    for _ in range(n):
        start = clock()
        call(url)
        out.append((clock() - start) / 1000.0)
    return out, (time.thread_time_ns() - cpu) / 1000.0 / n


def measure(job: dict[str, Any]) -> dict[str, Any]:
    url, target, share = job["ok_url"], Target(**job["target"]), Path(job["share"])
    clients: dict[str, Call] = {
        "requests.Session": _bare_requests(),
        CONTROL: _bare_requests(),
        "httpx.Client": _bare_httpx(),
    }
    for lib in LIBRARIES:
        clients[lib] = open_client(lib, target, share / lib, url, restore=False)
    for name, call in clients.items():
        if call(url) != 200:
            raise RuntimeError(f"{name}: the bare server did not answer 200")
        _timed(call, url, job["warmup"])
    names = list(clients)
    latency: dict[str, list[list[float]]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    for b in range(job["batches"]):
        order = names[b % len(names) :] + names[: b % len(names)]
        for name in order:
            gc.collect()
            gc.disable()
            try:
                batch, cpu_per_request = _timed(clients[name], url, job["batch_size"])
            finally:
                gc.enable()
            latency[name].append(batch)
            cpu[name].append(cpu_per_request)
    result: dict[str, Any] = {}
    for name in names:
        every = [x for batch in latency[name] for x in batch]
        result[name] = {
            "requests": len(every),
            "median_us": statistics.median(every),
            "p90_us": statistics.quantiles(every, n=10)[-1],
            "cpu_us": statistics.median(cpu[name]),
        }
    for lib in (*LIBRARIES, CONTROL):
        base = BASELINE.get(lib, "requests.Session")
        paired = [
            statistics.median(mine) / statistics.median(theirs)
            for mine, theirs in zip(latency[lib], latency[base], strict=True)
        ]
        quartiles = statistics.quantiles(paired, n=4)
        cpu_paired = [mine / theirs for mine, theirs in zip(cpu[lib], cpu[base], strict=True)]
        result[lib].update(
            baseline=base,
            ratio=statistics.median(paired),
            ratio_iqr=(quartiles[0], quartiles[2]),
            ratio_of_medians=result[lib]["median_us"] / result[base]["median_us"],
            cpu_ratio=statistics.median(cpu_paired),
        )
    return result
