"""Durations for people: ``7 days``, ``1 day 5 h``, ``3 h 5 min``, ``4 min 59 s``, ``40 s``.

One formatter for every place nbauth shows how long something lasts (the CLI, ``nbauth.sessions()``,
the session repr, the status card). It imports nothing, so any module may use it. Token lifetimes
come from ``expires_in`` (RFC 6749 §5.1), counted in seconds.
"""

from __future__ import annotations

__all__ = ["duration"]

_MINUTE, _HOUR, _DAY = 60, 3600, 86400


def _plural(count: int, unit: str) -> str:
    return f"{count} {unit}" if count == 1 else f"{count} {unit}s"


def duration(seconds: float) -> str:
    """Two units at most, the second dropped when it is zero or would be noise.

    ``duration(604_680)`` is ``"7 days"``; ``duration(11_100)`` ``"3 h 5 min"``; ``duration(40)``
    ``"40 s"``; negative values count as 0.
    """
    total = max(0, round(seconds))
    if total < _MINUTE:
        return f"{total} s"
    if total < 10 * _MINUTE:
        minutes, secs = divmod(total, _MINUTE)
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    if total < _HOUR:
        minutes = round(total / _MINUTE)
        return "1 h" if minutes == 60 else f"{minutes} min"
    if total < _DAY:
        minutes = round(total / _MINUTE)
        hours, mins = divmod(minutes, 60)
        if hours == 24:
            return "1 day"
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    if total < 2 * _DAY:
        hours = round(total / _HOUR)
        days, hrs = divmod(hours, 24)
        return f"{_plural(days, 'day')} {hrs} h" if hrs else _plural(days, "day")
    return _plural(round(total / _DAY), "day")
