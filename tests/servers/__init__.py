"""Stand-in HTTP servers for tests (standard library only): Fusio, the seed-001 JSON API, a faulty
server for fault injection, and a protected resource API backed by token introspection."""

from ._base import RecordedRequest, StandInServer, jwt_claims
from .faulty import FaultyServer
from .fusio import FusioApp, FusioServer
from .resource import ResourceServer
from .seed001 import Seed001Server

__all__ = [
    "FaultyServer",
    "FusioApp",
    "FusioServer",
    "RecordedRequest",
    "ResourceServer",
    "Seed001Server",
    "StandInServer",
    "jwt_claims",
]
