"""Relisting under a watch that answers `410 Gone` forever: lists per minute, log lines, CPU.

KubernetesInventory in this process against the simulated Kubernetes API (real HTTP, same
process) whose every watch answers 410, as an HTTP status or as an ERROR event in a 200 stream.
A relist that does not help must back off (capped, jittered) and the log must stay quiet.

    python benchmarks/inventory_gone.py                      # 60 s per mode
    python benchmarks/inventory_gone.py --seconds 20 --mode event
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jupyter_tk.hub.kubernetes.inventory import KubernetesInventory
from tests.fakes.clusters import make_cluster
from tests.fakes.kubernetes import SimulatedKubernetes


class CountingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


async def measure(mode: str, seconds: float, backoff_max: float) -> dict:
    api = SimulatedKubernetes(make_cluster("small"))
    await api.start()
    with tempfile.TemporaryDirectory() as workdir:
        log = logging.getLogger(f"inventory-gone-{mode}")
        log.setLevel(logging.INFO)  # what a hub logs by default
        log.propagate = False
        handler = CountingHandler()
        log.addHandler(handler)
        inventory = KubernetesInventory(
            kubeconfig=str(api.write_kubeconfig(Path(workdir) / "kubeconfig")),
            backoff_max_seconds=backoff_max,
            log=log,
        )
        await inventory.start()
        await inventory.wait_synced(10)
        api.watch_gone = mode
        api.force_gone()  # the open watches end with 410 too
        before = api.stats()["list"].copy()
        cpu, wall = time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        after = api.stats()["list"]
        await inventory.stop()
        await api.stop()
    lists = {kind: after.get(kind, 0) - before.get(kind, 0) for kind in ("nodes", "pods")}
    return {
        "lists_per_minute": {kind: round(n * 60 / wall, 1) for kind, n in lists.items()},
        "log_lines": len(handler.lines),
        "cpu_percent": round(100 * cpu / wall, 1),
        "first_lines": handler.lines[:6],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured time per mode")
    parser.add_argument("--mode", choices=("status", "event", "both"), default="both")
    parser.add_argument(
        "--backoff-max", type=float, default=30.0, help="KubernetesInventory.backoff_max_seconds"
    )
    args = parser.parse_args()
    modes = ("status", "event") if args.mode == "both" else (args.mode,)
    for mode in modes:
        result = asyncio.run(measure(mode, args.seconds, args.backoff_max))
        print(
            f"410 as {mode:6}: lists/min nodes {result['lists_per_minute']['nodes']}, "
            f"pods {result['lists_per_minute']['pods']}; {result['log_lines']} log lines in "
            f"{args.seconds:g} s; CPU {result['cpu_percent']} % (hub side and simulated API)"
        )
        for line in result["first_lines"]:
            print(f"    {line}")


if __name__ == "__main__":
    main()
