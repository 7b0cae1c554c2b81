r"""Server strings made safe to print on a terminal (ECMA-48 escape and control sequences removed).

A server chooses ``verification_uri``, user codes, ``error_description`` and claims. Printed
raw, ``ESC ] 8 ;; URL ST`` (OSC 8) shows one link and opens another, ``ESC ] 52`` (OSC 52)
writes the user's clipboard, CSI sequences move the cursor over earlier lines, ``\r``
overwrites them and bidi overrides reorder what is read (CVE-2021-42574, "Trojan Source").
:func:`printable` strips every escape sequence - 7-bit (ESC ...) and 8-bit (C1 CSI/OSC/DCS/
SOS/PM/APC) with its payload - and replaces each remaining C0/C1 control and bidi control
with ``?``. Used by error messages (``redact``), the text login flows and the CLI.
"""

from __future__ import annotations

import re

__all__ = ["printable"]

_STRING_END = r"(?:\x07|\x1b\\|\x9c|$)"
# pattern strings, compiled on first use (re caches them): compiling at import costs ~1.5 ms
_ESCAPES = (
    r"\x1b\][^\x07\x1b\x9c]*"
    + _STRING_END  # OSC (8: links, 52: clipboard), to BEL or ST
    + r"|\x1b[PX^_][^\x1b\x9c]*"
    + _STRING_END  # DCS, SOS, PM, APC strings
    + r"|\x1b\[[0-?]*[ -/]*[@-~]?"  # CSI: parameters, intermediates, final byte
    + r"|\x1b[ -/]*[0-~]?"  # any other escape sequence (nF, Fp, Fe, Fs)
    + r"|\x9d[^\x07\x1b\x9c]*"
    + _STRING_END  # 8-bit OSC
    + r"|[\x90\x98\x9e\x9f][^\x1b\x9c]*"
    + _STRING_END  # 8-bit DCS, SOS, PM, APC
    + r"|\x9b[0-?]*[ -/]*[@-~]?"  # 8-bit CSI
)
_CONTROLS = r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]"


def printable(text: object, *, newlines: bool = True) -> str:
    r"""``text`` with no escape sequence and no control character but ``\n`` / ``\t`` (or none)."""
    clean = re.sub(_CONTROLS, "?", re.sub(_ESCAPES, "", str(text)))
    if not newlines:
        clean = clean.replace("\n", " ").replace("\t", " ")
    return clean
