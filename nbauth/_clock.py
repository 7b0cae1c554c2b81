"""The one clock nbauth reads, so tests can move time (google-auth's ``_helpers.utcnow`` idea).

``now()`` is wall-clock epoch seconds (token expiry is wall-clock, RFC 6749 §5.1
``expires_in`` counted from the response); ``monotonic()`` measures waits and deadlines.
Tests patch ``nbauth._clock.now`` / ``nbauth._clock.monotonic`` / ``nbauth._clock.sleep``;
for subprocesses (the CLI, workers) ``NBAUTH_CLOCK_OFFSET=<seconds>`` moves ``now()`` ahead
(read once at import), so a test can make a token due without sleeping.
"""

from __future__ import annotations

import os
import time

__all__ = ["monotonic", "now", "sleep"]


def _offset() -> float:
    try:
        return float(os.environ.get("NBAUTH_CLOCK_OFFSET", "0") or 0)
    except ValueError:
        return 0.0


_OFFSET = _offset()


def now() -> float:
    """Wall-clock time in epoch seconds (plus ``NBAUTH_CLOCK_OFFSET``, a test hook; 0 normally)."""
    return time.time() + _OFFSET


def monotonic() -> float:
    """Monotonic seconds for deadlines and intervals."""
    return time.monotonic()


def sleep(seconds: float) -> None:
    """Sleep; patched to a no-op by tests that drive polling loops."""
    if seconds > 0:
        time.sleep(seconds)
