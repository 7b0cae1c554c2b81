"""The device authorization grant (RFC 8628) as a generator: ``response = yield step``.

No I/O and no sleeping here. The generator yields steps and the driver performs them:

- :class:`DeviceStart` - POST the device authorization request (§3.1); send back a :class:`Reply`.
- :class:`DevicePrompt` - show the user code and URL (§3.3); send back None.
- :class:`Wait` - wait that many seconds (the driver sleeps in slices and may cancel); send None.
- :class:`DevicePoll` - POST the device access token request (§3.4); send back a :class:`Reply`.

It returns the successful token response body. It honours ``interval`` (5 s when missing
or zero, §3.2), adds 5 s on ``slow_down`` (§3.5), keeps polling on
``authorization_pending``, raises :class:`AccessDenied` / :class:`ExpiredToken`, and raises
:class:`ExpiredToken` itself once the code's ``expires_in`` has passed - it never polls
forever. A few transient failures (5xx, timeouts) are retried with a longer interval.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable, Generator, Mapping, Sequence
from typing import Any

from ._errors import ExpiredToken, ProviderError, error_from_code
from ._grants import DeviceCode, TokenRequest
from ._record import Record
from ._scope import join_scope

__all__ = [
    "DevicePoll",
    "DevicePrompt",
    "DeviceStart",
    "Reply",
    "Wait",
    "device_flow",
]

DEFAULT_INTERVAL = 5.0  # RFC 8628 §3.2
SLOW_DOWN_STEP = 5.0  # RFC 8628 §3.5
MAX_INTERVAL = 60.0
DEFAULT_EXPIRES_IN = 600.0
MAX_EXPIRES_IN = 3600.0
MAX_TRANSIENT_FAILURES = 3


class Reply(Record):
    """An HTTP answer handed back to the generator: status and parsed JSON (None if not JSON).

    ``error`` is set instead when no usable answer came (timeout, refused, HTML...).
    """

    __slots__ = ("body", "error", "status")
    status: int
    body: Any
    error: ProviderError | None

    def __init__(self, status: int, body: Any = None, error: ProviderError | None = None) -> None:
        self._set(status=status, body=body, error=error)


class DeviceStart(Record):
    """POST the device authorization request (RFC 8628 §3.1) with these fields."""

    __slots__ = ("params",)
    params: Mapping[str, str]

    def __init__(self, params: Mapping[str, str]) -> None:
        self._set(params=params)


class DevicePrompt(Record):
    """What to show the user (RFC 8628 §3.3): go to ``verification_uri``, type ``user_code``."""

    __slots__ = ("expires_in", "interval", "user_code", "verification_uri", "verification_uri_complete")
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float

    def __init__(
        self,
        user_code: str,
        verification_uri: str,
        verification_uri_complete: str | None,
        expires_in: float,
        interval: float,
    ) -> None:
        self._set(
            user_code=user_code,
            verification_uri=verification_uri,
            verification_uri_complete=verification_uri_complete,
            expires_in=expires_in,
            interval=interval,
        )


class Wait(Record):
    """Wait that many seconds before the next step (RFC 8628 §3.5)."""

    __slots__ = ("seconds",)
    seconds: float

    def __init__(self, seconds: float) -> None:
        self._set(seconds=seconds)


class DevicePoll(Record):
    """POST the device access token request (RFC 8628 §3.4)."""

    __slots__ = ("request",)
    request: TokenRequest

    def __init__(self, request: TokenRequest) -> None:
        self._set(request=request)


Step = DeviceStart | DevicePrompt | Wait | DevicePoll


def _http_url(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 2048:
        raise ProviderError(f"the device authorization response has no usable {name}")
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.netloc:
        raise ProviderError(f"the device authorization response's {name} is not an http(s) URL")
    return value


def _seconds(value: Any, default: float, cap: float) -> float:
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return default
    return min(float(value), cap)


def parse_device_response(body: Any) -> tuple[str, DevicePrompt]:
    """Validate a device authorization response (RFC 8628 §3.2) -> (device_code, prompt)."""
    if not isinstance(body, dict):
        raise ProviderError("the device authorization response is not a JSON object")
    device_code, user_code = body.get("device_code"), body.get("user_code")
    if not isinstance(device_code, str) or not device_code or len(device_code) > 4096:
        raise ProviderError("the device authorization response has no device_code")
    if not isinstance(user_code, str) or not user_code or len(user_code) > 64 or not user_code.isprintable():
        raise ProviderError("the device authorization response has no usable user_code")
    uri = _http_url(body.get("verification_uri"), "verification_uri")
    complete = body.get("verification_uri_complete")
    complete = _http_url(complete, "verification_uri_complete") if complete is not None else None
    prompt = DevicePrompt(
        user_code=user_code,
        verification_uri=uri,
        verification_uri_complete=complete,
        expires_in=_seconds(body.get("expires_in"), DEFAULT_EXPIRES_IN, MAX_EXPIRES_IN),
        interval=_seconds(body.get("interval"), DEFAULT_INTERVAL, MAX_INTERVAL),
    )
    return device_code, prompt


def _started(reply: Reply) -> tuple[str, DevicePrompt]:
    """The device authorization response (RFC 8628 §3.2), or its typed error."""
    if reply.error is not None:
        raise reply.error
    body = reply.body
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        raise error_from_code(body["error"], str(body.get("error_description") or ""), status=reply.status)
    if reply.status != 200:
        raise ProviderError("the device authorization endpoint refused the request", status=reply.status)
    return parse_device_response(body)


def _next_interval(interval: float, error: str) -> float:
    """Keep polling; ``slow_down`` adds 5 s to the interval for good (RFC 8628 §3.5)."""
    return min(interval + SLOW_DOWN_STEP, MAX_INTERVAL) if error == "slow_down" else interval


def device_flow(
    *,
    client_id: str | None,
    scope: str | Sequence[str] | None = None,
    scope_separator: str = " ",
    extra: Mapping[str, str] | None = None,
    monotonic: Callable[[], float],
) -> Generator[Step, Any, dict[str, Any]]:
    """Run the device authorization grant (RFC 8628 §3.1-3.5) as a generator.

    ``monotonic`` is the clock the deadline is measured with (the driver's, so tests can fake
    it). Returns the token response body of the approved grant.
    """
    params: dict[str, str] = {}
    if client_id:
        params["client_id"] = client_id
    joined = join_scope(scope, scope_separator)
    if joined:
        params["scope"] = joined
    params.update(extra or {})

    reply: Reply = yield DeviceStart(params)
    device_code, prompt = _started(reply)
    deadline = monotonic() + prompt.expires_in
    yield prompt

    interval = prompt.interval
    failures = 0
    request = DeviceCode(device_code).request(scope_separator)
    while True:
        left = deadline - monotonic()
        if left <= 0:
            raise ExpiredToken("expired_token", "the device code expired before it was approved")
        yield Wait(min(interval, left))
        if monotonic() >= deadline:
            raise ExpiredToken("expired_token", "the device code expired before it was approved")
        reply = yield DevicePoll(request)
        body = reply.body
        error = body.get("error") if isinstance(body, dict) else None
        if reply.error is not None or (error is None and reply.status >= 500):
            failures += 1  # transient: timeouts, resets, 5xx - back off and try again
            if failures > MAX_TRANSIENT_FAILURES:
                raise reply.error or ProviderError("the token endpoint kept failing while polling", status=reply.status)
            interval = min(interval * 2, MAX_INTERVAL)
            continue
        failures = 0
        if error in ("authorization_pending", "slow_down"):
            interval = _next_interval(interval, error)
            continue
        if isinstance(error, str):
            raise error_from_code(
                error, str(body.get("error_description") or ""), status=reply.status, secrets=(device_code,)
            )
        if reply.status == 200 and isinstance(body, dict):
            return body
        raise ProviderError(
            "the token endpoint answered the device poll with neither a token nor an OAuth error", status=reply.status
        )
