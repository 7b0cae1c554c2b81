"""RFC 8628 polling as a generator, driven by next/send with a fake clock (no I/O, no sleeping)."""

import pytest

import nbauth
from nbauth._device import DevicePoll, DevicePrompt, DeviceStart, Reply, Wait, device_flow

START = {
    "device_code": "DEVICE-CODE-123",
    "user_code": "ABCD-EFGH",
    "verification_uri": "https://idp/device",
    "verification_uri_complete": "https://idp/device?user_code=ABCD-EFGH",
    "expires_in": 600,
    "interval": 5,
}
TOKEN = {"access_token": "AT", "token_type": "Bearer"}


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def run(start_body, replies, clock=None):
    """Drive the flow: answer polls from `replies`; return (waits, polls, result or exception)."""
    clock = clock or Clock()
    gen = device_flow(client_id="c", scope="openid", monotonic=clock)
    waits, polls, prompt = [], 0, None
    replies = list(replies)
    step = next(gen)
    assert isinstance(step, DeviceStart)
    assert dict(step.params) == {"client_id": "c", "scope": "openid"}
    try:
        step = gen.send(Reply(200, start_body))
        while True:
            if isinstance(step, DevicePrompt):
                prompt = step
                step = gen.send(None)
            elif isinstance(step, Wait):
                waits.append(step.seconds)
                clock.t += step.seconds
                step = gen.send(None)
            elif isinstance(step, DevicePoll):
                polls += 1
                assert step.request.params["device_code"] == "DEVICE-CODE-123"
                step = gen.send(replies.pop(0) if replies else Reply(400, {"error": "authorization_pending"}))
    except StopIteration as done:
        return waits, polls, prompt, done.value
    except nbauth.AuthError as exc:
        return waits, polls, prompt, exc


def pending():
    return Reply(400, {"error": "authorization_pending"})


def test_honours_interval_and_returns_token():
    waits, polls, prompt, result = run(START, [pending(), pending(), Reply(200, TOKEN)])
    assert prompt.user_code == "ABCD-EFGH" and prompt.verification_uri_complete.endswith("ABCD-EFGH")
    assert waits == [5, 5, 5] and polls == 3
    assert result == TOKEN


def test_slow_down_adds_five_seconds_each_time():
    replies = [Reply(400, {"error": "slow_down"}), Reply(400, {"error": "slow_down"}), pending(), Reply(200, TOKEN)]
    waits, _, _, result = run(START, replies)
    assert waits == [5, 10, 15, 15]
    assert result == TOKEN


@pytest.mark.parametrize("interval", [None, 0, -3, "x"])
def test_missing_or_zero_interval_defaults_to_five(interval):
    body = dict(START)
    if interval is None:
        del body["interval"]
    else:
        body["interval"] = interval
    waits, *_ = run(body, [Reply(200, TOKEN)])
    assert waits == [5]


def test_access_denied_and_expired_token_raise_their_class():
    assert isinstance(run(START, [Reply(400, {"error": "access_denied"})])[3], nbauth.AccessDenied)
    assert isinstance(run(START, [Reply(400, {"error": "expired_token"})])[3], nbauth.ExpiredToken)


def test_unknown_error_code_is_typed():
    result = run(START, [Reply(400, {"error": "weird_code", "error_description": "DEVICE-CODE-123 leaked"})])[3]
    assert type(result) is nbauth.OAuthError and result.error == "weird_code"
    assert "DEVICE-CODE-123" not in str(result)  # the device code is redacted
    assert "*** leaked" in str(result)


def test_gives_up_at_the_code_expiry_without_server_help():
    body = dict(START, expires_in=12)
    waits, polls, _, result = run(body, [pending()] * 100)
    assert isinstance(result, nbauth.ExpiredToken)
    assert sum(waits) <= 12 and polls == 2


def test_transient_failures_back_off_then_fail():
    err = nbauth.ProviderError("boom")
    waits, polls, _, result = run(START, [Reply(0, None, err)] * 10)
    assert result is err
    assert polls == 4 and waits == [5, 10, 20, 40]


def test_transient_failure_then_success():
    waits, _, _, result = run(START, [Reply(503, None), Reply(200, TOKEN)])
    assert result == TOKEN and waits == [5, 10]


@pytest.mark.parametrize("uri", ["javascript:alert(1)", "file:///etc/passwd", "", None, "https://"])
def test_verification_uri_must_be_http(uri):
    body = dict(START, verification_uri=uri)
    assert isinstance(run(body, [])[3], nbauth.ProviderError)


def test_start_errors():
    gen = device_flow(client_id="c", monotonic=Clock())
    next(gen)
    with pytest.raises(nbauth.UnauthorizedClient):
        gen.send(Reply(400, {"error": "unauthorized_client"}))
    gen = device_flow(client_id="c", monotonic=Clock())
    next(gen)
    with pytest.raises(nbauth.ProviderError):
        gen.send(Reply(200, {"user_code": "X"}))


def test_google_style_verification_url_alias():
    """Google's ``verification_url`` is a compliance fix (nbauth._fixes) every provider gets by default."""
    from nbauth._fixes import FIXES

    body = dict(START)
    body["verification_url"] = body.pop("verification_uri")
    _, _, prompt, result = run(FIXES["verification_url"].device_body(body), [Reply(200, TOKEN)])
    assert prompt.verification_uri == "https://idp/device" and result == TOKEN
