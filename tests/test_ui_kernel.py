"""The widgets' blocking path in a real kernel: the cell blocks, its widgets stay live (no browser).

Run by ``./dev test`` twice: on the main venv's ipykernel 7 (kernel subshells) and in a small
second venv with ipykernel 6 (jupyter-ui-poll). The frontend is a jupyter_client that clicks the
panel's Cancel button the way JupyterLab does (a ``comm_msg`` on the shell channel).
"""

from __future__ import annotations

import os
import queue
import time

import ipykernel
import pytest
from jupyter_client.manager import KernelManager

CELL = """
import ipykernel, nbauth
print("ipykernel", ipykernel.__version__)
p = nbauth.Keycloak({origin!r}, "demo", client_id="public-client", client_auth="none")
try:
    p.device_login(force=True)
except nbauth.LoginCancelled:
    print("CANCELLED")
"""


@pytest.fixture
def kernel(nbauth_env):
    env = {**os.environ, "NBAUTH_UI": "widgets", "PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    km = KernelManager(kernel_name="python3")
    km.start_kernel(env=env)
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60)
    yield kc
    kc.stop_channels()
    km.shutdown_kernel(now=True)


def messages(kc, until, deadline):
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.5)
        except queue.Empty:
            continue
        yield msg
        if until(msg):
            return
    raise AssertionError("the kernel did not get there in time")


def test_device_panel_blocks_the_cell_and_its_cancel_button_stays_live(kernel, idp):
    msg_id = kernel.execute(CELL.format(origin=idp.origin))
    cancel = None
    printed = []
    deadline = time.monotonic() + 60
    for msg in messages(kernel, lambda m: cancel is not None, deadline):
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            printed.append(msg["content"]["text"])
        elif msg["msg_type"] == "comm_open":
            state = msg["content"]["data"].get("state", {})
            if state.get("_model_name") == "ButtonModel" and "Cancel" in str(state.get("description")):
                cancel = msg["content"]["comm_id"]
        elif msg["msg_type"] == "status" and msg["parent_header"].get("msg_id") == msg_id:
            assert msg["content"]["execution_state"] != "idle", "the cell ended before the login did"
    time.sleep(0.5)  # the cell is blocked waiting for approval now
    kernel.shell_channel.send(
        kernel.session.msg("comm_msg", {"comm_id": cancel, "data": {"method": "custom", "content": {"event": "click"}}})
    )

    def finished(m):
        return (
            m["msg_type"] == "status"
            and m["parent_header"].get("msg_id") == msg_id
            and m["content"]["execution_state"] == "idle"
        )

    for msg in messages(kernel, finished, time.monotonic() + 30):
        if msg["msg_type"] == "stream" and msg["parent_header"].get("msg_id") == msg_id:
            printed.append(msg["content"]["text"])
    assert f"ipykernel {ipykernel.__version__}" in "".join(printed)  # the kernel runs this venv's ipykernel
    assert "CANCELLED" in "".join(printed), (ipykernel.__version__, printed)
