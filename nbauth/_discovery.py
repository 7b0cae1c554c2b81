"""Provider metadata: OpenID Connect Discovery 1.0 with the RFC 8414 fallback.

:func:`discover_settings` turns a metadata document into ``Provider`` keywords; explicit
keywords win over discovered ones (some servers leave the device or revocation endpoint
out). Documents are cached per process for an hour, keyed by the issuer *and* every setting
that shaped the fetch (``verify``, ``proxies``), so a document fetched without TLS checks
never serves a provider that asked for them.
"""

from __future__ import annotations

import threading
import urllib.parse
from typing import Any

from . import _clock
from ._errors import ProviderError, VerificationError
from ._transport import DEFAULT_TIMEOUT, Transport, display_url, require_secure

__all__ = ["METADATA_KEYS", "discover_settings", "fetch_metadata"]

#: Discovery metadata key -> Provider keyword (OIDC Discovery §3, RFC 8414 §2).
METADATA_KEYS = {
    "token_endpoint": "token_url",
    "authorization_endpoint": "authorization_url",
    "device_authorization_endpoint": "device_authorization_url",
    "userinfo_endpoint": "userinfo_url",
    "revocation_endpoint": "revocation_url",
    "introspection_endpoint": "introspection_url",
    "jwks_uri": "jwks_url",
    "end_session_endpoint": "end_session_url",
}
_TTL = 3600.0
_cache: dict[tuple[str, str, str], tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


def _metadata_urls(issuer: str) -> list[str]:
    """OIDC Discovery §4 location first, then RFC 8414 §3.1 (path-aware), then the legacy one."""
    parts = urllib.parse.urlsplit(issuer)
    path = parts.path.rstrip("/")
    origin = f"{parts.scheme}://{parts.netloc}"
    base = issuer.rstrip("/")
    urls = [f"{base}/.well-known/openid-configuration", f"{origin}/.well-known/oauth-authorization-server{path}"]
    if path:
        urls.append(f"{base}/.well-known/oauth-authorization-server")
    return urls


def _cache_key(issuer: str, transport: Transport) -> tuple[str, str, str]:
    return (issuer, repr(transport.verify), repr(sorted(transport.proxies.items())))


def _checked(meta: Any, issuer: str, where: str) -> dict[str, Any] | None:
    """The document if it is one for ``issuer`` (OIDC Discovery §4.3, RFC 8414 §3.3); None if not JSON."""
    if not isinstance(meta, dict):
        return None
    published = str(meta.get("issuer", ""))
    if published.rstrip("/") != issuer.rstrip("/"):
        raise VerificationError(
            f"discovery at {where} names issuer {published[:200]!r}, not {issuer!r}: check the issuer URL"
        )
    return meta


def fetch_metadata(issuer: str, transport: Transport) -> dict[str, Any]:
    """Fetch and check provider metadata; the ``issuer`` inside must be the one asked for
    (a trailing ``/`` aside: the published form is what id_tokens are checked against).
    """
    require_secure(issuer, "issuer")
    key = _cache_key(issuer.rstrip("/"), transport)
    with _lock:
        hit = _cache.get(key)
        if hit and _clock.monotonic() - hit[0] < _TTL:
            return dict(hit[1])
    failures: list[str] = []
    for url in _metadata_urls(issuer):
        try:
            reply = transport.request("GET", url, headers={"Accept": "application/json"})
        except ProviderError as exc:
            if exc.status is None and "connect" in exc.message:
                raise  # the server is unreachable: no point trying other paths
            failures.append(f"{display_url(url)}: {exc.message}")
            continue
        if reply.status != 200:
            failures.append(f"{reply.where}: HTTP {reply.status}")
            continue
        meta = _checked(reply.json(), issuer, reply.where)
        if meta is None:
            failures.append(f"{reply.where}: not a JSON object")
            continue
        with _lock:
            _cache[key] = (_clock.monotonic(), meta)
        return dict(meta)
    raise ProviderError(f"no OpenID / OAuth metadata found for {issuer}: " + "; ".join(failures), url=issuer)


def discover_settings(issuer: str, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(Provider keywords, metadata)`` for an issuer; ``kwargs`` (explicit ones) win."""
    transport = Transport(
        verify=kwargs.get("verify", True), timeout=kwargs.get("timeout", DEFAULT_TIMEOUT), proxies=kwargs.get("proxies")
    )
    meta = fetch_metadata(issuer, transport)
    derived: dict[str, Any] = {"issuer": str(meta["issuer"])}
    for key, kw in METADATA_KEYS.items():
        value = meta.get(key)
        if isinstance(value, str) and value:
            derived[kw] = value
    if "token_url" not in derived and "token_url" not in kwargs:
        raise ProviderError(f"the metadata of {issuer} has no token_endpoint", url=issuer)
    if "client_auth" not in kwargs and kwargs.get("client_secret"):
        methods = meta.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "client_secret_basic" not in methods and "client_secret_post" in methods:
            derived["client_auth"] = "client_secret_post"
    return {**derived, **kwargs}, meta


def clear_cache() -> None:
    """Forget every fetched document (tests)."""
    with _lock:
        _cache.clear()
