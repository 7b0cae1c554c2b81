"""The rules of a protected request: where a Bearer token may go, and what a 401 means.

RFC 6750 §2.1 (the header), §3.1 (the ``invalid_token`` challenge), §5.3 (only over TLS,
loopback aside), and what :meth:`nbauth.Session.logout` reports it could not revoke (RFC 7009 §2.2.1).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from typing import Any

import requests

from ._errors import ConfigurationError
from ._transport import require_secure

__all__ = ["LogoutReport", "_check_origin", "_invalid_token", "_replayable", "origin_of"]

_checked_origins: dict[str, bool] = {}


def _invalid_token(response: requests.Response) -> bool:
    """A 401 whose challenge says the token is bad (RFC 6750 §3.1), or carries no error code."""
    if response.status_code != 401:
        return False
    challenge = response.headers.get("WWW-Authenticate", "")
    return "error=" not in challenge or "invalid_token" in challenge


def _replayable(data: Any, kwargs: Mapping[str, Any]) -> bool:
    if kwargs.get("files") is not None or kwargs.get("stream"):
        return False
    return data is None or isinstance(data, (bytes, str, dict, list, tuple))


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL, lower-cased (RFC 6454 §4)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme.lower()}://{(parts.netloc.rsplit('@', 1)[-1]).lower()}"


def _check_origin(url: str, allowed: tuple[str, ...] | None) -> None:
    origin = origin_of(url)
    if allowed is not None and origin not in allowed:
        raise ConfigurationError(
            f"{origin} is not one of this session's API origins ({', '.join(allowed)}): "
            "nbauth does not send its token there; add it to api_origins="
        )
    if origin not in _checked_origins:
        require_secure(url, "API URL")
        if len(_checked_origins) > 256:
            _checked_origins.clear()
        _checked_origins[origin] = True


class LogoutReport(dict[str, str]):
    """What :meth:`Session.logout` could not revoke, by token kind (empty: everything was revoked)."""

    def __repr__(self) -> str:
        if not self:
            return "<logged out: the tokens were revoked>"
        kept = "; ".join(f"{kind}: {why}" for kind, why in self.items())
        return f"<logged out and forgotten; not revoked: {kept}>"
