"""Live GPU figures from a real Prometheus scraping dcgm-exporter's format (a fake exporter).

Given the simulated "small" cluster's GPUs served by the fake exporter and scraped by Debian's
Prometheus, GpuMetrics reads them per node; when Prometheus stops, the last figures are kept and
then marked stale; a Prometheus that never answers leaves the figures unavailable, not the hub.
"""

from __future__ import annotations

import asyncio
import json
import socket

import pytest

from jupyter_tk.hub.contract import ResourcesSnapshot
from jupyter_tk.hub.gpu_metrics import GpuMetrics, parse_dcgm_vector
from tests.fakes.clusters import make_cluster
from tests.fakes.dcgm_exporter import devices_for_cluster
from tests.support.contract import contract_errors
from tests.support.kube_hub import kube_hub_with_catalog
from tests.support.polling import wait_for
from tests.support.prometheus import DcgmExporterProcess, PrometheusProcess

MIB = 2**20


@pytest.fixture(scope="module")
def cluster():
    return make_cluster("small")


@pytest.fixture(scope="module")
def exporter(tmp_path_factory, cluster):
    devices = devices_for_cluster(cluster, utilization=73.0)
    with DcgmExporterProcess(tmp_path_factory.mktemp("dcgm"), devices) as process:
        yield process


@pytest.fixture
def prometheus(tmp_path, exporter):
    with PrometheusProcess(tmp_path / "prometheus", [exporter.target]) as process:
        process.wait_for_series("DCGM_FI_DEV_FB_FREE", count=2)
        yield process


async def test_figures_per_node_and_gpu_with_the_pod_that_holds_it(prometheus):
    metrics = GpuMetrics(prometheus_url=prometheus.url)
    await metrics.refresh()
    block = metrics.block()
    assert block["available"] is True
    assert block["stale"] is False
    assert block["message"] is None
    assert list(block["nodes"]) == ["gpu-1"]
    node = block["nodes"]["gpu-1"]
    held, free = node["gpus"]
    # "train" holds one of gpu-1's two A100s (40960 MiB each, a quarter of it in use).
    assert (held["index"], held["pod"], held["namespace"]) == (0, "train", "ml")
    assert held["utilization_gpu"] == 73.0
    assert held["memory_used"] == 10240 * MIB
    assert held["memory_total"] == 40960 * MIB
    assert held["model"] == "NVIDIA A100 SXM4 40GB"
    assert held["idle_allocated"] is False
    assert (free["index"], free["pod"], free["utilization_gpu"]) == (1, None, 0.0)
    assert free["idle_allocated"] is False  # free, not allocated
    assert metrics.queries_sent == 1
    assert held["text"] == "GPU 0: 73% busy, 10 GiB of 40 GiB used, held by ml/train"
    assert free["text"] == "GPU 1: 0% busy, 0 B of 40 GiB used, not held by a pod"
    assert node["summary"] == "GPUs 36% busy"
    assert node["idle_allocated"] == 0


async def test_an_allocated_gpu_without_work_is_marked_idle(prometheus, exporter, cluster):
    exporter.set_devices(devices_for_cluster(cluster, utilization=0.0))
    try:
        prometheus.wait_for_series('DCGM_FI_DEV_GPU_UTIL{pod="train"} == 0')
        metrics = GpuMetrics(prometheus_url=prometheus.url)
        await metrics.refresh()
        node = metrics.block()["nodes"]["gpu-1"]
        held = node["gpus"][0]
        assert held["pod"] == "train"
        assert held["idle_allocated"] is True
        assert held["text"].endswith("held by ml/train, idle")
        assert node["summary"] == "GPUs 0% busy · 1 idle though allocated"
    finally:
        exporter.set_devices(devices_for_cluster(cluster, utilization=73.0))


async def test_prometheus_stopped_keeps_the_last_figures_then_marks_them_stale(prometheus):
    changes = []
    metrics = GpuMetrics(
        prometheus_url=prometheus.url, stale_after_seconds=0.5, on_change=lambda: changes.append(1)
    )
    await metrics.refresh()
    before = metrics.block()
    assert before["available"] and not before["stale"]
    assert len(changes) == 1

    prometheus.stop()
    await metrics.refresh()
    await asyncio.sleep(0.6)
    after = metrics.block()
    assert after["available"] is True
    assert after["stale"] is True
    assert after["nodes"] == before["nodes"]
    assert after["message"].startswith("Live GPU figures are out of date: Prometheus")
    assert len(changes) == 2  # stale is a change the inventory must hear about
    assert json.loads(metrics.block_json()) == after

    prometheus.start()
    await metrics.refresh()
    assert metrics.block()["stale"] is False
    assert metrics.block()["message"] is None


async def test_a_prometheus_that_never_answers_leaves_the_figures_unavailable():
    # A socket that accepts connections and never answers: a hung Prometheus.
    with socket.socket() as hung:
        hung.bind(("127.0.0.1", 0))
        hung.listen(8)
        url = f"http://127.0.0.1:{hung.getsockname()[1]}"
        metrics = GpuMetrics(prometheus_url=url, timeout_seconds=0.3)
        await asyncio.wait_for(metrics.refresh(), 10)
    block = metrics.block()
    assert block["available"] is False
    assert block["nodes"] == {}
    assert block["message"].startswith("Live GPU figures are unavailable: Prometheus did not")


async def test_no_url_means_no_source_and_no_queries():
    metrics = GpuMetrics(prometheus_url="")
    metrics.start()
    assert metrics.block() is None
    assert metrics.queries_sent == 0
    await metrics.stop()


def sample(name, value, **labels):
    return {"metric": {"__name__": name, **labels}, "value": [1.0, value]}


@pytest.mark.parametrize(
    ("value", "expected"),
    [("42", 42.0), ("NaN", None), ("+Inf", None), ("not a number", None)],
)
def test_sample_values_that_are_not_finite_numbers_become_null(value, expected):
    nodes = parse_dcgm_vector(
        [sample("DCGM_FI_DEV_GPU_UTIL", value, Hostname="n", UUID="GPU-1", gpu="0")], 5
    )
    assert nodes["n"]["gpus"][0]["utilization_gpu"] == expected


def test_series_without_a_node_are_dropped_and_mig_instances_kept_apart():
    labels = {"Hostname": "a100", "UUID": "GPU-9", "gpu": "0", "GPU_I_PROFILE": "1g.10gb"}
    nodes = parse_dcgm_vector(
        [
            sample("DCGM_FI_DEV_FB_USED", "100", **labels, GPU_I_ID="1"),
            sample("DCGM_FI_DEV_FB_FREE", "900", **labels, GPU_I_ID="1"),
            sample("DCGM_FI_DEV_FB_USED", "5", **labels, GPU_I_ID="2"),
            sample("DCGM_FI_DEV_GPU_UTIL", "50", UUID="GPU-x", gpu="0"),
        ],
        5,
    )
    assert list(nodes) == ["a100"]
    first, second = nodes["a100"]["gpus"]
    assert (first["mig_profile"], first["memory_used"], first["memory_total"]) == (
        "1g.10gb",
        100 * MIB,
        1000 * MIB,
    )
    assert (second["memory_used"], second["memory_total"]) == (5 * MIB, None)


def test_the_resources_endpoint_carries_live_figures_and_survives_prometheus(
    tmp_path, sim, prometheus
):
    """A real hub on kubernetes_config.py, the simulated API, the exporter and Prometheus."""
    config = (
        f"c.GpuMetrics.prometheus_url = {prometheus.url!r}\n"
        "c.GpuMetrics.interval_seconds = 1\n"
        "c.GpuMetrics.timeout_seconds = 1\n"
        "c.GpuMetrics.stale_after_seconds = 3\n"
    )
    with kube_hub_with_catalog(tmp_path / "hub", sim, extra_config=config) as hub:
        alice = hub.login("alice")

        def live():
            block = alice.resources().get("gpu_metrics") or {}
            return block if block.get("available") and not block.get("stale") else None

        block = wait_for(live, timeout=60)
        assert contract_errors(alice.resources(), ResourcesSnapshot) == []
        assert block["source"] == "prometheus"
        gpus = block["nodes"]["gpu-1"]
        assert [g["pod"] for g in gpus["gpus"]] == ["train", None]
        assert gpus["gpus"][0]["utilization_gpu"] == 73.0
        etag = alice.api("GET", "/hub/api/tk/resources").headers["ETag"]

        prometheus.stop()

        def stale():
            block = alice.resources()["gpu_metrics"]
            return block if block["stale"] else None

        block = wait_for(stale, timeout=60)
        assert block["message"].startswith("Live GPU figures are out of date: Prometheus")
        assert block["nodes"]["gpu-1"] == gpus  # the last figures, marked stale
        answer = alice.api("GET", "/hub/api/tk/resources", headers={"If-None-Match": etag})
        assert answer.status_code == 200  # a stale block is a new version of the snapshot
        # The cluster part is untouched by Prometheus' absence.
        assert not answer.json()["stale"]
        assert [n["name"] for n in answer.json()["nodes"]] == ["cpu-1", "cpu-2", "gpu-1"]
