"""The five libraries under test, each configured the way its documentation shows, plus a probe.

``open_client(lib, target, share, api_url, restore=...)`` logs in (``restore=False``: a password
grant now, leaving whatever the library persists in ``share``) or picks the login up from
``share`` in a new process (``restore=True``), and returns ``call(url) -> HTTP status``, which
threads may share (one session per notebook, as users write it). Exceptions propagate: the
worker counts them as failed calls.

Sharing a login between processes, the best each library offers:
- nbauth: its cache (``NBAUTH_CACHE_DIR``), restored with ``nbauth.session(name)``.
- requests-oauthlib, Authlib: no cache of their own; ``token_updater`` / ``update_token`` writes the
  token to a JSON file and every process starts from that file.
- requests-auth, httpx-auth: ``OAuth2.token_cache = JsonTokenFileCache(path)`` (re-read when the
  file changes); every process also holds the password, as their password flow requires.

:class:`Probe` is the client-side witness: it learns each access token's expiry from the token
responses (``expires_in`` on the client's clock) and checks every API request as it leaves.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.servers import Target

LIBRARIES = ("nbauth", "requests-oauthlib", "authlib", "requests-auth", "httpx-auth")
Call = Callable[[str], int]
# The peers refuse plain http; the IdP is on loopback (nbauth allows loopback without a switch).
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
os.environ.setdefault("AUTHLIB_INSECURE_TRANSPORT", "1")


def save_json(path: Path, data: Any) -> None:
    """Write atomically (temp file + replace), so a process never reads half a token."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(dict(data)))
    os.replace(tmp, path)


def _nbauth(t: Target, share: Path, restore: bool) -> Call:
    os.environ["NBAUTH_CACHE_DIR"] = str(share / "nbauth-cache")
    import nbauth

    if restore:
        session = nbauth.session(t.realm)
    else:
        sso = nbauth.Keycloak(t.origin, t.realm, client_id=t.client_id, client_auth="none")
        session = sso.get_token_by_password(t.username, t.password, scope=t.scope, force=True)
    return lambda url: session.get(url, timeout=30).status_code


def _requests_oauthlib(t: Target, share: Path, restore: bool) -> Call:
    from oauthlib.oauth2 import LegacyApplicationClient
    from requests_oauthlib import OAuth2Session

    path = share / "requests-oauthlib-token.json"
    session = OAuth2Session(
        client=LegacyApplicationClient(client_id=t.client_id),
        scope=[t.scope],
        token=json.loads(path.read_text()) if restore else None,
        auto_refresh_url=t.token_url,
        auto_refresh_kwargs={"client_id": t.client_id},
        token_updater=lambda token: save_json(path, token),
    )
    if not restore:
        token = session.fetch_token(t.token_url, username=t.username, password=t.password, include_client_id=True)
        save_json(path, token)
    return lambda url: session.get(url, timeout=30).status_code


def _authlib(t: Target, share: Path, restore: bool) -> Call:
    from authlib.integrations.requests_client import OAuth2Session

    path = share / "authlib-token.json"

    def update_token(token: Any, refresh_token: str | None = None, access_token: str | None = None) -> None:
        save_json(path, token)

    session = OAuth2Session(
        t.client_id,
        scope=t.scope,
        token_endpoint=t.token_url,
        update_token=update_token,
        token=json.loads(path.read_text()) if restore else None,
    )  # leeway: default 60 s
    if not restore:
        save_json(
            path, session.fetch_token(t.token_url, grant_type="password", username=t.username, password=t.password)
        )
    return lambda url: session.get(url, timeout=30).status_code


def _requests_auth(t: Target, share: Path, restore: bool) -> Call:
    import requests
    import requests_auth

    requests_auth.OAuth2.token_cache = requests_auth.JsonTokenFileCache(str(share / "requests-auth-tokens.json"))
    session = requests.Session()
    session.auth = requests_auth.OAuth2ResourceOwnerPasswordCredentials(  # early_expiry: default 30 s
        t.token_url, t.username, t.password, scope=t.scope, client_id=t.client_id
    )
    return lambda url: session.get(url, timeout=30).status_code


def _httpx_auth(t: Target, share: Path, restore: bool) -> Call:
    import httpx
    import httpx_auth

    httpx_auth.OAuth2.token_cache = httpx_auth.JsonTokenFileCache(str(share / "httpx-auth-tokens.json"))
    auth = httpx_auth.OAuth2ResourceOwnerPasswordCredentials(  # early_expiry: default 30 s
        t.token_url, t.username, t.password, scope=t.scope, client_id=t.client_id
    )
    client = httpx.Client(auth=auth, timeout=30)
    return lambda url: client.get(url).status_code


_OPENERS: dict[str, Callable[[Target, Path, bool], Call]] = {
    "nbauth": _nbauth,
    "requests-oauthlib": _requests_oauthlib,
    "authlib": _authlib,
    "requests-auth": _requests_auth,
    "httpx-auth": _httpx_auth,
}


def open_client(lib: str, target: Target, share: Path, api_url: str, *, restore: bool) -> Call:
    """Log in (or restore the login kept in ``share``) and return the library's ``call(url)``."""
    share.mkdir(parents=True, exist_ok=True)
    call = _OPENERS[lib](target, share, restore)
    if not restore and lib in ("requests-auth", "httpx-auth"):
        call(api_url)  # these log in on the first request: that request is the login
    return call


# ------------------------------------------------------------------ the client-side witness
class Probe:
    """Counts API requests that leave with a token whose expiry (client clock) has passed."""

    def __init__(self, token_url: str, api_url: str) -> None:
        self.token_url = token_url
        self.api_url = api_url
        self.expiry: dict[str, float] = {}
        self.sent = self.sent_expired = self.unknown = 0
        self._lock = threading.Lock()

    def learn(self, body: bytes) -> None:
        try:
            data = json.loads(body)
            expires_at = time.time() + float(data["expires_in"])
            with self._lock:
                self.expiry[data["access_token"]] = expires_at
        except (ValueError, KeyError, TypeError):
            pass

    def leaving(self, authorization: str | None) -> None:
        token = (authorization or "").partition(" ")[2].strip()
        now = time.time()
        with self._lock:
            self.sent += 1
            expires_at = self.expiry.get(token)
            if expires_at is None:
                self.unknown += 1
            elif now >= expires_at:
                self.sent_expired += 1

    def counts(self) -> dict[str, int]:
        with self._lock:
            return {"sent": self.sent, "sent_expired_client": self.sent_expired, "unknown_tokens": self.unknown}

    def install(self, lib: str) -> None:
        """Wrap the HTTP layers ``lib`` uses: requests' adapter, httpx's transport, nbauth's token transport."""
        import requests.adapters

        probe, plain_send = self, requests.adapters.HTTPAdapter.send

        def send(adapter: Any, request: Any, stream: bool = False, **kwargs: Any) -> Any:
            if request.url.startswith(probe.api_url):
                probe.leaving(request.headers.get("Authorization"))
            response = plain_send(adapter, request, stream=stream, **kwargs)
            if not stream and request.url == probe.token_url and response.status_code == 200:
                probe.learn(response.content)  # nbauth streams its token responses: seen below instead
            return response

        requests.adapters.HTTPAdapter.send = send  # type: ignore[method-assign]
        if lib == "httpx-auth":
            self._install_httpx()
        if lib == "nbauth":
            self._install_nbauth()

    def _install_httpx(self) -> None:
        import httpx

        probe, plain_handle = self, httpx.HTTPTransport.handle_request

        def handle_request(transport: Any, request: Any) -> Any:
            url = str(request.url)
            if url.startswith(probe.api_url):
                probe.leaving(request.headers.get("Authorization"))
            response = plain_handle(transport, request)
            if url == probe.token_url and response.status_code == 200:
                probe.learn(response.read())
            return response

        httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]

    def _install_nbauth(self) -> None:
        from nbauth import _session, _transport

        plain_ensure = _session.ensure_token

        def ensure_token(holder: Any, **kwargs: Any) -> Any:
            token = plain_ensure(holder, **kwargs)  # a token restored from the cache (another process refreshed)
            if token.expires_at is not None:
                with self._lock:
                    self.expiry.setdefault(token.access_token, token.expires_at)
            return token

        _session.ensure_token = ensure_token  # type: ignore[assignment]

        probe, plain_request = self, _transport.Transport.request

        def nbauth_request(transport: Any, method: str, url: str, **kwargs: Any) -> Any:
            reply = plain_request(transport, method, url, **kwargs)
            if url == probe.token_url and reply.status == 200:
                probe.learn(reply.content)
            return reply

        _transport.Transport.request = nbauth_request  # type: ignore[method-assign]
