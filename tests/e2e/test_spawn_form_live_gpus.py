"""The spawn form with live GPU figures: Debian's Prometheus scraping a dcgm-exporter process.

alice opens the form on a real hub (kubernetes_config.py, the simulated API) whose inventory
reads GPU use from Prometheus: the node list says how busy each GPU node is, choosing gpu-1
shows each of its GPUs and the pod that holds it; when Prometheus stops, the form keeps working
and says the figures are out of date. Screenshot: build/screenshots/spawn-form-live-gpus.png.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.test_spawn_form import log_in, node_option
from tests.fakes.clusters import make_cluster
from tests.fakes.dcgm_exporter import devices_for_cluster
from tests.support.kube_hub import kube_hub_with_catalog
from tests.support.prometheus import DcgmExporterProcess, PrometheusProcess


@pytest.fixture
def prometheus(tmp_path):
    devices = devices_for_cluster(make_cluster("small"), utilization=73.0)
    exporter = DcgmExporterProcess(tmp_path / "dcgm", devices)
    with exporter, PrometheusProcess(tmp_path / "prometheus", [exporter.target]) as process:
        process.wait_for_series("DCGM_FI_DEV_FB_FREE", count=2)
        yield process


def test_live_gpu_use_in_the_picker_and_prometheus_going_away(
    browser, tmp_path, sim, prometheus, screenshot
):
    config = (
        "c.TkKubeSpawner.refresh_seconds = 1\n"
        f"c.GpuMetrics.prometheus_url = {prometheus.url!r}\n"
        "c.GpuMetrics.interval_seconds = 1\n"
        "c.GpuMetrics.timeout_seconds = 1\n"
        "c.GpuMetrics.stale_after_seconds = 3\n"
    )
    with kube_hub_with_catalog(tmp_path / "hub", sim, extra_config=config) as hub:
        context = browser.new_context(viewport={"width": 1280, "height": 1500})
        page = context.new_page()
        try:
            log_in(page, hub)
            page.goto(f"{hub.url}/hub/spawn")
            expect(node_option(page, "gpu-1")).to_contain_text(
                "1/2 NVIDIA-A100-SXM4-40GB · 40 GiB · GPUs 36% busy", timeout=15_000
            )
            # Nodes without GPUs say nothing about GPU use.
            expect(node_option(page, "cpu-1")).not_to_contain_text("busy")

            page.check("#jp-tk-profile-gpu-1")  # gpu-1 is tainted: only GPU servers go there
            page.select_option("#jp-tk-node", "gpu-1")
            use = page.locator("#jp-tk-live-gpus")
            expect(use).to_contain_text(
                "gpu-1 GPUs right now — GPU 0: 73% busy, 10 GiB of 40 GiB used, held by ml/train;"
                " GPU 1: 0% busy, 0 B of 40 GiB used, not held by a pod"
            )
            expect(use).not_to_contain_text("out of date")
            screenshot(page, "spawn-form-live-gpus", full_page=True, animations="disabled")

            prometheus.stop()
            expect(use).to_contain_text(
                "Live GPU figures are out of date: Prometheus", timeout=20_000
            )
            # The last figures stay, marked out of date; the picker itself works as before.
            expect(use).to_contain_text("GPU 0: 73% busy")
            expect(page.locator("[data-tk-freshness]")).to_contain_text("Free resources as of")
            expect(node_option(page, "gpu-1")).to_be_enabled()
            screenshot(page, "spawn-form-live-gpus-stale", full_page=True, animations="disabled")
        finally:
            context.close()
