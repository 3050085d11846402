"""JupyterLab warns before the hub stops a server whose GPU does no work (real hub and Lab).

The local hub's GPU idle rule in seconds (stop after 60 s without work, warn 45 s before); the
server holds one fake GPU at 0 % utilization and runs nothing.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_local_hub import quiet_lab_settings
from tests.hub.test_culling import CullingHub, idle_gpus, start_gpu_server
from tests.support.lab_server import require_built_labextension
from tests.support.local_hub import PASSWORD
from tests.support.polling import wait_for

TIMEOUT, WARNING = 60, 45


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_built_labextension()
    workdir = tmp_path_factory.mktemp("culling-e2e")
    quiet_lab_settings(workdir / "home")
    with CullingHub(workdir, gpus=idle_gpus(), timeout=TIMEOUT, warning=WARNING) as hub:
        yield hub


def test_lab_warns_then_the_idle_gpu_server_stops(hub, page, screenshot):
    # Given alice's server holding a GPU that nobody uses, open in her browser
    alice = start_gpu_server(hub, "alice")
    page.goto(f"{hub.url}/hub/login")
    page.locator("#username_input").fill("alice")
    page.locator("#password_input").fill(PASSWORD)
    page.locator("#login_submit").click()
    page.goto(f"{hub.url}/user/alice/lab")

    # Then Lab warns, with how long the GPU was idle and when the server stops
    toast = page.locator(".Toastify__toast", has_text="GPU unused for")
    expect(toast).to_be_visible(timeout=TIMEOUT * 1000)
    expect(toast).to_contain_text(
        re.compile(r"this server stops in \d+ seconds \(at .+\) to free it\. Save your work; ")
    )
    expect(toast).to_contain_text("running code keeps it.")
    # The toast slides in from the right: the picture waits until it lies inside the window.
    page.wait_for_function(
        """() => { const t = document.querySelector('.Toastify__toast');
                   return t && t.getBoundingClientRect().right <= window.innerWidth; }"""
    )
    screenshot(page, "lab-gpu-idle-warning")

    # And the hub stops it, and the GPU is free again
    wait_for(lambda: alice.server() is None, TIMEOUT + 30, "alice's server not stopped")
    kinds = alice.resources()["nodes"][0]["gpus"]
    assert all(d["taken_by"] == [] for kind in kinds for d in kind["devices"])
