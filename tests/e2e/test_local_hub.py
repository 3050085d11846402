"""The whole embedded default in a real browser: log in, pick 1 CPU and a GPU, land in JupyterLab.

The hub is share/jupyterhub/local_config.py with the fake NVML library (three A100s, one with MIG);
the spawned server runs the installed jupyter-tk server and lab extensions. Screenshots:
local-login.png, local-spawn-form.png, local-lab.png (GPU panel), local-lab-examples.png
(Examples panel: one left sidebar shows one panel at a time), local-login-backoff.png (the page
after too many failed logins).
"""

import json
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.support.lab_server import open_sidebar_panel, require_built_labextension
from tests.support.local_hub import PASSWORD, LocalHub, default_gpus

GPU = "nvidia.com/gpu"
GPU_PANEL = "jp-tk-gpu-panel"
EXAMPLES_PANEL = "jp-tk-examples-panel"
EXAMPLES = Path(__file__).resolve().parents[2] / "share" / "examples"


def quiet_lab_settings(home: Path) -> None:
    """No news toast over the screenshots; an unrelated GPU extension on this machine hidden."""
    settings = home / ".jupyter/lab/user-settings/@jupyterlab/apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False})
    )
    labconfig = home / ".jupyter/labconfig"
    labconfig.mkdir(parents=True, exist_ok=True)
    (labconfig / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"jupyterlab-nvdashboard": True}})
    )


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    require_built_labextension()
    workdir = tmp_path_factory.mktemp("local-hub-e2e")
    quiet_lab_settings(workdir / "home")
    # A long first back-off, so the wait is certain to hold while the browser looks at it.
    hub = LocalHub(
        workdir,
        gpus=default_gpus(),
        extra_config="c.ThrottledSharedPasswordAuthenticator.backoff_seconds = 60\n",
    )
    hub.start()
    yield hub
    hub.stop()  # cleanup_servers (the default) stops the spawned server with the hub


def test_login_form_and_lab_with_the_gpu_and_examples_panels(hub, page, screenshot):
    # Given the hub's login page
    page.goto(f"{hub.url}/hub/login")
    page.locator("#username_input").fill("alice")
    page.locator("#password_input").fill(PASSWORD)
    screenshot(page, "local-login")

    # When alice logs in she gets the picker with this machine and its GPUs
    page.locator("#login_submit").click()
    page.wait_for_url("**/hub/spawn**")
    page.locator("#jp-tk-profile-custom").check()
    page.locator('input[name="image"][value="tk-jupyter-ml-gpu"]').check()
    page.locator("#jp-tk-cpu").fill("1")
    page.locator("#jp-tk-memory").fill("2Gi")
    page.locator("#jp-tk-gpu-resource").select_option(GPU)
    page.locator("#jp-tk-gpu-count").fill("1")
    # This machine is the one node, with its two whole GPUs and two MIG slices free
    assert page.locator("#jp-tk-node option").count() == 2
    kinds = page.locator("#jp-tk-gpu-resource option").all_inner_texts()
    assert any("A100" in text for text in kinds) and any("1g.10gb" in text for text in kinds)
    summary = page.locator("#jp-tk-summary").inner_text()
    assert "1 CPU" in summary and f"1 {GPU}" in summary
    # It says what this machine cannot promise: without cgroup v2 memory limits are advisory
    # (the note is there after the live refresh too); each GPU's use is spelled out; Custom
    # offers what the machine has (2 GPUs of a kind), not the policy's cap of 16.
    machine = hub.login("alice").resources()["nodes"][0]
    # The front end has applied live data once it marks the node options with their reason.
    expect(page.locator("#jp-tk-node option[data-reason]")).to_have_count(1)
    note = page.locator("#jp-tk-memory-note")
    if machine["memory_enforced"]:
        expect(note).to_be_hidden()
    else:
        expect(note).to_have_text(machine["memory_note"])
        expect(note).to_be_visible()
        assert "memory advisory" in page.locator("#jp-tk-node option[data-reason]").inner_text()
    expect(page.locator("#jp-tk-gpu-use li").first).to_contain_text("GPU 0: free")
    expect(page.locator("[data-tk-custom-limits]")).to_contain_text("· 2 GPUs")
    # What free CPU means here (time-shared by default), in the inventory's words, by the node.
    expect(page.locator("#jp-tk-cpu-note")).to_have_text(machine["cpu_note"])
    assert machine["cpu_note"].startswith("CPU is time-shared on this machine")
    screenshot(page, "local-spawn-form", full_page=True)

    # And when she starts, she lands in JupyterLab
    page.locator('form#spawn_form [type="submit"]').click()
    page.locator(f'.jp-SideBar.jp-mod-left li[data-id="{GPU_PANEL}"]').wait_for(timeout=180_000)
    assert "/user/alice/" in page.evaluate("() => window.location.pathname")

    # Then the GPU panel shows the one GPU she was given, and nothing else
    gpu_panel = open_sidebar_panel(page, GPU_PANEL)
    cards = gpu_panel.locator(".jp-tk-gpu-card")
    cards.first.wait_for(timeout=30_000)
    (taken,) = [
        device
        for kind in hub.login("alice").resources()["nodes"][0]["gpus"]
        for device in kind["devices"]
        if device["taken_by"] == ["alice"]
    ]
    assert cards.count() == 1
    assert taken["uuid"] in cards.first.locator(".jp-tk-gpu-name").get_attribute("title")
    assert "NVIDIA A100-SXM4-80GB" in cards.first.inner_text()
    page.wait_for_timeout(1500)  # one more sampler tick, so the bars and sparkline have figures
    screenshot(page, "local-lab")

    # And the Examples panel lists the examples shipped with jupyter-tk for this image
    examples_panel = open_sidebar_panel(page, EXAMPLES_PANEL)
    for category in ("common", "ml-gpu"):
        shipped = sorted(p.name for p in (EXAMPLES / category).iterdir() if p.is_file())
        examples_panel.locator(".jp-tk-examples-category", has_text=category).wait_for(
            timeout=30_000
        )
        examples_panel.get_by_text(shipped[0], exact=True).first.wait_for()
    screenshot(page, "local-lab-examples")


def test_after_too_many_failed_logins_the_page_says_when_to_try_again(hub, page, screenshot):
    def log_in(password):
        page.goto(f"{hub.url}/hub/login")
        page.locator("#username_input").fill("mallory")
        page.locator("#password_input").fill(password)
        with page.expect_navigation():
            page.locator("#login_submit").click()

    # Given five wrong passwords for one name (the allowed number), and a sixth
    for _ in range(6):
        log_in("not-the-password")
        expect(page.get_by_text("Invalid username or password")).to_be_visible()
    # When the right password follows at once, the hub turns it away and says for how long
    log_in(PASSWORD)
    expect(page.get_by_text("Too many failed logins for this user name.")).to_be_visible()
    expect(page.get_by_text("Try again in", exact=False)).to_be_visible()
    screenshot(page, "local-login-backoff")
