"""HTTP for nbauth's own requests (token, device, revocation, discovery, JWKS, userinfo).

Every exchange here has a hard deadline, never follows a redirect (credentials must not be
replayed to another origin, RFC 6749 §10.3 / RFC 9700 §4.11), reads at most ``max_bytes``
of the body (decompressed), and turns every failure into a :class:`ProviderError` that names
the URL and the status - a raw ``requests`` exception never escapes. The standard requests
environment is honoured: ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, ``HTTPS_PROXY``,
``NO_PROXY``.
"""

from __future__ import annotations

import email.utils
import ipaddress
import json
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import requests
import urllib3.exceptions

from . import _clock
from ._errors import ConfigurationError, InsecureTransport, ProviderError
from ._record import Record

__all__ = [
    "HttpReply",
    "InsecureTLSWarning",
    "Transport",
    "display_url",
    "is_loopback",
    "loopback_without_proxy",
    "proxies_for",
    "require_secure",
]

DEFAULT_TIMEOUT = 15.0  # a token request answers in well under a second; 15 s is a dead server
MAX_BODY = 1024 * 1024
MAX_RETRY_AFTER = 120.0
USER_AGENT = "nbauth/0.1"
T = TypeVar("T")


class InsecureTLSWarning(UserWarning):
    """TLS certificate verification was turned off for a provider (``verify=False``)."""


def display_url(url: str) -> str:
    """The URL without query or fragment (they may carry secrets) for messages."""
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


LOOPBACK_NAMES = frozenset({"localhost"})
NO_PROXY = {"no_proxy": "*"}  # requests' own switch: bypass every proxy (env and session) for this URL


def is_loopback(host: str | None) -> bool:
    """True only for what is loopback by definition: ``localhost``, 127.0.0.0/8 and ``::1``.

    RFC 8252 §8.3 / RFC 6761 §6.3. ``*.localhost`` names are not accepted: a resolver may still
    send them to DNS. Abbreviated or hex IPv4 forms (``127.1``, ``0x7f.0.0.1``) are not literal
    addresses to Python and are refused too.
    """
    if not host:
        return False
    host = host.strip("[]").lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _authority(url: str) -> tuple[tuple[str, str, int | None], tuple[str, str, int | None]]:
    """(scheme, host, port) as the stdlib reads ``url`` and as urllib3 (what requests sends with) does."""
    import urllib3.util

    mine = urllib.parse.urlsplit(url)
    try:
        port = mine.port
    except ValueError:
        port = -1
    theirs = urllib3.util.parse_url(url)
    return (
        (mine.scheme.lower(), (mine.hostname or "").lower(), port),
        ((theirs.scheme or "").lower(), (theirs.host or "").strip("[]").lower(), theirs.port),
    )


def require_secure(url: str, what: str) -> str:
    r"""Refuse a URL that would carry credentials over plain http to a non-loopback host.

    RFC 6749 §3.1/§3.2 require TLS for the authorization and token endpoints and RFC 6750
    §5.3 for bearer tokens. The URL is judged as the HTTP stack that sends it (urllib3) parses
    it, and refused when the stdlib would read another host (``http://evil\@127.0.0.1/``,
    RFC 3986 §3.2 vs. the WHATWG reading of ``\``). This check is per URL: no process-wide
    environment switch is read or set.
    """
    if not isinstance(url, str) or not url:
        raise ConfigurationError(f"{what} must be a URL, got {url!r}")
    if any(ch in url for ch in "\\\t\r\n ") or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in url):
        raise ConfigurationError(
            f"{what} contains a backslash, whitespace or a control character; "
            "write the URL out plainly (percent-encode those characters)"
        )
    try:
        mine, theirs = _authority(url)
    except (ValueError, urllib3.exceptions.LocationParseError):
        raise ConfigurationError(f"{what} is not a valid URL: {display_url(url)!r}") from None
    if mine != theirs:
        raise ConfigurationError(
            f"{what} {display_url(url)!r} is ambiguous: it names host {mine[1]!r} to one URL parser and "
            f"{theirs[1]!r} to another; write it without '@', '\\' or odd characters in the host part"
        )
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.netloc:
        return url
    if parts.scheme == "http" and parts.netloc:
        if is_loopback(parts.hostname):
            return url
        raise InsecureTransport(
            f"{what} {display_url(url)} uses plain http: tokens and credentials would travel "
            "unencrypted. Use https (http is allowed only for localhost / 127.0.0.1 / ::1)."
        )
    raise ConfigurationError(f"{what} must be an absolute http(s) URL, got {display_url(url)!r}")


def proxies_for(url: str, configured: Mapping[str, str] | None) -> Mapping[str, str] | None:
    """The proxies to send ``url`` with: none at all for loopback (never via HTTP_PROXY), else ``configured``.

    A proxy would see plain-http loopback traffic (tokens, secrets) in clear, and would reach
    its own loopback, not ours.
    """
    if is_loopback(urllib.parse.urlsplit(url).hostname):
        return NO_PROXY
    return configured or None


def loopback_without_proxy(url: str, settings: dict[str, Any]) -> dict[str, Any]:
    """For ``requests.Session.merge_environment_settings``: drop every proxy for a loopback URL."""
    if is_loopback(urllib.parse.urlsplit(url).hostname):
        settings["proxies"] = dict(NO_PROXY)
    return settings


class HttpReply(Record):
    """One HTTP answer: final URL, status, lower-cased headers and the (size-capped) body."""

    __slots__ = ("content", "headers", "status", "url")
    _hidden = frozenset({"content"})
    url: str
    status: int
    headers: Mapping[str, str]
    content: bytes

    def __init__(self, url: str, status: int, headers: Mapping[str, str], content: bytes) -> None:
        self._set(url=url, status=status, headers=headers, content=content)

    def __hash__(self) -> int:
        return hash((self.url, self.status, self.content))

    @property
    def where(self) -> str:
        return display_url(self.url)

    def server_time(self) -> float | None:
        """The Date header as epoch seconds (for clock-skew estimates), or None."""
        value = self.headers.get("date")
        if not value:
            return None
        try:
            return email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None

    def retry_after(self) -> float | None:
        """Retry-After (RFC 9110 §10.2.3) in seconds, capped, or None."""
        value = (self.headers.get("retry-after") or "").strip()
        if not value:
            return None
        if value.isdigit():
            return min(float(value), MAX_RETRY_AFTER)
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        return min(max(0.0, when - _clock.now()), MAX_RETRY_AFTER)

    def looks_like_html(self) -> bool:
        ctype = self.headers.get("content-type", "").lower()
        head = self.content[:512].lstrip().lower()
        return "html" in ctype or head.startswith((b"<!doctype", b"<html", b"<head", b"<body"))

    def json(self) -> Any:
        """The body as JSON; :class:`ProviderError` naming URL and status when it is not."""
        if not self.content.strip():
            raise ProviderError(
                f"{self.where} answered an empty body (HTTP {self.status})", url=self.url, status=self.status
            )
        if self.looks_like_html():
            raise ProviderError(
                f"{self.where} answered an HTML page, not JSON (HTTP {self.status}): is the URL right, "
                "or is a proxy or login page in the way?",
                url=self.url,
                status=self.status,
            )
        try:
            return json.loads(self.content)
        except RecursionError:
            raise ProviderError(
                f"{self.where} answered JSON nested too deeply (HTTP {self.status})", url=self.url, status=self.status
            ) from None
        except ValueError:
            raise ProviderError(
                f"{self.where} answered something that is not JSON (HTTP {self.status})",
                url=self.url,
                status=self.status,
            ) from None


def _tls_message(where: str) -> str:
    return (
        f"TLS certificate verification failed for {where}. If your organisation uses its own CA, "
        "pass verify='/path/to/ca-bundle.pem' to the provider or set REQUESTS_CA_BUNDLE to that file."
    )


class Transport:
    """One provider's HTTP client: verify / timeout / proxies settings and safe reads."""

    def __init__(
        self,
        *,
        verify: bool | str = True,
        timeout: float = DEFAULT_TIMEOUT,
        proxies: Mapping[str, str] | None = None,
        max_bytes: int = MAX_BODY,
    ) -> None:
        if verify is False:
            warnings.warn(
                "TLS certificate verification is OFF for this provider (verify=False): anyone on the "
                "network path can read your tokens and password. Pass verify='/path/to/ca.pem' instead.",
                InsecureTLSWarning,
                stacklevel=4,
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 600:
            raise ConfigurationError("timeout must be a number of seconds between 0 and 600")
        self.verify = verify
        self.timeout = float(timeout)
        self.proxies = dict(proxies or {})
        self.max_bytes = max_bytes
        self._session: requests.Session | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> requests.Session:
        with self._lock:
            if self._session is None:
                s = requests.Session()
                s.headers["User-Agent"] = f"{USER_AGENT} {requests.utils.default_user_agent()}"
                self._session = s
            return self._session

    def request(
        self,
        method: str,
        url: str,
        *,
        data: Mapping[str, str] | None = None,
        json_body: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> HttpReply:
        """Send one request; returns whatever status came back, raises only for no answer."""
        where = display_url(url)
        deadline = self.timeout

        def exchange() -> HttpReply:
            start = _clock.monotonic()
            with self.session.request(
                method,
                url,
                data=data,
                json=json_body,
                headers=dict(headers or {}),
                auth=auth,
                timeout=(min(10.0, deadline), deadline),
                allow_redirects=False,
                stream=True,
                verify=self.verify,
                proxies=dict(proxies_for(url, self.proxies) or {}) or None,
            ) as resp:
                chunks: list[bytes] = []
                size = 0
                while True:
                    chunk = resp.raw.read1(65536, decode_content=True)
                    if not chunk:
                        break
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ProviderError(
                            f"{where} answered more than {self.max_bytes // 1024} KiB (HTTP {resp.status_code}); "
                            "refusing to read it",
                            url=url,
                            status=resp.status_code,
                        )
                    chunks.append(chunk)
                    if _clock.monotonic() - start > deadline:
                        raise requests.exceptions.ReadTimeout()
                headers_ = {k.lower(): v for k, v in resp.headers.items()}
                return HttpReply(url, resp.status_code, headers_, b"".join(chunks))

        reply = _with_deadline(exchange, deadline + 5.0, where)
        if 300 <= reply.status < 400:
            target = reply.headers.get("location", "")
            raise ProviderError(
                f"{where} answered a redirect (HTTP {reply.status}) to {display_url(target) or 'nowhere'}; "
                "nbauth never follows redirects from OAuth endpoints (credentials would be replayed). "
                "Use the final URL.",
                url=url,
                status=reply.status,
            )
        return reply


def _with_deadline(fn: Callable[[], T], deadline: float, where: str) -> T:
    """Run ``fn`` in a worker thread and give up after ``deadline`` seconds, whatever it does.

    requests' timeouts bound each socket read, not the whole exchange: a server trickling
    one byte at a time could hold a login forever. The worker is left to die on its own
    socket timeout; the caller gets a ProviderError now.
    """
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    worker = threading.Thread(target=run, name="nbauth-http", daemon=True)
    worker.start()
    worker.join(deadline)
    if worker.is_alive():
        raise ProviderError(f"{where} did not answer within {deadline - 5.0:.0f} s (timeout)", url=where)
    if "error" in box:
        raise _translate(box["error"], where) from None
    return box["value"]  # type: ignore[no-any-return]


def _translate(exc: BaseException, where: str) -> BaseException:
    """Map a requests/urllib3 exception to a ProviderError that says what to do."""
    if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
        return ProviderError(f"{where} did not answer in time (timeout)", url=where)
    if isinstance(exc, (urllib3.exceptions.HTTPError, OSError)) and not isinstance(
        exc, requests.exceptions.RequestException
    ):
        return ProviderError(
            f"the connection to {where} broke while reading the answer ({type(exc).__name__})", url=where
        )
    if not isinstance(exc, requests.exceptions.RequestException):
        return exc
    e = requests.exceptions
    if isinstance(exc, e.SSLError):
        return ProviderError(_tls_message(where), url=where)
    if isinstance(exc, e.ProxyError):
        return ProviderError(f"could not reach {where} through the proxy: check HTTPS_PROXY / NO_PROXY", url=where)
    if isinstance(exc, e.ConnectTimeout):
        return ProviderError(f"could not connect to {where} (timeout): is the server up and reachable?", url=where)
    if isinstance(exc, e.Timeout):
        return ProviderError(f"{where} did not answer in time (timeout)", url=where)
    if isinstance(exc, (e.InvalidURL, e.MissingSchema, e.InvalidSchema)):
        return ConfigurationError(f"{where} is not a valid URL")
    if isinstance(exc, (e.ChunkedEncodingError, e.ContentDecodingError)):
        return ProviderError(f"the connection to {where} broke while reading the answer", url=where)
    if isinstance(exc, e.ConnectionError):
        return ProviderError(
            f"could not connect to {where} (connection refused or reset): is the server up and the URL right?",
            url=where,
        )
    return ProviderError(f"request to {where} failed ({type(exc).__name__})", url=where)
