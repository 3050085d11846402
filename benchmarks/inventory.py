"""Live cluster inventory: jupyter-tk's watch cache against listing the cluster per page view.

On a simulated Kubernetes API (a separate process, real HTTP) with 1,000 nodes and 30,000 pods,
in one run:

  jupyter-tk     a real JupyterHub started from share/jupyterhub/kubernetes_config.py serving
                 GET /hub/api/tk/resources to a logged-in user (through the proxy): latency
                 p50/p99 of full answers, of 304 answers (If-None-Match), and of full answers
                 while pods come and go; list calls the hub makes per page view; how long an
                 added pod takes to show in the endpoint (event-to-visible)
  per-view       what a profile_list function usually does on every page view: list nodes, then
                 list the pods of each node (kubernetes_asyncio, models deserialized), the
                 figures computed with a correct quantity parser
  cache memory   KubernetesInventory in this process (tracemalloc: what stays allocated once
                 synced, and the peak while listing) at 30,000 and at 50,000 pods

Targets (issue 4): p99 <= 20 ms, >= 100x faster than per-view, 0 list calls per page view,
cache <= 150 MB at 50,000 pods.

    python benchmarks/inventory.py                                  # full size
    python benchmarks/inventory.py --nodes 100 --pods 3000 --requests 200 --views 2   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import psutil
import requests
from kubernetes_asyncio import client, config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jupyter_tk.hub.kubernetes.inventory import KubernetesInventory
from jupyter_tk.hub.quantities import parse_quantity
from tests.fakes.clusters import make_pod
from tests.support.kube_hub import CatalogServer, KubeHub, SimulatedApiProcess
from tests.support.spawn_fixtures import CATALOG_ITEMS

RESOURCES = "tk/resources"
MB = 1024 * 1024


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    milliseconds = seconds * 1000
    return f"{milliseconds:.1f} ms" if milliseconds >= 1 else f"{milliseconds:.3f} ms"


# -- jupyter-tk through a real hub ---------------------------------------------------------------


def api_url(hub: KubeHub, path: str = RESOURCES) -> str:
    return f"{hub.url}/hub/api/{path}"


def list_calls(cluster: SimulatedApiProcess) -> int:
    """List calls the simulated API has answered so far (its test-only stats endpoint)."""
    stats = requests.get(f"{cluster.url}/_sim/stats", timeout=30).json()
    return sum(stats.get("list", {}).values())


def wait_synced(session: requests.Session, hub: KubeHub, nodes: int) -> None:
    while True:
        body = session.get(api_url(hub), timeout=60).json()
        if not body["stale"] and len(body["nodes"]) == nodes:
            return
        time.sleep(0.05)


def time_requests(session, url: str, count: int, headers: dict | None = None) -> list[float]:
    times = []
    for _ in range(count):
        start = time.perf_counter()
        response = session.get(url, headers=headers, timeout=60)
        response.content  # noqa: B018 - the whole body is part of the cost
        times.append(time.perf_counter() - start)
    return times


class PodChurn(threading.Thread):
    """Creates and deletes pods on the simulated API at `rate` changes per second."""

    def __init__(self, cluster: SimulatedApiProcess, rate: float) -> None:
        super().__init__(daemon=True)
        self.cluster, self.interval = cluster, 1.0 / rate
        self.stopping = threading.Event()
        self.changes = 0

    def run(self) -> None:
        index = 0
        while not self.stopping.is_set():
            name = f"churn-{index}"
            pod = make_pod(name, "bench", node=f"node-{index % 997:04d}", requests={"cpu": "1"})
            self.cluster.create_pod(pod)
            self.changes += 1
            self.stopping.wait(self.interval / 2)
            self.cluster.delete_pod(name, "bench")
            self.changes += 1
            self.stopping.wait(self.interval / 2)
            index += 1


def event_to_visible(session, hub, cluster, samples: int) -> list[float]:
    """Seconds from creating a pod on the API to the endpoint showing it."""
    url = api_url(hub)

    def pods_on(body: dict, name: str) -> int:
        return next(n for n in body["nodes"] if n["name"] == name)["requested"]["pods"]

    results = []
    for index in range(samples):
        node_name = f"node-{(index * 7) % 1000:04d}"
        response = session.get(url, timeout=60)
        etag, before = response.headers["ETag"], pods_on(response.json(), node_name)
        pod = make_pod(f"probe-{index}", "bench", node=node_name, requests={"cpu": "250m"})
        start = time.perf_counter()
        cluster.create_pod(pod)
        while True:
            # 304s cost almost nothing: poll hard so the figure is the hub's, not the poll's.
            response = session.get(url, headers={"If-None-Match": etag}, timeout=60)
            if response.status_code == 200:
                etag = response.headers["ETag"]
                if pods_on(response.json(), node_name) == before + 1:
                    break
        results.append(time.perf_counter() - start)
        cluster.delete_pod(f"probe-{index}", "bench")
    return results


# -- per-view baseline ---------------------------------------------------------------------------


async def per_view_once(api: client.CoreV1Api) -> dict[str, dict[str, float]]:
    """List nodes, then each node's active pods; free = allocatable - container requests."""
    free = {}
    for node in (await api.list_node()).items:
        name = node.metadata.name
        pods = await api.list_pod_for_all_namespaces(
            field_selector=f"spec.nodeName={name},status.phase!=Succeeded,status.phase!=Failed"
        )
        used = {"cpu": parse_quantity(0), "memory": parse_quantity(0)}
        for pod in pods.items:
            for container in pod.spec.containers:
                requests_ = (container.resources and container.resources.requests) or {}
                for resource in used:
                    if resource in requests_:
                        used[resource] += parse_quantity(requests_[resource])
        allocatable = node.status.allocatable
        free[name] = {r: float(parse_quantity(allocatable[r]) - used[r]) for r in used}
    return free


async def per_view(kubeconfig: Path, views: int) -> list[float]:
    configuration = client.Configuration()
    await config.load_kube_config(str(kubeconfig), client_configuration=configuration)
    times = []
    async with client.ApiClient(configuration) as api_client:
        api = client.CoreV1Api(api_client)
        for _ in range(views):
            start = time.perf_counter()
            await per_view_once(api)
            times.append(time.perf_counter() - start)
    return times


# -- cache memory --------------------------------------------------------------------------------


async def cache_memory(cluster: SimulatedApiProcess) -> dict[str, float]:
    """Memory of a synced KubernetesInventory, and what building its answer costs."""
    kubeconfig = cluster.kubeconfig
    gc.collect()
    rss_before = psutil.Process().memory_info().rss
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    inventory = KubernetesInventory(kubeconfig=str(kubeconfig), request_timeout_seconds=120)
    start = time.perf_counter()
    await inventory.start()
    if not await inventory.wait_synced(600):
        raise RuntimeError("inventory did not sync")
    synced = time.perf_counter() - start
    inventory.snapshot_json()  # the memoized answer is part of what the hub keeps
    gc.collect()
    current, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rss_after = psutil.Process().memory_info().rss
    pods = sum(node["requested"].get("pods", 0) for node in inventory.snapshot()["nodes"])

    # Our own share of a page view, without JupyterHub, the proxy or HTTP: the memoized
    # answer, and the answer rebuilt right after one pod changed.
    unchanged = []
    for _ in range(1000):
        start = time.perf_counter()
        inventory.snapshot_json()
        unchanged.append(time.perf_counter() - start)
    rebuilt = []
    for index in range(20):
        version = inventory.version
        pod = make_pod(f"probe-{index}", "bench", node=f"node-{index:04d}", requests={"cpu": "1"})
        await asyncio.to_thread(cluster.create_pod, pod)
        while inventory.version == version:  # noqa: ASYNC110 - polled like a page view would
            await asyncio.sleep(0.001)
        start = time.perf_counter()
        inventory.snapshot_json()
        rebuilt.append(time.perf_counter() - start)
        await asyncio.to_thread(cluster.delete_pod, f"probe-{index}", "bench")
    await inventory.stop()
    return {
        "pods": pods,
        "retained": (current - before) / MB,
        "peak": (peak - before) / MB,
        "rss": (rss_after - rss_before) / MB,
        "sync": synced,
        "unchanged": unchanged,
        "rebuilt": rebuilt,
    }


def sizes(nodes: int, pods: int) -> tuple[str, ...]:
    return ("--nodes", str(nodes), "--pods", str(pods))


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--big-pods", type=int, default=50000, help="pods for the memory run")
    parser.add_argument("--requests", type=int, default=1000, help="endpoint requests per mode")
    parser.add_argument("--views", type=int, default=3, help="per-view baseline repetitions")
    parser.add_argument("--visible-samples", type=int, default=30)
    parser.add_argument("--churn-rate", type=float, default=20.0, help="pod changes per second")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tk-bench-inventory-"))
    print(f"Simulated API: {args.nodes} nodes, {args.pods} pods; hub and API are processes")
    cluster = SimulatedApiProcess(work / "cluster", "large", sizes(args.nodes, args.pods)).start()
    catalog = CatalogServer(CATALOG_ITEMS)
    hub = None
    try:
        launched = time.perf_counter()
        hub = KubeHub(work / "hub", cluster, catalog=catalog.url).start()
        user = hub.login("alice")
        session = user.session
        session.headers["X-XSRFToken"] = user.xsrf  # as the form's script sends it
        wait_synced(session, hub, args.nodes)
        first_sync = time.perf_counter() - launched
        url = api_url(hub)
        body = session.get(url, timeout=60)
        size_kb = len(body.content) / 1024
        etag = body.headers["ETag"]

        calls_before = list_calls(cluster)
        full = time_requests(session, url, args.requests)
        not_modified = time_requests(session, url, args.requests, {"If-None-Match": etag})
        # The hub's own port, behind the proxy (kube_hub puts it at the public port + 81).
        direct_url = f"http://127.0.0.1:{hub.port + 81}/hub/api/{RESOURCES}"
        direct = time_requests(session, direct_url, args.requests)
        # For scale: JupyterHub's own lightest authenticated API call, the same way.
        hub_user = time_requests(session, api_url(hub, "user"), args.requests)
        calls_per_view = (list_calls(cluster) - calls_before) / (3 * args.requests)

        churn = PodChurn(cluster, args.churn_rate)
        churn.start()
        churned = time_requests(session, url, args.requests)
        churn.stopping.set()
        churn.join()

        visible = event_to_visible(session, hub, cluster, args.visible_samples)
        hub_rss = psutil.Process(hub.process.pid).memory_info().rss / MB
        load = os.getloadavg()

        calls_before = list_calls(cluster)
        views = asyncio.run(per_view(cluster.kubeconfig, args.views))
        baseline_calls = (list_calls(cluster) - calls_before) / args.views

        memory = asyncio.run(cache_memory(cluster))
    finally:
        if hub is not None:
            hub.stop()
        catalog.stop()
        cluster.stop()

    big = SimulatedApiProcess(work / "big", "large", sizes(args.nodes, args.big_pods)).start()
    try:
        big_memory = asyncio.run(cache_memory(big))
    finally:
        big.stop()

    p50, p99 = percentile(full, 0.5), percentile(full, 0.99)
    view_p50 = percentile(views, 0.5)
    rows = [
        ("page view latency p50", ms(p50), ms(view_p50)),
        ("page view latency p99", ms(p99), f"{ms(max(views))} (max of {len(views)})"),
        ("total per view", ms(p50), ms(view_p50)),
        ("API list calls per page view", f"{calls_per_view:g}", f"{baseline_calls:g}"),
        ("speed-up (p50)", f"{view_p50 / p50:,.0f}x", "1x"),
    ]
    print()
    print(f"{'':34}{'jupyter-tk (watch cache)':>28}{'per-view (list nodes + pods)':>32}")
    for label, ours, theirs in rows:
        print(f"{label:34}{ours:>28}{theirs:>32}")
    print()
    print(f"jupyter-tk endpoint ({args.requests} requests each, client -> proxy -> hub):")

    def spread(label: str, times: list[float], note: str = "") -> None:
        figures = f"p50 {ms(percentile(times, 0.5)):>9}  p99 {ms(percentile(times, 0.99)):>9}"
        print(f"  {label:36}{figures}  {note}".rstrip())

    spread(f"full answer ({size_kb:.0f} KiB)", full)
    spread("304 (If-None-Match)", not_modified)
    spread("full, hub without the proxy", direct)
    spread("JupyterHub's own GET /hub/api/user", hub_user, "(for scale: auth + proxy floor)")
    spread("full, while pods change", churned, f"({churn.changes} changes, {args.churn_rate:g}/s)")
    spread("event -> visible", visible, f"(max {ms(max(visible))}, {len(visible)} pods added)")
    print(
        f"  hub launch -> synced answer {first_sync:.1f} s (process start, login, full list);"
        f" hub process RSS {hub_rss:.0f} MB"
    )
    print(f"  machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} (1 min) during the run")
    print("cache memory (KubernetesInventory in this process, tracemalloc):")
    for figures in (memory, big_memory):
        print(
            f"  {figures['pods']:>6} pods: retained {figures['retained']:.1f} MB,"
            f" peak while listing {figures['peak']:.1f} MB, RSS delta {figures['rss']:.0f} MB,"
            f" synced in {figures['sync']:.1f} s"
        )
    print("building the answer in the hub (snapshot_json, in this process):")
    for figures in (memory, big_memory):
        unchanged, rebuilt = figures["unchanged"], figures["rebuilt"]
        print(
            f"  {figures['pods']:>6} pods: unchanged p50 {ms(percentile(unchanged, 0.5))}"
            f" p99 {ms(percentile(unchanged, 0.99))};"
            f" after one pod changed p50 {ms(percentile(rebuilt, 0.5))}"
            f" p99 {ms(percentile(rebuilt, 0.99))}"
        )
    print()
    print(
        "targets: p99 <= 20 ms: {}; >= 100x faster: {}; 0 list calls per view: {}; "
        "cache <= 150 MB at {} pods: {}".format(
            "met" if p99 <= 0.020 else "MISSED",
            "met" if view_p50 / p50 >= 100 else "MISSED",
            "met" if calls_per_view == 0 else "MISSED",
            big_memory["pods"],
            "met" if big_memory["retained"] <= 150 else "MISSED",
        )
    )


if __name__ == "__main__":
    main()
