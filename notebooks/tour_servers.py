"""Loopback servers for the per-provider notebooks (10-15) and the unattended one (20).

FOR THE TOUR AND CI ONLY: plain http on 127.0.0.1, fixed demo users and secrets. They stand in
for the providers of the seed documents: IdentityServer, SimpleIdServer and Keycloak's legacy
``/auth`` layout (the loopback IdP of tests/idp in those URL shapes), Fusio and the JSON-body
token API of seed 001 (tests/servers), and a small protected API in front of the demo IdP.

    tour = start(tmp_dir, demo_issuer=os.environ.get("NBAUTH_DEMO_ISSUER"))
    os.environ.update(tour.env)        # before the notebook kernels start
    ...
    tour.stop()

``tour.env`` holds ``NBAUTH_DEMO_ISSUER`` (only started here when not given),
``NBAUTH_DEMO_IDENTITYSERVER``, ``NBAUTH_DEMO_SIMPLEIDSERVER``, ``NBAUTH_DEMO_KEYCLOAK_LEGACY``
(a server URL ending in ``/auth``), ``NBAUTH_DEMO_FUSIO``, ``NBAUTH_DEMO_JSON_API``,
``NBAUTH_DEMO_API`` (the protected API's ``/api/whoami``), ``NBAUTH_CONFIG`` (a 0600 profile
file with the ``demo`` and ``demo-service`` profiles used by 20-unattended), and for 31-data
``NBAUTH_DEMO_DATA_ISSUER`` (an IdP issuing 3-second JWT access tokens) with ``NBAUTH_DEMO_DATA``
(a protected file server checking them, tests/servers/data.py).

Run ``python notebooks/tour_servers.py`` to start them by hand: it prints ``export`` lines
and serves until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import sys
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from idp.helpers import IdP, start_idp  # noqa: E402
from servers.fusio import FusioServer  # noqa: E402
from servers.resource import ResourceServer  # noqa: E402
from servers.seed001 import Seed001Server  # noqa: E402

__all__ = ["Tour", "profiles_toml", "start"]

IDP_ENV = {"IDP_DEVICE_INTERVAL": "1"}


@dataclass
class Tour:
    """The running servers: ``env`` to export to the kernels, ``stop()`` when done."""

    env: dict[str, str] = field(default_factory=dict)
    _stops: list[Callable[[], None]] = field(default_factory=list)
    _idps: dict[str, IdP] = field(default_factory=dict)

    def dead(self) -> str | None:
        """Which loopback IdP has exited, and how (its log's tail), or None while all run."""
        for name, idp in self._idps.items():
            proc = idp.proc
            if proc is not None and proc.poll() is not None:
                tail = "\n".join(idp.log().splitlines()[-15:])
                return f"the {name} OpenID provider exited (status {proc.returncode}):\n{tail}"
        return None

    def stop(self) -> None:
        while self._stops:
            with contextlib.suppress(Exception):
                self._stops.pop()()

    def __enter__(self) -> Tour:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def profiles_toml(demo_issuer: str) -> str:
    """The tour's profile file: ``demo`` (a person, device flow) and ``demo-service`` (a job)."""
    server_url, _, realm = demo_issuer.rstrip("/").rpartition("/realms/")
    return f"""\
# nbauth profiles of the notebook tour (loopback demo IdP; for the tour only)
[demo]
preset = "keycloak"
server_url = "{server_url}"
realm = "{realm}"
client_id = "public-client"
client_auth = "none"
scope = "openid profile"
flow = "device"

[demo-service]
preset = "keycloak"
server_url = "{server_url}"
realm = "{realm}"
client_id = "service-client"
client_auth = "client_secret_post"
# allowed only because this file is 0600; prefer NBAUTH_CLIENT_SECRET or the keyring
client_secret = "service-secret"
flow = "client_credentials"
"""


def _idp(tour: Tour, workdir: Path, name: str, **env: str) -> IdP:
    idp = start_idp({**IDP_ENV, **env}, workdir / name)
    tour._stops.append(idp.stop)
    tour._idps[name] = idp
    return idp


def _data(tour: Tour, workdir: Path) -> None:
    """31-data: an IdP with 3-second JWT access tokens and a protected file server with small files."""
    import io

    import pandas as pd
    from servers.data import DataServer

    idp = _idp(tour, workdir, "data", IDP_TTL_AccessToken="3", IDP_DEFAULT_RESOURCE="urn:demo:api")
    server = DataServer(idp.issuer, idp.endpoint("jwks_uri")).start()
    tour._stops.append(server.stop)
    frame = pd.DataFrame(
        {
            "id": range(20_000),
            "region": ["north", "south", "east", "west"] * 5_000,
            "amount": [round(i * 0.37 % 100, 2) for i in range(20_000)],
        }
    )
    server.add("/data/sales.csv", frame.to_csv(index=False).encode())
    server.add("/data/events.jsonl", frame.head(1_000).to_json(orient="records", lines=True).encode())
    for i in range(4):
        buf = io.BytesIO()
        frame.iloc[i * 5_000 : (i + 1) * 5_000].to_parquet(buf, index=False)
        server.add(f"/data/orders/part-{i}.parquet", buf.getvalue())
    tour.env["NBAUTH_DEMO_DATA_ISSUER"] = idp.issuer
    tour.env["NBAUTH_DEMO_DATA"] = server.url + "/data/"


def start(workdir: Path, demo_issuer: str | None = None) -> Tour:
    """Start every tour server (about 3 s) and write the profile file under ``workdir``."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    tour = Tour()
    try:
        if demo_issuer is None:
            demo_issuer = _idp(tour, workdir, "keycloak").issuer
            tour.env["NBAUTH_DEMO_ISSUER"] = demo_issuer
        tour.env["NBAUTH_DEMO_IDENTITYSERVER"] = _idp(
            tour, workdir, "identityserver", IDP_SHAPE="identityserver"
        ).issuer
        tour.env["NBAUTH_DEMO_SIMPLEIDSERVER"] = _idp(
            tour, workdir, "simpleidserver", IDP_SHAPE="simpleidserver"
        ).origin
        tour.env["NBAUTH_DEMO_KEYCLOAK_LEGACY"] = (
            _idp(tour, workdir, "keycloak-legacy", IDP_PATH_PREFIX="/auth").origin + "/auth"
        )
        for server, var in ((FusioServer(), "NBAUTH_DEMO_FUSIO"), (Seed001Server(), "NBAUTH_DEMO_JSON_API")):
            server.start()
            tour._stops.append(server.stop)
            tour.env[var] = server.url
        api = ResourceServer(
            IdP(demo_issuer).endpoint("introspection_endpoint"), "confidential-client", "confidential-secret"
        ).start()
        tour._stops.append(api.stop)
        tour.env["NBAUTH_DEMO_API"] = api.whoami_url
        _data(tour, workdir)
        config = workdir / "profiles.toml"
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(profiles_toml(demo_issuer))
        os.chmod(config, 0o600)
        tour.env["NBAUTH_CONFIG"] = str(config)
    except BaseException:
        tour.stop()
        raise
    return tour


def _main() -> None:  # pragma: no cover - manual use
    import tempfile
    import time

    with tempfile.TemporaryDirectory(prefix="nbauth-tour-") as tmp, start(Path(tmp)) as tour:
        for key, value in sorted(tour.env.items()):
            print(f"export {key}={urllib.parse.quote(value, safe=':/.-_')}")
        print("# serving; Ctrl-C to stop", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    _main()
