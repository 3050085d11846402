"""Spawn page: jupyter-tk's live form side by side with KubeSpawner's stock profile_list form.

One run, one process, the same 1,000 nodes:

- jupyter-tk: ``TkKubeSpawner.get_options_form()`` — what JupyterHub calls for every
  ``GET /hub/spawn``: policy lookup, catalog (cached), the inventory snapshot (the real
  ``KubernetesInventory`` synced over HTTP from the simulated API with 1,000 nodes and 30,000
  pods), fit of every node for the pre-selected choice, Jinja rendering, front end inlined.
- stock KubeSpawner: the same number of choices as a ``profile_list`` of 1,000 profiles, one
  per node (display name with the node's free CPU, memory and GPUs, a description and a
  ``kubespawner_override`` pinning the node and setting the size), rendered with KubeSpawner's
  own ``form.html`` by ``_render_options_form`` — what a callable ``profile_list`` costs on
  every view (a static list is rendered once, when the spawner is created).

Printed: render time per view (median and p95 of N views) and payload size (bytes of the form
HTML, and gzip-compressed as most proxies send it). Figures are printed, never asserted.

    python benchmarks/spawn_form.py                   # 1,000 nodes, 30,000 pods, 200 views
    python benchmarks/spawn_form.py --nodes 200 --pods 5000 --views 50
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner
from traitlets.config import Config

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from jupyter_tk.hub.kubernetes.spawner import TkKubeSpawner  # noqa: E402
from jupyter_tk.hub.quantities import format_bytes, format_cores, format_gpu_kind  # noqa: E402
from jupyter_tk.hub.spawner_mixin import _assets  # noqa: E402
from tests.fakes.clusters import make_cluster  # noqa: E402
from tests.fakes.kubernetes import SimulatedKubernetes  # noqa: E402
from tests.support.spawn_fixtures import CATALOG_ITEMS, POLICY  # noqa: E402


def user(groups=("gpu-lab",)):
    return SimpleNamespace(
        name="alice", id=1, url="/user/alice/", groups=[SimpleNamespace(name=g) for g in groups]
    )


def stock_profile_list(nodes: list[dict]) -> list[dict]:
    """One KubeSpawner profile per node, carrying what the jupyter-tk form shows for it."""
    profiles = []
    for node in nodes:
        free = node["free"]
        gpus = ", ".join(f"{g['free']}/{g['count']} {format_gpu_kind(g)}" for g in node["gpus"])
        limits = {g["resource"]: "1" for g in node["gpus"]}
        profiles.append(
            {
                "slug": node["name"],
                "display_name": f"{node['name']} — {format_cores(free['cpu'])} CPU, "
                f"{format_bytes(free['memory'])} free",
                "description": gpus or "CPU only",
                "kubespawner_override": {
                    "node_selector": {"kubernetes.io/hostname": node["name"]},
                    "cpu_limit": 4,
                    "mem_limit": "16G",
                    "extra_resource_limits": limits,
                },
            }
        )
    return profiles


async def time_views(render, views: int) -> tuple[list[float], str]:
    html = await render()  # warm-up: compiled templates, first catalog fetch
    timings = []
    for _ in range(views):
        started = time.perf_counter()
        html = await render()
        timings.append((time.perf_counter() - started) * 1000)
    return timings, html


def describe(name: str, timings: list[float], html: str) -> str:
    body = html.encode()
    p95 = statistics.quantiles(timings, n=20)[-1]
    return (
        f"{name:<34} {statistics.median(timings):>9.2f} {p95:>9.2f} "
        f"{len(body) / 1024:>10.1f} {len(gzip.compress(body)) / 1024:>10.1f}"
    )


async def main(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.WARNING)
    workdir = Path(tempfile.mkdtemp(prefix="tk-bench-form-"))
    print(f"Building a simulated cluster: {args.nodes} nodes, {args.pods} pods ...", flush=True)
    api = SimulatedKubernetes(make_cluster("large", nodes=args.nodes, pods=args.pods))
    await api.start()
    kubeconfig = api.write_kubeconfig(workdir / "kubeconfig")
    kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(kubeconfig)

    config = Config()
    config.KubernetesInventory.kubeconfig = str(kubeconfig)
    config.Policy.rules = POLICY["rules"]
    config.Policy.presets = POLICY["presets"]
    config.ImageCatalog.images = CATALOG_ITEMS
    config.KubeSpawner.k8s_api_host = api.url
    config.KubeSpawner.namespace = "default"
    tk = TkKubeSpawner(_mock=True, config=config, user=user())
    tk.user_options = {"profile": "gpu-1", "image": "tk-jupyter-ml-gpu"}
    inventory = tk.tk_inventory
    started = time.perf_counter()
    if not await inventory.wait_synced(timeout=600):
        raise SystemExit("the inventory did not sync")
    print(f"Inventory synced in {time.perf_counter() - started:.1f} s", flush=True)
    snapshot = inventory.snapshot()

    stock = KubeSpawner(_mock=True, config=config, user=user())
    profiles = stock_profile_list(snapshot["nodes"])

    async def stock_render():
        return stock._render_options_form(profiles)

    ours, our_html = await time_views(tk.get_options_form, args.views)
    theirs, their_html = await time_views(stock_render, args.views)
    assert our_html.count('<option value="node-') == args.nodes
    assert their_html.count('name="profile"') >= args.nodes

    print()
    print(f"Spawn form, {args.nodes} nodes ({args.pods} pods), {args.views} views each")
    print(f"{'':<34} {'median ms':>9} {'p95 ms':>9} {'HTML KiB':>10} {'gzip KiB':>10}")
    print(describe("jupyter-tk TkKubeSpawner form", ours, our_html))
    print(describe("KubeSpawner profile_list (stock)", theirs, their_html))
    print(
        f"\njupyter-tk render is {statistics.median(theirs) / statistics.median(ours):.2f}x "
        f"the stock speed; payload {len(our_html) / len(their_html):.2f}x the stock size "
        f"(jupyter-tk includes its inlined front end: "
        f"{(len(_assets.script) + len(_assets.style)) / 1024:.1f} KiB of JS+CSS)."
    )
    await inventory.stop()
    await TkKubeSpawner._stop_all_reflectors()
    await api.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--pods", type=int, default=30000)
    parser.add_argument("--views", type=int, default=200)
    asyncio.run(main(parser.parse_args()))
