"""The spawn form in a real browser: a real JupyterHub with TkKubeSpawner, the simulated API.

alice (group gpu-lab) logs in, sees the nodes and free GPUs, watches gpu-1 become unusable
when another pod takes its last free GPU (and usable again when it goes), picks gpu-1 and
starts; the simulated API receives the pod. Screenshots: build/screenshots/spawn-form*.png.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fakes.clusters import make_pod
from tests.support.kube_hub import kube_hub_with_catalog
from tests.support.spawn_fixtures import GPU

POD = "jupyter-alice"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, sim):
    # Refresh every second so the test sees the cluster change quickly.
    refresh = "c.TkKubeSpawner.refresh_seconds = 1\n"
    with kube_hub_with_catalog(tmp_path_factory.mktemp("hub"), sim, extra_config=refresh) as hub:
        yield hub


def log_in(page, hub, name="alice"):
    page.goto(f"{hub.url}/hub/login")
    page.fill("#username_input", name)
    page.fill("#password_input", "any-password")
    page.click("#login_submit")
    page.wait_for_url(re.compile(r"/hub/(spawn|home)"))


def node_option(page, name):
    return page.locator(f'#jp-tk-node option[value="{name}"]')


def test_pick_a_gpu_node_watch_it_fill_up_and_start(browser, hub, sim, screenshot):
    context = browser.new_context(viewport={"width": 1280, "height": 1500}, color_scheme="light")
    page = context.new_page()
    try:
        log_in(page, hub)
        page.goto(f"{hub.url}/hub/spawn")
        # The live data arrived (the freshness line is rewritten by the front end).
        expect(page.locator("[data-tk-freshness]")).to_contain_text("Free resources as of")
        expect(node_option(page, "gpu-1")).to_contain_text("1/2 NVIDIA-A100-SXM4-40GB · 40 GiB")
        expect(node_option(page, "cpu-2")).to_contain_text("(cordoned)")
        expect(node_option(page, "cpu-2")).to_be_disabled()

        # Keyboard: from "CPU basic", the arrow key moves to "1 GPU"; the summary follows.
        page.focus("#jp-tk-profile-cpu-basic")
        page.keyboard.press("ArrowRight")
        expect(page.locator("#jp-tk-profile-gpu-1")).to_be_checked()
        page.check("#jp-tk-image-2")  # Machine learning (GPU)
        summary = page.locator("#jp-tk-summary")
        expect(summary).to_have_text(
            "Will request 4 CPU, 16 GiB memory, 1 nvidia.com/gpu on any node that fits "
            "with Machine learning (GPU)."
        )
        expect(node_option(page, "gpu-1")).to_be_enabled()
        expect(node_option(page, "cpu-1")).to_be_disabled()
        expect(node_option(page, "cpu-1")).to_contain_text("cannot fit: no nvidia.com/gpu")
        expect(page.locator("#jp-tk-cpu")).to_be_disabled()  # a preset sets the size
        screenshot(page, "spawn-form", full_page=True, animations="disabled")

        # Another pod takes gpu-1's last free GPU: the choice is disabled with the reason.
        sim.create_pod(make_pod("thief", "ml", node="gpu-1", limits={GPU: "1"}))
        expect(node_option(page, "gpu-1")).to_be_disabled(timeout=10_000)
        expect(node_option(page, "gpu-1")).to_contain_text(
            "cannot fit: only 0 of 2 nvidia.com/gpu free"
        )
        expect(page.locator("#jp-tk-problems")).to_contain_text("Nothing fits this choice")
        expect(page.locator('[data-tk-preset="gpu-1"] [data-tk-reason]')).to_have_text(
            "no node has room right now"
        )
        screenshot(page, "spawn-form-gpu-taken", full_page=True, animations="disabled")

        # It goes away again: gpu-1 can be picked, and the server starts there.
        sim.delete_pod("thief", "ml")
        expect(node_option(page, "gpu-1")).to_be_enabled(timeout=10_000)
        page.select_option("#jp-tk-node", "gpu-1")
        expect(summary).to_contain_text("on gpu-1 with Machine learning (GPU)")
        expect(page.locator("#jp-tk-problems")).to_be_empty()
        page.click("#spawn_form button[type=submit]")
        page.wait_for_url(re.compile(r"/hub/spawn-pending/alice"))
        pod = sim.wait_for_pod(POD)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        assert container["resources"]["limits"][GPU] == "1"
        assert container["image"] == "nvcr.io/nvidia/pytorch:24.05-py3"
        assert pod["spec"]["nodeName"] == "gpu-1"
    finally:
        context.close()
        hub.login("alice").stop_server()
        sim.wait_for_pod(POD, gone=True)


def test_dark_mode_and_a_refused_deep_link(browser, hub, sim, screenshot):
    context = browser.new_context(viewport={"width": 1280, "height": 1500}, color_scheme="dark")
    page = context.new_page()
    try:
        log_in(page, hub)
        page.goto(f"{hub.url}/hub/spawn")
        expect(page.locator("[data-tk-freshness]")).to_contain_text("Free resources as of")
        assert page.evaluate("document.documentElement.dataset.bsTheme") == "dark"
        screenshot(page, "spawn-form-dark", full_page=True, animations="disabled")

        response = page.goto(f"{hub.url}/hub/spawn?image=tk-jupyter-ml-gpu&profile=cpu-basic")
        assert response.status == 400
        error = page.locator(".spawn-error-msg")
        expect(error).to_contain_text("needs a GPU: choose a GPU preset")
        expect(error).to_have_attribute("role", "alert")
        screenshot(page, "spawn-form-error", full_page=True, animations="disabled")
        assert sim.pods() == []
    finally:
        context.close()


def test_the_form_works_without_javascript(browser, hub, sim):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        log_in(page, hub)
        page.goto(f"{hub.url}/hub/spawn")
        # Server-rendered: the node list with free amounts is there without any script.
        expect(node_option(page, "gpu-1")).to_contain_text("1/2 NVIDIA-A100-SXM4-40GB")
        page.check("#jp-tk-profile-custom")
        page.check("#jp-tk-image-1")  # SciPy (the last spawn used a GPU image)
        page.fill("#jp-tk-cpu", "1.5")
        page.fill("#jp-tk-memory", "3Gi")
        page.select_option("#jp-tk-gpu-resource", "")  # the last spawn had a GPU
        page.select_option("#jp-tk-node", "cpu-1")
        page.click("#spawn_form button[type=submit]")
        page.wait_for_load_state()
        assert "/hub/spawn-pending/alice" in page.url, page.locator("body").inner_text()
        pod = sim.wait_for_pod(POD)
        assert pod["spec"]["nodeName"] == "cpu-1"
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert (float(limits["cpu"]), int(limits["memory"])) == (1.5, 3 * 2**30)
    finally:
        context.close()
        hub.login("alice").stop_server()
        sim.wait_for_pod(POD, gone=True)
