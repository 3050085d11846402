"""What one spawn-page view costs in policy and catalog look-ups, against naive baselines.

Policy: ``Policy.rule_for`` on a live policy file (one stat per call, parse only on change)
against reading and parsing the same file on every call.
Catalog: ``ImageCatalog.get`` within its TTL against fetching the list over HTTP on every call,
from a real tornado server on 127.0.0.1; plus 50 concurrent first calls (one shared fetch).

Run: python benchmarks/policy_catalog.py [--rules 50] [--images 200] [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets
from tornado.web import Application, RequestHandler

from jupyter_tk.hub.catalog import ImageCatalog
from jupyter_tk.hub.policy import Policy, load_policy_file


def policy_document(rule_count: int) -> dict:
    gpu = "nvidia.com/gpu"
    presets = [
        {
            "slug": f"p{i}",
            "cpu": i + 1,
            "memory": f"{i + 1}Gi",
            "gpu": {"resource": gpu, "count": i % 3},
        }
        for i in range(20)
    ]
    rules = [
        {
            "groups": [f"group-{i}"],
            "max": {"cpu": 16, "memory": "64Gi", "gpus": 2},
            "images": ["tk-*"],
            "custom_images": {"allowed": True, "registries": ["nvcr.io", "quay.io"]},
            "nodes": ["gpu-*"],
        }
        for i in range(rule_count - 1)
    ]
    rules.append({"groups": ["*"], "max": {"cpu": 2, "memory": "4Gi", "gpus": 0}})
    return {"presets": presets, "rules": rules}


def row(label: str, value: float, ours: float | None = None) -> str:
    ratio = f"   ({value / ours:,.0f}x ours)" if ours else ""
    return f"  {label:<40} {value:>10.1f} µs/call{ratio}"


def per_call_us(function, calls: int) -> float:
    samples = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


async def async_per_call_us(function, calls: int) -> float:
    samples = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(calls):
            await function()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def bench_policy(rule_count: int, calls: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "policy.yaml"
        path.write_text(yaml.safe_dump(policy_document(rule_count)))
        size = path.stat().st_size
        policy = Policy(policy_file=str(path))
        # The last rule ("*") is the worst case: every rule is tried.
        ours = per_call_us(lambda: policy.rule_for(["nobody"]), calls)
        naive = per_call_us(
            lambda: next(r for r in load_policy_file(str(path)).rules if r.matches({"nobody"})),
            max(calls // 100, 5),
        )
    print(f"policy.rule_for, {rule_count} rules, a {size:,}-byte YAML file, last rule matches")
    print(row("jupyter-tk (stat, parse on change)", ours))
    print(row("baseline (parse file every call)", naive, ours))


async def bench_catalog(image_count: int, calls: int) -> None:
    items = [
        {
            "name": f"tk-image-{i}",
            "image": f"registry.example.com/library/tk-image-{i}:latest",
            "display_name": f"Image {i}",
            "description": "x" * 200,
            "metadata": {"gpu_required": i % 2 == 0},
        }
        for i in range(image_count)
    ]
    body = json.dumps(items)
    requests = 0

    class Handler(RequestHandler):
        async def get(self):
            nonlocal requests
            requests += 1
            await asyncio.sleep(0.005)  # a small service's think time
            self.finish(body)

    sockets = bind_sockets(0, "127.0.0.1")
    url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/catalog"
    server = HTTPServer(Application([(r"/catalog", Handler)]))
    server.add_sockets(sockets)
    try:
        cached = ImageCatalog(source=url, ttl_seconds=3600)
        await cached.get()
        ours = await async_per_call_us(cached.get, calls)
        uncached = ImageCatalog(source=url, ttl_seconds=0)
        naive = await async_per_call_us(uncached.get, max(calls // 100, 5))

        requests = 0
        burst = ImageCatalog(source=url)
        start = time.perf_counter()
        await asyncio.gather(*(burst.get() for _ in range(50)))
        burst_ms = (time.perf_counter() - start) * 1e3
    finally:
        server.stop()
        await server.close_all_connections()
    print(f"catalog.get, {image_count} images, {len(body):,} bytes of JSON over HTTP")
    print(row("jupyter-tk (within ttl)", ours))
    print(row("baseline (fetch + parse every call)", naive, ours))
    print(f"  50 concurrent first calls: {burst_ms:.1f} ms, {requests} request(s) to the source")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=50)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args()
    bench_policy(args.rules, args.calls)
    asyncio.run(bench_catalog(args.images, args.calls))


if __name__ == "__main__":
    main()
