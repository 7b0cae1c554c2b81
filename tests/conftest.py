"""Shared pytest fixtures: the loopback IdP (tests/idp), stand-in servers (tests/servers), an isolated nbauth env.

Import helpers in tests as ``from idp.helpers import authorize, ...`` and ``from servers.faulty import html, ...``
(this file puts tests/ on sys.path).

Fixtures
- ``idp`` (session): the default IdP - Keycloak shape, realm ``demo``, IDP_DEVICE_INTERVAL=1, IDP_DEBUG=1.
- ``idp_factory`` (session): ``idp_factory(**env) -> IdP``, one extra server.js per distinct env (cached).
- every IdP a test can reach is reset before the test (tokens, grants, stats, auto-login, clock skew).
- ``nbauth_env`` (autouse): NBAUTH_CACHE_DIR / NBAUTH_CONFIG in tmp_path; NBAUTH_CACHE/CLIENT_ID/CLIENT_SECRET unset.
- ``fusio``, ``seed001``, ``faulty``, ``resource_api`` (function): stand-in servers, fresh per test.
- ``resource_api_for`` (function): ``resource_api_for(idp, client_id=..., client_secret=...) -> ResourceServer``.
- ``data_idp`` (session): an IdP whose every access token is a 3-second RFC 9068 JWT for ``urn:demo:api``
  (refresh tokens 30 min, rotated); ``data_server`` (module): a protected file server checking them
  (tests/servers/data.py), reset before each test that uses it.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    sys.path.insert(0, str(TESTS_DIR))

from idp.helpers import CONFIDENTIAL_CLIENT, IdP, IdPStartError, start_idp  # noqa: E402
from servers.data import DataServer  # noqa: E402
from servers.faulty import FaultyServer  # noqa: E402
from servers.fusio import FusioServer  # noqa: E402
from servers.resource import ResourceServer  # noqa: E402
from servers.seed001 import Seed001Server  # noqa: E402

#: settings every test IdP gets unless overridden in idp_factory(**env)
DEFAULT_IDP_ENV: dict[str, str] = {"IDP_DEVICE_INTERVAL": "1", "IDP_DEBUG": "1"}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes more than 5 s (deselect with -m 'not slow')")
    config.addinivalue_line("markers", "browser: drives a real or scripted browser")


# ------------------------------------------------------------------------------ IdP
def _env_value(value: object) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


class IdPFactory:
    """``factory(**env) -> IdP``: starts server.js with DEFAULT_IDP_ENV + env, one process per distinct env."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp = tmp_path_factory
        self._cache: dict[tuple[tuple[str, str], ...], IdP] = {}
        self._lock = threading.Lock()

    def __call__(self, **env: object) -> IdP:
        merged = {**DEFAULT_IDP_ENV, **{k: _env_value(v) for k, v in env.items()}}
        key = tuple(sorted(merged.items()))
        with self._lock:
            idp = self._cache.get(key)
            if idp is not None:
                if idp.proc is not None and idp.proc.poll() is not None:
                    raise IdPStartError(f"loopback IdP {idp.issuer} died (status {idp.proc.returncode}):\n{idp.log()}")
                return idp
            idp = start_idp(merged, self._tmp.mktemp("idp"))
            self._cache[key] = idp
            return idp

    @property
    def instances(self) -> list[IdP]:
        """Every IdP started so far."""
        with self._lock:
            return list(self._cache.values())

    def stop_all(self) -> None:
        with self._lock:
            idps, self._cache = list(self._cache.values()), {}
        for idp in idps:
            idp.stop()


def reset_idp(idp: IdP) -> None:
    """Back to the state right after startup: no tokens/grants/sessions/stats, configured auto-login and clock."""
    idp.admin("reset").raise_for_status()
    idp.admin("auto-login", username=idp.env.get("IDP_AUTO_LOGIN", "")).raise_for_status()
    idp.admin("clock", skew=idp.env.get("IDP_CLOCK_SKEW", "0") or "0").raise_for_status()


@pytest.fixture(scope="session")
def idp_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IdPFactory]:
    factory = IdPFactory(tmp_path_factory)
    try:
        yield factory
    finally:
        factory.stop_all()


@pytest.fixture(scope="session")
def idp(idp_factory: IdPFactory) -> IdP:
    return idp_factory()


@pytest.fixture(autouse=True)
def _fresh_idp_state(request: pytest.FixtureRequest) -> None:
    """Reset every started IdP before a test that uses ``idp`` or ``idp_factory`` (directly or indirectly)."""
    names = request.fixturenames
    if "idp" in names:
        request.getfixturevalue("idp")
    if "idp_factory" in names:
        for instance in request.getfixturevalue("idp_factory").instances:
            reset_idp(instance)


# ------------------------------------------------------------------------------ nbauth isolation
@dataclass
class NbauthEnv:
    cache_dir: Path  # NBAUTH_CACHE_DIR - NOT created in advance (nbauth creates it, 0700)
    config_path: Path  # NBAUTH_CONFIG - does not exist unless a test writes it


@pytest.fixture(autouse=True)
def nbauth_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> NbauthEnv:
    """No test touches the user's real cache or config."""
    env = NbauthEnv(cache_dir=tmp_path / "nbauth-cache", config_path=tmp_path / "nbauth-config.toml")
    monkeypatch.setenv("NBAUTH_CACHE_DIR", str(env.cache_dir))
    monkeypatch.setenv("NBAUTH_CONFIG", str(env.config_path))
    for name in ("NBAUTH_CACHE", "NBAUTH_CLIENT_ID", "NBAUTH_CLIENT_SECRET", "NBAUTH_ISSUER"):
        monkeypatch.delenv(name, raising=False)
    return env


@pytest.fixture(autouse=True)
def _fresh_kernel() -> Iterator[None]:
    """Each test starts like a new kernel: no live sessions, no discovery cache."""
    from nbauth import _discovery, _registry

    _registry.clear_registry()
    _discovery.clear_cache()
    yield
    _registry.clear_registry()


# ------------------------------------------------------------------------------ stand-in servers
@pytest.fixture
def fusio() -> Iterator[FusioServer]:
    with FusioServer() as server:
        yield server


@pytest.fixture
def seed001() -> Iterator[Seed001Server]:
    with Seed001Server() as server:
        yield server


@pytest.fixture
def faulty() -> Iterator[FaultyServer]:
    with FaultyServer() as server:
        yield server


@pytest.fixture
def ahead(monkeypatch: pytest.MonkeyPatch) -> Callable[[float], None]:
    """``ahead(s)``: move nbauth's wall and monotonic clocks ``s`` seconds on (cumulative) instead of sleeping."""
    from nbauth import _clock

    real_now, real_mono, offset = _clock.now, _clock.monotonic, [0.0]
    monkeypatch.setattr(_clock, "now", lambda: real_now() + offset[0])
    monkeypatch.setattr(_clock, "monotonic", lambda: real_mono() + offset[0])
    return lambda seconds: offset.__setitem__(0, offset[0] + seconds)


@pytest.fixture
def resource_api_for() -> Iterator[Callable[..., ResourceServer]]:
    started: list[ResourceServer] = []

    def make(
        idp: IdP, client_id: str = CONFIDENTIAL_CLIENT[0], client_secret: str = CONFIDENTIAL_CLIENT[1], **kwargs: Any
    ) -> ResourceServer:
        server = ResourceServer(idp.endpoint("introspection_endpoint"), client_id, client_secret, **kwargs)
        started.append(server.start())
        return server

    try:
        yield make
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def resource_api(idp: IdP, resource_api_for: Callable[..., ResourceServer]) -> ResourceServer:
    return resource_api_for(idp)


# ------------------------------------------------------------------------------ protected data (issue 13)
DATA_IDP_ENV: dict[str, object] = {"IDP_TTL_AccessToken": 3, "IDP_DEFAULT_RESOURCE": "urn:demo:api"}


@pytest.fixture(scope="session")
def data_idp(idp_factory: IdPFactory) -> IdP:
    return idp_factory(**DATA_IDP_ENV)


@pytest.fixture(scope="module")
def data_server(request: pytest.FixtureRequest) -> Iterator[DataServer]:
    idp = request.getfixturevalue("data_idp")
    with DataServer(idp.issuer, idp.endpoint("jwks_uri")) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_data_server(request: pytest.FixtureRequest) -> None:
    if "data_server" in request.fixturenames:
        request.getfixturevalue("data_server").reset()
