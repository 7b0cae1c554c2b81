"""Where a restored confidential client's secret may come from: the environment or the keyring.

nbauth never writes a client secret to its cache. A session restored in a new kernel gets
its client's secret from ``NBAUTH_CLIENT_SECRET`` only when ``NBAUTH_CLIENT_ID`` names that
very client and ``NBAUTH_ISSUER`` that very issuer, or from the OS keyring entry
``client_id@issuer`` (the ``keyring`` extra): a secret meant for one service is never sent
to another.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any

from ._errors import ConfigurationError
from ._secret import Secret, secret

__all__ = [
    "KEYRING_SERVICE",
    "delete_keyring_secret",
    "environment_secret",
    "keyring_secret",
    "keyring_username",
    "secret_for",
    "store_keyring_secret",
]

KEYRING_SERVICE = "nbauth"


def keyring_username(client_id: str, issuer_key: str) -> str:
    """The keyring entry of a client secret: service ``nbauth``, user ``client_id@issuer``."""
    return f"{client_id}@{issuer_key}"


def keyring_secret(client_id: str | None, issuer_key: str) -> Secret | None:
    """The client secret from the OS keyring (``keyring`` extra), or None."""
    if not client_id:
        return None
    try:
        import keyring
    except ImportError:
        return None
    try:
        value = keyring.get_password(KEYRING_SERVICE, keyring_username(client_id, issuer_key))
    except Exception:  # a broken or locked keyring backend just means "no secret there"
        return None
    return secret(value) if isinstance(value, str) else None


def environment_secret(client_id: str | None, issuer_key: str) -> Secret | None:
    """``NBAUTH_CLIENT_SECRET`` when ``NBAUTH_CLIENT_ID`` and ``NBAUTH_ISSUER`` name this client and issuer."""
    value = os.environ.get("NBAUTH_CLIENT_SECRET")
    env_id = os.environ.get("NBAUTH_CLIENT_ID")
    env_issuer = (os.environ.get("NBAUTH_ISSUER") or "").rstrip("/")
    if not value or not client_id or env_id != client_id or env_issuer != issuer_key.rstrip("/"):
        return None
    return secret(value)


def secret_for(client_id: str | None, issuer_key: str) -> Secret | None:
    """A restored client's secret: the environment (when it names this client and issuer), else the keyring."""
    return environment_secret(client_id, issuer_key) or keyring_secret(client_id, issuer_key)


def _keyring() -> Any:
    try:
        import keyring
    except ImportError:
        raise ConfigurationError("the keyring is an optional extra: pip install 'nbauth[keyring]'") from None
    return keyring


def store_keyring_secret(client_id: str, issuer_key: str, value: str) -> str:
    """Store a client secret in the OS keyring; the backend's name, or a ConfigurationError saying what to do."""
    keyring = _keyring()
    try:
        keyring.set_password(KEYRING_SERVICE, keyring_username(client_id, issuer_key), value)
    except keyring.errors.KeyringError as exc:  # NoKeyringError, a locked or refusing backend
        raise ConfigurationError(
            f"the OS keyring could not store the secret ({type(exc).__name__}): this machine has no usable keyring "
            "backend. Install one (e.g. `pip install keyrings.alt`, or unlock the desktop keyring), or give the "
            "secret as NBAUTH_CLIENT_SECRET from your scheduler's secret store, or as client_secret in a 0600 "
            "profile file"
        ) from None
    return type(keyring.get_keyring()).__name__


def delete_keyring_secret(client_id: str, issuer_key: str) -> None:
    """Remove a client secret from the OS keyring (nothing there is fine)."""
    keyring = _keyring()
    with contextlib.suppress(Exception):
        keyring.delete_password(KEYRING_SERVICE, keyring_username(client_id, issuer_key))
