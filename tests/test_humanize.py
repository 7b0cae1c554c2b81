"""The one duration formatter (nbauth._humanize.duration)."""

import pytest

from nbauth._humanize import duration


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-5, "0 s"),
        (0, "0 s"),
        (40, "40 s"),
        (59.6, "1 min"),
        (60, "1 min"),
        (299, "4 min 59 s"),
        (600, "10 min"),
        (3599, "1 h"),
        (3600, "1 h"),
        (11_100, "3 h 5 min"),
        (86_399, "1 day"),
        (86_400, "1 day"),
        (104_400, "1 day 5 h"),
        (10078 * 60 + 13, "7 days"),
        (30 * 86_400, "30 days"),
    ],
)
def test_duration(seconds, text):
    assert duration(seconds) == text
