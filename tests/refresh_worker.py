"""A kernel stand-in for the multi-process refresh tests: restore a session from the shared cache and
call an API from several threads. Prints one JSON line: {"ok": n, "failed": n, "errors": [...]}.

    python tests/refresh_worker.py NAME URL THREADS SECONDS INTERVAL [START_AT]
"""

import json
import sys
import threading
import time

import nbauth


def main() -> None:
    name, url = sys.argv[1], sys.argv[2]
    threads, seconds, interval = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    start_at = float(sys.argv[6]) if len(sys.argv) > 6 else 0.0
    api = nbauth.session(name)
    results = {"ok": 0, "failed": 0, "errors": []}
    lock = threading.Lock()
    while time.time() < start_at:  # all processes start their calls at the same moment
        time.sleep(0.001)
    end = time.monotonic() + seconds

    def run() -> None:
        while True:
            try:
                r = api.get(url, timeout=10)
                good = r.status_code == 200
                err = None if good else f"HTTP {r.status_code}"
            except nbauth.AuthError as exc:
                good, err = False, f"{type(exc).__name__}: {exc}"
            with lock:
                results["ok" if good else "failed"] += 1
                if err and len(results["errors"]) < 5:
                    results["errors"].append(err)
            if time.monotonic() >= end:
                return
            time.sleep(interval)

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
