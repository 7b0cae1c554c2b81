"""Checking the issue-14 options of a Provider: ``private_key=``, ``dpop=``, ``resource=``.

Kept apart from :mod:`nbauth._providers` so the options can be re-attached to the login
pipeline as one call. Nothing here does I/O; the key is parsed at once so that a bad key
fails where it was given, not at the first token request.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ._errors import ConfigurationError
from ._token_exchange import resource_tuple

if TYPE_CHECKING:
    from ._client_jwt import ClientKey

__all__ = ["client_options", "login_resource", "resource_tuple"]


def client_options(
    private_key: Any,
    dpop: Any,
    resource: str | Sequence[str] | None,
    client_auth: str | None,
    client_id: str | None = None,
    client_secret: str | None = None,
) -> tuple[ClientKey | None, bool, tuple[str, ...], str | None]:
    """(the parsed key, dpop, resources, the client_auth a key implies) - or a ConfigurationError.

    ``NBAUTH_PRIVATE_KEY`` is the key of the client ``NBAUTH_CLIENT_ID`` (design.md, the chain's
    link 2): a provider for that client without a secret takes it and ``private_key_jwt``.
    """
    if not isinstance(dpop, bool):
        raise ConfigurationError("dpop must be True or False")
    key: ClientKey | None = None
    implied: str | None = None
    if private_key is not None and private_key != "":
        from ._client_jwt import load_private_key

        key = load_private_key(private_key)
        implied = "private_key_jwt"
        if client_auth not in (None, "private_key_jwt"):
            raise ConfigurationError(f"private_key= is for client_auth='private_key_jwt', not {client_auth!r}")
    elif os.environ.get("NBAUTH_PRIVATE_KEY") and (
        client_auth == "private_key_jwt"
        or (client_auth is None and not client_secret and client_id and client_id == os.environ.get("NBAUTH_CLIENT_ID"))
    ):
        from ._client_jwt import load_private_key

        key = load_private_key(os.environ["NBAUTH_PRIVATE_KEY"])
        implied = "private_key_jwt"
    return key, dpop, login_resource(resource), implied


def login_resource(resource: str | Sequence[str] | None) -> tuple[str, ...]:
    """The RFC 8707 resource of a login: none or one (§2.2 allows several, but servers issue a token for
    one API, and nbauth keys each session by the API it is for).
    """
    resources = resource_tuple(resource)
    if len(resources) > 1:
        raise ConfigurationError(
            f"resource= names {len(resources)} APIs: nbauth asks for one per login, so that each token goes to "
            "one API. Log in once per API: provider.device_login(resource=...) (or get_token_by_...(resource=...))"
        )
    return resources
