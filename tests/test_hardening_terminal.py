"""Server strings never reach a terminal with escape sequences (OSC 8 links, OSC 52 clipboard, CSI, C1)."""

import io
import re

import pytest
from servers.faulty import json_response

import nbauth
from nbauth._cli import _say
from nbauth._terminal import printable
from nbauth.ui._text import device_login_text

OSC8 = "\x1b]8;;https://evil.example/\x1b\\https://idp.example/device\x1b]8;;\x1b\\"
OSC52 = "\x1b]52;c;Y3VybCBldmlsfHNo\x07"
HOSTILE = [
    OSC8,
    OSC52,
    "\x1b[2J\x1b[H",
    "\x1b[1A\x1b[2K",
    "\x9b31m",
    "\x9d8;;https://evil\x9c",
    "\x1bP+q\x1b\\",
    "\x1b_apc\x1b\\",
    "\x90dcs\x9c",
    "a\rb",
    "\x07\x08\x7f",
    "\u202etxt.exe",
    "\x1bc",
    "\x1b(0",
]
ESCAPE_OR_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("hostile", HOSTILE)
def test_printable_removes_every_escape_and_control(hostile):
    out = printable(f"before {hostile} after")
    assert not ESCAPE_OR_CONTROL.search(out), repr(out)
    assert out.startswith("before ") and out.endswith(" after")
    assert "52;" not in out and "8;;" not in out


def test_an_unterminated_string_sequence_swallows_the_rest_as_a_terminal_would():
    assert printable("ok \x1b]52;c;ZXZpbA== and everything after") == "ok "


def test_printable_keeps_ordinary_text():
    text = "Überprüfen Sie https://idp.example/device?x=1&y=2 — code ABCD-1234\n\tnext line"
    assert printable(text) == text
    assert printable(text, newlines=False) == text.replace("\n", " ").replace("\t", " ")


def test_osc8_link_text_stays_only_the_visible_part():
    assert printable(OSC8) == "https://idp.example/device"


def device_provider(faulty):
    return nbauth.Provider(
        f"{faulty.url}/token",
        device_authorization_url=f"{faulty.url}/device",
        client_id="app",
        client_auth="none",
        timeout=2,
    )


def test_text_device_flow_prints_no_escape_sequence(faulty):
    faulty.set(
        "POST",
        "/device",
        json_response(
            {
                "device_code": "dc",
                "user_code": "WXYZ-1234",
                "expires_in": 60,
                "interval": 1,
                "verification_uri": f"https://idp.example/device{OSC8}{OSC52}",
                "verification_uri_complete": f"https://idp.example/device?c=1\x1b[2J{OSC52}",
            }
        ),
    )
    faulty.set(
        "POST",
        "/token",
        json_response(
            {"error": "access_denied", "error_description": f"no \x1b]52;c;ZXZpbA==\x07 {OSC8} way"}, status=400
        ),
    )
    out = io.StringIO()
    with pytest.raises(nbauth.AccessDenied) as info:
        device_login_text(device_provider(faulty), None, out=out)
    printed = out.getvalue()
    assert "https://idp.example/device" in printed and "WXYZ-1234" in printed
    assert not ESCAPE_OR_CONTROL.search(printed.replace("\n", "")), repr(printed)
    assert not ESCAPE_OR_CONTROL.search(str(info.value)), repr(str(info.value))  # error messages too


def test_cli_output_is_sanitised(capsys):
    _say(f"nbauth: ProviderError: {OSC52}{OSC8} \x9b2J")
    err = capsys.readouterr().err
    assert not ESCAPE_OR_CONTROL.search(err.replace("\n", "")), repr(err)
