"""The one clock nbauth reads, so tests can move time (google-auth's ``_helpers.utcnow`` idea).

``now()`` is wall-clock epoch seconds (token expiry is wall-clock, RFC 6749 §5.1
``expires_in`` counted from the response); ``monotonic()`` measures waits and deadlines.
Tests patch ``nbauth._clock.now`` / ``nbauth._clock.monotonic`` / ``nbauth._clock.sleep``.
"""

from __future__ import annotations

import time

__all__ = ["monotonic", "now", "sleep"]


def now() -> float:
    """Wall-clock time in epoch seconds."""
    return time.time()


def monotonic() -> float:
    """Monotonic seconds for deadlines and intervals."""
    return time.monotonic()


def sleep(seconds: float) -> None:
    """Sleep; patched to a no-op by tests that drive polling loops."""
    if seconds > 0:
        time.sleep(seconds)
