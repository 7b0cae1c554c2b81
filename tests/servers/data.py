"""A protected data server on loopback: files behind Bearer JWTs checked against the IdP's JWKS.

What no IdP does and what nbauth's data tools need (issue 13):
- ``GET`` / ``HEAD`` of files held in memory (``add(path, data)``), with ``Content-Length``,
  ``Accept-Ranges: bytes``, ``ETag`` and ``Last-Modified``; single ``Range: bytes=a-b`` / ``a-`` /
  ``-n`` requests answered 206 with ``Content-Range`` (RFC 9110 §14), 416 when unsatisfiable;
- directory listings: a path ending in ``/`` answers an HTML page of links to what is under it
  (what fsspec's HTTP ``ls``/``glob`` parse);
- a bandwidth throttle (``throttle`` bytes per second per file, shared by every response for that file
  and by the files of one sub-folder of ``/data/`` (a dataset), so parallel ranged reads do not
  multiply it; None = full speed);
- a Bearer check on EVERY request (RFC 6750): an RS256 JWT access token (RFC 9068) signed by a key
  of the IdP's JWKS, ``iss`` the IdP, ``aud`` the API, ``exp`` checked with NO leeway against
  ``now()``; else 401 ``WWW-Authenticate: Bearer error="invalid_token"`` (no error code when the
  token is missing). ``reject_tokens`` (a count, or True for all) refuses valid tokens too, for
  the 401-retry tests; ``fail[path] = 500`` answers that status to a good token (server errors).

Every request is logged in ``log`` as ``Hit`` (time, method, path, range, status, the token's
``exp``/``jti``) so tests can assert that no request was sent with an expired token.
"""

from __future__ import annotations

import hashlib
import html
import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import jwt

from ._base import Handler, RecordedRequest, StandInServer

CHUNK = 64 * 1024


@dataclass
class Hit:
    time: float
    method: str
    path: str
    range: str | None
    status: int
    exp: float | None = None
    jti: str | None = None
    reason: str = ""


class DataServer(StandInServer):
    """``DataServer(issuer, jwks_uri, audience).start()``; files under ``url + "/data/..."``."""

    def __init__(
        self, issuer: str, jwks_uri: str, audience: str = "urn:demo:api", host: str = "127.0.0.1", port: int = 0
    ) -> None:
        super().__init__(host, port)
        self.issuer = issuer
        self.jwks_uri = jwks_uri
        self.audience = audience
        self.files: dict[str, bytes] = {}
        self._etags: dict[str, str] = {}
        self.modified = time.time() - 3600
        self.throttle: float | None = None
        self.reject_tokens: int | bool = 0
        self.fail: dict[str, int] = {}  # path -> the status it answers (after the token check), e.g. 500
        self.clock_offset = 0.0
        self.log: list[Hit] = []
        self._keys: dict[str, Any] = {}
        self._keys_lock = threading.Lock()
        self._pace_lock = threading.Lock()
        self._next_free: dict[str, float] = {}

    # ---- content
    def add(self, path: str, data: bytes) -> str:
        """Serve ``data`` at ``path`` (starting with /); returns its full URL."""
        self.files[path] = data
        self._etags[path] = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        return self.url + path

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.log.clear()
        self.throttle = None
        self._next_free.clear()
        self.reject_tokens = 0
        self.fail.clear()
        self.clock_offset = 0.0

    def now(self) -> float:
        return time.time() + self.clock_offset

    def hits(self, status: int | None = None) -> list[Hit]:
        with self._lock:
            return [h for h in self.log if status is None or h.status == status]

    # ---- token check
    def _key(self, kid: str | None) -> Any:
        with self._keys_lock:
            if kid not in self._keys:
                with urllib.request.urlopen(self.jwks_uri, timeout=10) as r:
                    jwks = json.load(r)
                self._keys = {k.get("kid"): jwt.PyJWK(k).key for k in jwks["keys"] if k.get("alg") == "RS256"}
            return self._keys.get(kid)

    def verify(self, token: str | None) -> tuple[dict[str, Any] | None, str]:
        """(claims, "") for a good token, else (None, why)."""
        if not token:
            return None, "no token"
        try:
            header = jwt.get_unverified_header(token)
            key = self._key(header.get("kid"))
            if key is None:
                return None, "unknown key"
            claims = jwt.decode(
                token,
                key,
                algorithms=["RS256"],
                audience=self.audience,
                issuer=self.issuer,
                options={"verify_exp": False, "require": ["exp", "iat"]},
            )
        except jwt.PyJWTError as exc:
            return None, f"bad token: {type(exc).__name__}"
        if self.now() >= float(claims["exp"]):  # no leeway at all
            return None, "expired"
        return claims, ""

    # ---- HTTP
    def _record_hit(self, req: RecordedRequest, status: int, claims: dict[str, Any] | None, reason: str = "") -> None:
        hit = Hit(
            self.now(),
            req.method,
            req.path,
            req.headers.get("range"),
            status,
            None if claims is None else float(claims["exp"]),
            None if claims is None else claims.get("jti"),
            reason,
        )
        with self._lock:
            self.log.append(hit)
            self.requests.clear()  # keep memory flat: the Hit log is what tests read

    def handle(self, h: Handler, req: RecordedRequest) -> None:
        token = req.bearer()
        claims, why = self.verify(token)
        if claims is not None and self.reject_tokens:
            claims, why = None, "rejected by the test"
            if self.reject_tokens is not True:
                self.reject_tokens = int(self.reject_tokens) - 1
        if claims is None:
            challenge = (
                'Bearer realm="data"'
                if not token
                else f'Bearer realm="data", error="invalid_token", error_description="{why}"'
            )
            self._record_hit(req, 401, None, why)
            h.send_bytes(401, b"unauthorized\n", "text/plain", {"WWW-Authenticate": challenge})
            return
        if req.method not in ("GET", "HEAD"):
            self._record_hit(req, 405, claims)
            h.send_bytes(405, b"", None, {"Allow": "GET, HEAD"})
            return
        if req.path in self.fail:
            self._record_hit(req, self.fail[req.path], claims, "failed by the test")
            h.send_bytes(self.fail[req.path], b"server error\n", "text/plain")
            return
        data = self.files.get(req.path)
        if data is None and (req.path.endswith("/") or any(p.startswith(req.path + "/") for p in self.files)):
            self._listing(h, req, claims)
            return
        if data is None:
            self._record_hit(req, 404, claims)
            h.send_bytes(404, b"not found\n", "text/plain")
            return
        self._send_file(h, req, claims, data)

    def _listing(self, h: Handler, req: RecordedRequest, claims: dict[str, Any]) -> None:
        base = req.path.rstrip("/") + "/"
        names = sorted(
            {
                p[len(base) :].split("/")[0] + ("/" if "/" in p[len(base) :] else "")
                for p in self.files
                if p.startswith(base)
            }
        )
        if not names:
            self._record_hit(req, 404, claims)
            h.send_bytes(404, b"not found\n", "text/plain")
            return
        links = "".join(f'<a href="{html.escape(base + n)}">{html.escape(n)}</a>\n' for n in names)
        self._record_hit(req, 200, claims)
        h.send_bytes(200, f"<html><body>\n{links}</body></html>\n".encode(), "text/html")

    def _range(self, header: str | None, size: int) -> tuple[int, int] | bool | None:
        """(start, end_inclusive), None for no/ignored Range, False when unsatisfiable."""
        if not header or not header.startswith("bytes=") or "," in header:
            return None
        first, _, last = header[6:].strip().partition("-")
        try:
            if not first:
                n = int(last)
                return (max(size - n, 0), size - 1) if n > 0 and size else False
            start = int(first)
            end = int(last) if last else size - 1
        except ValueError:
            return None
        if start >= size or end < start:
            return False
        return start, min(end, size - 1)

    def _send_file(self, h: Handler, req: RecordedRequest, claims: dict[str, Any], data: bytes) -> None:
        size = len(data)
        headers = {
            "Accept-Ranges": "bytes",
            "ETag": self._etags[req.path],
            "Last-Modified": formatdate(self.modified, usegmt=True),
        }
        span = self._range(req.headers.get("range"), size)
        if span is False:
            self._record_hit(req, 416, claims)
            h.send_bytes(416, b"", None, {**headers, "Content-Range": f"bytes */{size}"})
            return
        status, body = 200, data
        if isinstance(span, tuple):
            status, body = 206, data[span[0] : span[1] + 1]
            headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{size}"
        self._record_hit(req, status, claims)
        h.send_response(status)
        h.send_header("Content-Type", "application/octet-stream")
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if req.method == "HEAD":
            return
        self._stream(h, body, req.path.rsplit("/", 1)[0] if req.path.count("/") > 2 else req.path)

    def _slot(self, key: str, nbytes: int, rate: float) -> float:
        """Reserve the throttle's next ``nbytes`` for ``key``; the monotonic time they are due by."""
        with self._pace_lock:
            start = max(time.monotonic(), self._next_free.get(key, 0.0))
            self._next_free[key] = start + nbytes / rate
            return self._next_free[key]

    def _stream(self, h: Handler, body: bytes, key: str) -> None:
        view = memoryview(body)
        for offset in range(0, len(body), CHUNK):
            h.wfile.write(view[offset : offset + CHUNK])
            rate = self.throttle
            if rate:
                ahead = self._slot(key, len(view[offset : offset + CHUNK]), rate) - time.monotonic()
                if ahead > 0 and self.stopping.wait(ahead):
                    return
        h.wfile.flush()
