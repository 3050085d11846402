"""Live GPU figures in the picker: the resources endpoint with the Prometheus source on vs off.

On a simulated Kubernetes API (a process, real HTTP) with 1,000 nodes, a fake dcgm-exporter
serving every GPU of that cluster and Debian's Prometheus scraping it, in one run:

  off   a real JupyterHub from share/jupyterhub/kubernetes_config.py, no Prometheus URL
  on    the same hub with c.GpuMetrics.prometheus_url set (query every --interval seconds)

Both answer GET /hub/api/tk/resources to a logged-in user through the proxy; the figures are
p50/p99 of full answers (goal: on within 1.2x of off), the answer's size, and the queries per
minute the hub sends to Prometheus (Prometheus's own request counter over the run).

    python benchmarks/gpu_metrics.py                         # 1,000 nodes
    python benchmarks/gpu_metrics.py --nodes 100 --pods 3000 --requests 200   # quick
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.inventory import api_url, ms, percentile, sizes, time_requests, wait_synced
from tests.fakes.clusters import make_cluster
from tests.fakes.dcgm_exporter import devices_for_cluster
from tests.support.kube_hub import CatalogServer, KubeHub, SimulatedApiProcess
from tests.support.prometheus import DcgmExporterProcess, PrometheusProcess
from tests.support.spawn_fixtures import CATALOG_ITEMS


def query_count(prometheus: PrometheusProcess) -> float:
    """Queries Prometheus has answered so far, from its own /metrics (it does not scrape itself)."""
    text = requests.get(f"{prometheus.url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("prometheus_http_requests_total{") and 'handler="/api/v1/query"' in line
    )


def measure(hub: KubeHub, nodes: int, count: int) -> tuple[list[float], int]:
    user = hub.login("alice")
    session = user.session
    session.headers["X-XSRFToken"] = user.xsrf
    wait_synced(session, hub, nodes)
    size = len(session.get(api_url(hub), timeout=60).content)
    return time_requests(session, api_url(hub), count), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--interval", type=float, default=15.0, help="seconds between queries")
    parser.add_argument("--window", type=float, default=120.0, help="seconds to count queries")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tk-bench-gpu-metrics-"))
    cluster = make_cluster("large", nodes=args.nodes, pods=args.pods)
    devices = devices_for_cluster(cluster, utilization=40.0)
    print(f"{args.nodes} nodes, {args.pods} pods, {len(devices)} GPUs and MIG instances")
    api = SimulatedApiProcess(work / "api", "large", sizes(args.nodes, args.pods)).start()
    catalog = CatalogServer(CATALOG_ITEMS)
    exporter = DcgmExporterProcess(work / "dcgm", devices).start()
    prometheus = PrometheusProcess(work / "prometheus", [exporter.target]).start()
    results = {}
    try:
        prometheus.wait_for_series("DCGM_FI_DEV_GPU_UTIL", count=len(devices))
        for mode, extra in (
            ("off", ""),
            (
                "on",
                f"c.GpuMetrics.prometheus_url = {prometheus.url!r}\n"
                f"c.GpuMetrics.interval_seconds = {args.interval}\n",
            ),
        ):
            hub = KubeHub(work / f"hub-{mode}", api, catalog=catalog.url, extra_config=extra)
            hub.start()
            try:
                before, started = query_count(prometheus), time.monotonic()
                times, size = measure(hub, args.nodes, args.requests)
                if mode == "on":
                    body = requests.get(
                        api_url(hub), cookies=hub.login("bob").session.cookies, timeout=60
                    ).json()
                    live = body.get("gpu_metrics") or {}
                    print(
                        f"  on: gpu_metrics available={live.get('available')}, "
                        f"nodes with figures={len(live.get('nodes', {}))}"
                    )
                time.sleep(max(0.0, args.window - (time.monotonic() - started)))
                minutes = (time.monotonic() - started) / 60
                per_minute = (query_count(prometheus) - before) / minutes
                results[mode] = (times, size, per_minute)
            finally:
                hub.stop()
    finally:
        prometheus.stop()
        exporter.stop()
        catalog.stop()
        api.stop()

    print(f"\nGET /hub/api/tk/resources, {args.requests} full answers each, through the proxy")
    for mode, (times, size, per_minute) in results.items():
        p50, p99 = ms(percentile(times, 0.5)), ms(percentile(times, 0.99))
        print(
            f"  source {mode:3}: p50 {p50}, p99 {p99}, {size / 1024:.0f} KiB,"
            f" {per_minute:.1f} queries/min to Prometheus"
        )
    ratio = percentile(results["on"][0], 0.99) / percentile(results["off"][0], 0.99)
    print(f"  p99 on / off: {ratio:.2f}x (goal: <= 1.2x)")


if __name__ == "__main__":
    main()
