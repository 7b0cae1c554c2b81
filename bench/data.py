"""Data tools through nbauth vs the same tool with a static Bearer header: ``python -m bench.data``.

One run, on loopback: the test IdP with 3-second RFC 9068 JWT access tokens and the protected data
server of the tests (tests/servers/data.py: every request's token checked against the JWKS, no
leeway on ``exp``).

1. Throughput, unthrottled: each reader (pandas CSV and Parquet, pyarrow table and dataset, polars,
   DuckDB, dask.dataframe) reads the same files through ``session.filesystem()`` /
   ``session.storage_options()`` and through fsspec's stock HTTP filesystem with a static
   ``Authorization`` header (the peer: what users do today), interleaved, median of N runs each;
   goal: nbauth within 5 % (ratio <= 1.05). A fresh login before each pair keeps the static token valid.
2. Mid-read expiry, throttled (1.6 MB/s): a read lasting several token lifetimes with the static
   header fails once its token expires; through nbauth it returns the right data.

Writes the "Data tools" section of bench/RESULTS.md (between markers, the rest is kept) and exits 1
when a goal is missed.
"""

from __future__ import annotations

import argparse
import io
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
for extra in (ROOT, ROOT / "tests"):
    if str(extra) not in sys.path:
        sys.path.insert(0, str(extra))

import dask  # noqa: E402
import dask.dataframe as dd  # noqa: E402
import duckdb  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import polars as pl  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.dataset as pads  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from fsspec.implementations.http import HTTPFileSystem  # noqa: E402
from idp.helpers import start_idp  # noqa: E402
from servers.data import DataServer  # noqa: E402

import nbauth  # noqa: E402
import nbauth.duckdb  # noqa: E402

BEGIN, END = "<!-- data-tools:begin -->", "<!-- data-tools:end -->"
DATA_IDP_ENV = {"IDP_TTL_AccessToken": "3", "IDP_DEFAULT_RESOURCE": "urn:demo:api"}
GOAL = 1.05


def make_files(server: DataServer, rows: int) -> dict[str, str]:
    rng = np.random.default_rng(13)
    frame = pd.DataFrame(
        {
            "id": np.arange(rows, dtype="int64"),
            "x": rng.random(rows),
            "k": rng.integers(0, 1 << 62, rows, dtype="int64"),
        }
    )
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), buf, row_group_size=100_000)
    urls = {
        "parquet": server.add("/data/big.parquet", buf.getvalue()),
        "csv": server.add("/data/big.csv", frame.head(rows // 2).to_csv(index=False).encode()),
    }
    step = rows // 4
    for i in range(4):
        part = io.BytesIO()
        pq.write_table(pa.Table.from_pandas(frame.iloc[i * step : (i + 1) * step], preserve_index=False), part)
        server.add(f"/data/parts/part-{i}.parquet", part.getvalue())
    urls["parts"] = server.url + "/data/parts/"
    urls["prefix"] = server.url + "/data/"
    return urls


def readers(urls: dict[str, str]) -> dict[str, Callable[[Any, dict[str, Any]], float]]:
    """name -> f(fs, storage_options) returning sum(x): the same call for nbauth and for the static peer."""

    def duck(fs: Any, _: dict[str, Any]) -> float:
        con = duckdb.connect()
        fs.cache_type = "none"  # what the bridge needs (nbauth.duckdb.attach sets it)
        con.register_filesystem(fs)
        return float(con.sql(f"SELECT sum(x) FROM read_parquet('{urls['parquet']}')").fetchall()[0][0])

    def dask_(_: Any, options: dict[str, Any]) -> float:
        ddf = dd.read_parquet(urls["parts"] + "*.parquet", storage_options=options)
        with dask.config.set(scheduler="threads"):
            return float(ddf["x"].sum().compute())

    return {
        "pandas.read_csv(fs.open)": lambda fs, _: float(pd.read_csv(fs.open(urls["csv"]))["x"].sum()),
        "pandas.read_parquet(filesystem=)": lambda fs, _: float(
            pd.read_parquet(urls["parquet"], filesystem=fs)["x"].sum()
        ),
        "pyarrow.parquet.read_table": lambda fs, _: float(
            pq.read_table(urls["parquet"], filesystem=fs).column("x").to_numpy().sum()
        ),
        "pyarrow.dataset over fs.glob": lambda fs, _: float(
            pads.dataset(fs.glob(urls["parts"] + "*.parquet"), filesystem=fs, format="parquet")
            .to_table(columns=["x"])
            .column("x")
            .to_numpy()
            .sum()
        ),
        "polars.read_parquet(fs.open)": lambda fs, _: float(pl.read_parquet(fs.open(urls["parquet"]))["x"].sum()),
        "DuckDB (fsspec bridge)": duck,
        "dask.dataframe.read_parquet": dask_,
    }


class StaticHeaderFS(HTTPFileSystem):  # type: ignore[misc]
    """The peer: fsspec's stock HTTP filesystem, plus the ``modified()`` DuckDB's bridge requires."""

    def modified(self, path: str) -> Any:
        import datetime

        return datetime.datetime.fromtimestamp(0, tz=datetime.timezone.utc)


def static(api: nbauth.Session, **kw: Any) -> tuple[HTTPFileSystem, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {api.access_token}"}
    return StaticHeaderFS(headers=headers, skip_instance_cache=True, **kw), {"headers": headers}


def throughput(idp: Any, server: DataServer, urls: dict[str, str], runs: int) -> list[dict[str, Any]]:
    provider = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")
    rows = []
    for name, read in readers(urls).items():
        times: dict[str, list[float]] = {"nbauth": [], "static": []}
        for i in range(runs + 1):  # the first pair warms up
            api = provider.get_token_by_password("alice", "alice-password", force=True)
            order = ("nbauth", "static") if i % 2 else ("static", "nbauth")
            for who in order:
                fs, options = (api.filesystem(), api.storage_options()) if who == "nbauth" else static(api)
                started = time.perf_counter()
                read(fs, options)
                if i:
                    times[who].append(time.perf_counter() - started)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(
            {
                "reader": name,
                "nbauth_s": med["nbauth"],
                "static_s": med["static"],
                "ratio": med["nbauth"] / med["static"],
            }
        )
        print(
            f"  {name:36s} nbauth {med['nbauth']:.3f} s  static {med['static']:.3f} s  "
            f"x{med['nbauth'] / med['static']:.3f}",
            flush=True,
        )
    return rows


def mid_read_expiry(idp: Any, server: DataServer, urls: dict[str, str]) -> dict[str, Any]:
    provider = nbauth.Keycloak(idp.origin, "demo", client_id="public-client", client_auth="none")
    server.throttle = 1.6e6
    out: dict[str, Any] = {}
    try:
        for who in ("static", "nbauth"):
            api = provider.get_token_by_password("alice", "alice-password", force=True)
            fs = static(api, block_size=1 << 20)[0] if who == "static" else api.filesystem(block_size=1 << 20)
            before = idp.stats().get("token:refresh_token:200", 0)
            started = time.monotonic()
            try:
                value: Any = float(pd.read_csv(fs.open(urls["csv"]))["x"].sum())
            except Exception as exc:
                value = f"{type(exc).__name__}: {str(exc).splitlines()[0][:90]}"
            out[who] = {
                "result": value,
                "seconds": time.monotonic() - started,
                "refreshes": idp.stats().get("token:refresh_token:200", 0) - before,
            }
            print(f"  {who}: {out[who]}", flush=True)
    finally:
        server.throttle = None
    return out


def section(rows: list[dict[str, Any]], expiry: dict[str, Any], runs: int, took: float) -> str:
    lines = [
        BEGIN,
        "## Data tools (issue 13): `python -m bench.data`",
        "",
        f"Each reader through `session.filesystem()` / `session.storage_options()` against the same reader on "
        f"fsspec's stock HTTP filesystem with a static `Authorization` header, unthrottled loopback, "
        f"interleaved, median of {runs} runs each (one run took {took:.0f} s). Goal: ratio <= {GOAL}.",
        "",
        "| reader | nbauth (s) | static header (s) | ratio | goal |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        ok = "met" if r["ratio"] <= GOAL else "MISSED"
        lines.append(f"| {r['reader']} | {r['nbauth_s']:.3f} | {r['static_s']:.3f} | x{r['ratio']:.3f} | {ok} |")
    lines += [
        "",
        "Mid-read expiry: `pd.read_csv(fs.open(url))` of a CSV throttled to 1.6 MB/s (1 MB ranged reads), "
        "3-second tokens, the server checking `exp` with no leeway:",
        "",
        "| client | result | seconds | token refreshes |",
        "|---|---|---|---|",
    ]
    for who, r in expiry.items():
        result = f"sum(x) = {r['result']:.3f}" if isinstance(r["result"], float) else f"failed: `{r['result']}`"
        lines.append(f"| {who} | {result} | {r['seconds']:.1f} | {r['refreshes']} |")
    lines.append(END)
    return "\n".join(lines) + "\n"


def write(text: str, target: Path) -> None:
    old = target.read_text() if target.exists() else ""
    if BEGIN in old and END in old:
        head, rest = old.split(BEGIN, 1)
        new = head + text.rstrip("\n") + rest.split(END, 1)[1]
    else:
        new = old.rstrip("\n") + "\n\n" + text
    target.write_text(new)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.data", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        import os

        os.environ["NBAUTH_CACHE_DIR"] = str(Path(tmp) / "cache")
        idp = start_idp({**DATA_IDP_ENV}, Path(tmp) / "idp")
        try:
            with DataServer(idp.issuer, idp.endpoint("jwks_uri")) as server:
                urls = make_files(server, args.rows)
                print("throughput (unthrottled):", flush=True)
                rows = throughput(idp, server, urls, args.runs)
                print("mid-read expiry (throttled):", flush=True)
                expiry = mid_read_expiry(idp, server, urls)
        finally:
            idp.stop()
    write(section(rows, expiry, args.runs, time.monotonic() - started), args.out)
    missed = [r["reader"] for r in rows if r["ratio"] > GOAL]
    static_failed = not isinstance(expiry["static"]["result"], float)
    nbauth_ok = isinstance(expiry["nbauth"]["result"], float) and math.isfinite(expiry["nbauth"]["result"])
    if missed or not static_failed or not nbauth_ok:
        print(f"goal missed: {missed or ''} static_failed={static_failed} nbauth_ok={nbauth_ok}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
