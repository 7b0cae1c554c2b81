"""nbauth's goals, checked on the measured figures, and the report: bench/RESULTS.md and bench/refresh.png."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.overhead import CONTROL
from bench.peers import LIBRARIES

DISTRIBUTIONS = (
    "nbauth",
    "requests",
    "requests-oauthlib",
    "oauthlib",
    "Authlib",
    "requests-auth",
    "httpx-auth",
    "httpx",
    "matplotlib",
)
HOW = {
    "nbauth": "`nbauth.Keycloak(origin, 'demo', client_id=..., client_auth='none').get_token_by_password(...)`; "
    "other processes: `nbauth.session('demo')` with a shared `NBAUTH_CACHE_DIR`. Leeway min(60 s, half "
    "the lifetime) = 1.5 s here.",
    "requests-oauthlib": "`OAuth2Session(client=LegacyApplicationClient(client_id), auto_refresh_url=token_url, "
    "auto_refresh_kwargs={'client_id': ...}, token_updater=save)`, login with `fetch_token`. "
    "Refreshes once the token has expired (no leeway). Other processes start from the JSON "
    "file `token_updater` writes (no cache of its own).",
    "authlib": "`authlib.integrations.requests_client.OAuth2Session(client_id, token_endpoint=token_url, "
    "update_token=save)` (leeway: default 60 s), login with `fetch_token(grant_type='password')`. "
    "Other processes start from the JSON file `update_token` writes (no cache of its own).",
    "requests-auth": "`requests.Session().auth = OAuth2ResourceOwnerPasswordCredentials(token_url, user, password, "
    "scope=..., client_id=...)` (early_expiry: default 30 s), "
    "`OAuth2.token_cache = JsonTokenFileCache(path)` shared by all processes; logs in on the "
    "first request and falls back to the password grant when a refresh fails.",
    "httpx-auth": "`httpx.Client(auth=OAuth2ResourceOwnerPasswordCredentials(token_url, user, password, "
    "scope=..., client_id=...))` (early_expiry: default 30 s), `OAuth2.token_cache = "
    "JsonTokenFileCache(path)` shared by all processes; same token cache logic as requests-auth.",
}


def goals(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """(goal, measured, met) for each of nbauth's stated goals."""
    t, p, lo = r["threads32"]["nbauth"], r["processes"]["nbauth"], r["loop"]["nbauth"]
    calls = lo["ok"] + lo["failed"]
    o, imp, re = r["overhead"]["nbauth"], r["imports"], r["reuse"]["nbauth"]
    return [
        (
            "32 threads on an expired token: 1 token request, 0 failed calls",
            f"{t['token_requests']} token request(s), {t['failed']} failed",
            t["token_requests"] == 1 and t["failed"] == 0,
        ),
        (
            f"{p['processes']} processes x {p['threads']} threads: 1 token request per expiry, 0 failed calls",
            f"{p['token_requests_per_round']} per expiry, {p['failed']} failed",
            all(n == 1 for n in p["token_requests_per_round"]) and p["failed"] == 0,
        ),
        (
            "12 s of calls every 0.4 s: 0 sent with an expired token",
            f"{lo['invalid_at_api']} at the API, {lo['sent_expired_client']} by the client's clock",
            lo["invalid_at_api"] == 0 and lo["sent_expired_client"] == 0 and lo["failed"] == 0,
        ),
        (
            "12 s of calls every 0.4 s: refreshes well below calls (at most half)",
            f"{lo['refreshes']} refreshes for {calls} calls",
            lo["refreshes"] <= calls / 2,
        ),
        ("per-request overhead <= 1.05x a bare requests.Session", f"x{o['ratio']:.3f}", o["ratio"] <= 1.05),
        (
            "import nbauth <= 1.15x import requests_oauthlib, no ipywidgets",
            f"x{imp['ratio']:.3f}, ipywidgets {'loaded' if imp['modules']['nbauth']['ipywidgets'] else 'not loaded'}",
            imp["ratio"] <= 1.15 and not imp["modules"]["nbauth"]["ipywidgets"],
        ),
        (
            "a new process reuses a login with 0 token requests",
            f"{re['token_requests']} token request(s), {re['failed']} failed",
            re["token_requests"] == 0 and re["failed"] == 0,
        ),
    ]


def _sh(*cmd: str) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return "?"


def machine() -> dict[str, str]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "?",
    )
    mem = next(
        (line.split()[1] for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")), "0"
    )
    versions = []
    for dist in DISTRIBUTIONS:
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (missing)")
    return {
        "date": _sh("date", "-u"),
        "uname": _sh("uname", "-a"),
        "cpu": f"{os.cpu_count()} x {cpu}, {int(mem) / 1024 / 1024:.0f} GiB RAM",
        "python": sys.version.split()[0],
        "node": _sh("node", "--version"),
        "versions": ", ".join(versions),
    }


def _x(peer: float, ours: float, lib: str = "") -> str:
    """A peer's figure as a ratio to nbauth's."""
    if lib == "nbauth":
        return "-"
    if ours:
        return f"x{peer / ours:.1f}"
    return "=" if peer == 0 else "n/a (nbauth: 0)"


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _table(head: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return [*lines, ""]


def _refresh_sections(r: dict[str, Any], libs: list[str]) -> list[str]:
    t32, pr, lo = r["threads32"], r["processes"], r["loop"]
    p0, l0 = pr["nbauth"], lo["nbauth"]
    return [
        "## 32 threads, one session, expired token",
        "",
        "Log in, wait until the access token has expired, release 32 threads at once through a barrier, "
        "one API call each.",
        "",
        *_table(
            ["library", "token requests", "vs nbauth", "by grant:status", "failed calls", "errors"],
            [
                [
                    lib,
                    t32[lib]["token_requests"],
                    _x(t32[lib]["token_requests"], t32["nbauth"]["token_requests"], lib),
                    _counts(t32[lib]["by_grant"]),
                    f"{t32[lib]['failed']} / {t32[lib]['threads']}",
                    _counts(t32[lib]["errors"]),
                ]
                for lib in libs
            ],
        ),
        f"## {p0['processes']} processes x {p0['threads']} threads sharing one login",
        "",
        f"One login in a parent process; {p0['processes']} new processes pick it up (the best sharing each "
        f"library offers, see below) and release {p0['threads']} threads each at once on the expired token; "
        f"{p0['rounds']} rounds, each on a freshly expired token.",
        "",
        *_table(
            ["library", "token requests", "per expiry", "vs nbauth", "by grant:status", "failed calls", "errors"],
            [
                [
                    lib,
                    pr[lib]["token_requests"],
                    f"{pr[lib]['per_expiry']:g}",
                    _x(pr[lib]["per_expiry"], p0["per_expiry"], lib),
                    _counts(pr[lib]["by_grant"]),
                    f"{pr[lib]['failed']} / {pr[lib]['ok'] + pr[lib]['failed']}",
                    _counts(pr[lib]["errors"]),
                ]
                for lib in libs
            ],
        ),
        f"## {l0['seconds']:g} s of calls, one every {l0['every']:g} s (3-second tokens)",
        "",
        "A fresh login, then one call every 0.4 s. Sent expired: 401 `invalid_token` at the API / by the "
        "client's own clock as the request left.",
        "",
        *_table(
            ["library", "calls", "refreshes", "vs nbauth", "token requests", "sent expired (API / client)", "failed"],
            [
                [
                    lib,
                    lo[lib]["ok"] + lo[lib]["failed"],
                    lo[lib]["refreshes"],
                    _x(lo[lib]["refreshes"], l0["refreshes"], lib),
                    lo[lib]["token_requests"],
                    f"{lo[lib]['invalid_at_api']} / {lo[lib]['sent_expired_client']}",
                    lo[lib]["failed"],
                ]
                for lib in libs
            ],
        ),
    ]


def _cost_sections(r: dict[str, Any], libs: list[str]) -> list[str]:
    ru, ov, imp = r["reuse"], r["overhead"], r["imports"]
    base = imp["modules"]["requests_oauthlib"]["median_ms"]
    return [
        "## A new process reuses a login (300-second tokens)",
        "",
        *_table(
            ["library", "token requests in the new process", "failed", "how the login reached it"],
            [[lib, ru[lib]["token_requests"], ru[lib]["failed"], REUSE_HOW[lib]] for lib in libs],
        ),
        "## Per-request overhead (bare loopback server answering 200, valid 300-second token)",
        "",
        f"{ov['nbauth']['requests']} timed requests per client, in interleaved batches; ratio = median over "
        "batches of (median latency / the bare session's median latency in the same batch). The A/A control, a "
        "second bare `requests.Session` measured the same way, shows the noise floor. The goal is checked on "
        "the latency ratio; the client's CPU time per request (median over batches) barely depends on the "
        "load of the machine.",
        "",
        *_table(
            [
                "client",
                "median latency",
                "p90",
                "ratio",
                "batch ratios, 25-75 %",
                "client CPU / request",
                "CPU ratio",
                "baseline",
            ],
            [
                [
                    name,
                    f"{ov[name]['median_us']:.0f} us",
                    f"{ov[name]['p90_us']:.0f} us",
                    f"x{ov[name]['ratio']:.3f}" if "ratio" in ov[name] else "-",
                    "{:.3f}-{:.3f}".format(*ov[name]["ratio_iqr"]) if "ratio" in ov[name] else "-",
                    f"{ov[name]['cpu_us']:.0f} us",
                    f"x{ov[name]['cpu_ratio']:.3f}" if "ratio" in ov[name] else "-",
                    ov[name].get("baseline", "(baseline)"),
                ]
                for name in ("requests.Session", *libs, "httpx.Client", CONTROL)
            ],
        ),
        "## Import time and memory (fresh interpreter per run, warm file cache, bytecode cached)",
        "",
        *_table(
            ["module", "runs", "median import time", "vs requests_oauthlib", "RSS after import", "ipywidgets loaded"],
            [
                [
                    f"`{m}`",
                    v["runs"],
                    f"{v['median_ms']:.0f} ms",
                    f"x{v['median_ms'] / base:.2f}",
                    f"{v['rss_mib']:.1f} MiB",
                    "yes" if v["ipywidgets"] else "no",
                ]
                for m, v in imp["modules"].items()
            ],
        ),
        "nbauth imports requests_oauthlib, so `import nbauth` is `import requests_oauthlib` plus what nbauth "
        f"adds: {imp['added_ms']:.1f} ms (median of {imp['modules']['nbauth']['runs']} runs, timed in the same "
        "interpreter right after `import requests_oauthlib`). The goal is checked on (requests_oauthlib's median + "
        f"that) / requests_oauthlib's median = x{imp['ratio']:.3f}. The plain ratio of the two medians is "
        f"x{imp['ratio_of_medians']:.3f}; the ratios of the interleaved pairs of runs spread over "
        "{:.3f}-{:.3f} (25-75 %), the noise of this machine, which is why it is not the one checked. ".format(
            *imp["paired_iqr"]
        )
        + f"Under `-X importtime`, `import nbauth` after `import requests_oauthlib` takes "
        f"{imp['heaviest']['total_ms']:.1f} ms; heaviest modules (self time): "
        + ", ".join(f"`{m}` {ms:.1f} ms" for m, ms in imp["heaviest"]["top"])
        + ".",
        "",
    ]


def markdown(r: dict[str, Any], info: dict[str, str], runtime: float, chart_path: str) -> str:
    libs = [lib for lib in LIBRARIES if lib in r["threads32"]]
    out = [
        "# nbauth benchmark results",
        "",
        f"Generated by `python -m bench.run` (see bench/README.md) on **{info['date']}**, in {runtime:.0f} s.",
        "",
        f"- Machine: `{info['uname']}`",
        f"- CPU: {info['cpu']}",
        f"- Python {info['python']}, Node.js {info['node']} (the loopback IdP: node-oidc-provider, tests/idp)",
        f"- Libraries: {info['versions']}",
        "",
        "All traffic on 127.0.0.1. IdP of the refresh scenarios: 3-second access tokens, refresh tokens rotated "
        "on every use (reusing a rotated one revokes the whole grant, RFC 9700 §4.14.2); the API checks every "
        "token by introspection. Token requests are counted by the IdP, not by the clients.",
        "",
        "## nbauth's goals",
        "",
        *_table(["goal", "measured", "met"], [[g, m, "yes" if ok else "**MISSED**"] for g, m, ok in goals(r)]),
        *_refresh_sections(r, libs),
        "![refresh figures per library](" + chart_path + ")",
        "",
        *_cost_sections(r, libs),
        "## How each library was configured",
        "",
        *[f"- **{lib}**: {HOW[lib]}" for lib in libs],
        "",
        "Notes: the IdP counts expiry in whole seconds (`exp <= now`, `iat` rounded down), so a "
        "3-second token dies at the API up to 1 s before `expires_in` on the client's clock says: a client that "
        "refreshes only once the token has expired by its clock (requests-oauthlib) sends some dead tokens, seen "
        "at the API and not by the client-side check. "
        "The peers need `OAUTHLIB_INSECURE_TRANSPORT` / `AUTHLIB_INSECURE_TRANSPORT` for plain http on "
        "loopback (nbauth allows loopback by itself). The client-side expiry check compares each API request, "
        "as it leaves, with the expiry the process learned (`expires_in` of the token responses it saw; for "
        "nbauth also tokens another process refreshed, read from its cache). Import figures run with a "
        "`PYTHONPYCACHEPREFIX`, so every module, the editable nbauth checkout included, loads from bytecode as "
        "after `pip install`.",
        "",
    ]
    return "\n".join(out)


REUSE_HOW = {
    "nbauth": "`nbauth.session('demo')` from the cache (`NBAUTH_CACHE_DIR`)",
    "requests-oauthlib": "user code: token saved to JSON after login, `OAuth2Session(token=...)` from it",
    "authlib": "user code: token saved to JSON after login, `OAuth2Session(token=...)` from it",
    "requests-auth": "`JsonTokenFileCache` (default memory cache: a new password grant)",
    "httpx-auth": "`JsonTokenFileCache` (default memory cache: a new password grant)",
}


def chart(r: dict[str, Any], path: Path) -> None:
    """Grouped bars: the four refresh figures, one bar per library."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    libs = [lib for lib in LIBRARIES if lib in r["threads32"]]
    p0, lo0 = r["processes"]["nbauth"], r["loop"]["nbauth"]
    metrics = [
        ("token requests,\n32 threads on an expired token", [r["threads32"][lib]["token_requests"] for lib in libs]),
        (
            f"failed calls,\n{p0['processes']} processes x {p0['threads']} threads ({p0['rounds']} expiries)",
            [r["processes"][lib]["failed"] for lib in libs],
        ),
        (
            f"refreshes,\n{lo0['seconds']:g} s of calls every {lo0['every']:g} s",
            [r["loop"][lib]["refreshes"] for lib in libs],
        ),
        (
            f"requests sent with an expired token,\n{lo0['seconds']:g} s of calls (at the API)",
            [r["loop"][lib]["invalid_at_api"] for lib in libs],
        ),
    ]
    colors = ["#1f5fa8", "#d98c2b", "#8a6bbd", "#5a9e6f", "#c2504a"]
    fig, axes = plt.subplots(1, len(metrics), figsize=(14, 4.8), dpi=110)
    for ax, (name, values) in zip(axes, metrics, strict=True):
        bars = ax.bar(
            range(len(libs)),
            values,
            0.75,
            color=colors[: len(libs)],
            edgecolor=["black" if lib == "nbauth" else "none" for lib in libs],
            linewidth=1.2,
        )
        for bar, value, lib in zip(bars, values, libs, strict=True):
            ax.annotate(
                f"{value:g}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=10,
                fontweight="bold" if lib == "nbauth" else "normal",
            )
        ax.set_title(name, fontsize=10.5)
        ax.set_xticks([])
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylim(0, max(max(values), 1) * 1.18)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[0].set_ylabel("count (lower is better)")
    fig.legend(bars, libs, ncols=len(libs), loc="lower center", frameon=False, fontsize=10.5)
    fig.suptitle(
        "nbauth and its peers on 3-second access tokens with rotating refresh tokens (lower is better)", fontsize=12
    )
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path)
    plt.close(fig)
