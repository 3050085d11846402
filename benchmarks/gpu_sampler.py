"""jupyter-tk's shared GPU sampler side by side with jupyterlab-nvdashboard, on a fake NVML.

Both extensions run in ONE jupyter server (a child process) that loads the fake
libnvidia-ml.so.1 from tests/fakes (8 GPUs, every NVML call made to take 1 ms). The phases:

1. cost of one snapshot with 8 GPUs at 0.2 ms and 1 ms per NVML call (in this process:
   jupyter-tk's GpuStatsReader.read() vs one update of nvdashboard's three charts' send_data);
2. /api/status latency with the server idle, with nvdashboard's three charts open (driven like
   its front end: websocket, then {"updateFrequency": 100, "isPaused": false}), with one
   jupyter-tk panel polling jupyter-tk/api/gpus every 2 s (its default), and with 50 such clients;
3. NVML calls per second and server CPU (% of one core) in each phase;
4. one lost GPU: log lines per second with the jupyter-tk panel vs nvdashboard's charts;
5. matching GPU processes to kernels once (in this process): by pid, and by open device file
   (NVML reporting host pids, docs/gpu-attribution.md) with and without the reused /proc scan.

Figures are printed, never asserted. Usage:
    python benchmarks/gpu_sampler.py            # 60 s per phase
    python benchmarks/gpu_sampler.py --window 15
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import math
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import websocket_connect

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.fakes.nvml import (  # noqa: E402
    fake_config,
    fake_gpu,
    load_fake_nvml_in_process,
    nvml_env,
    read_call_counts,
    write_nvml_config,
)

TOKEN = "benchmark-token"
NVDASHBOARD_CHARTS = ("gpu_utilization", "gpu_usage", "gpu_resource")
NVDASHBOARD_UPDATE_MS = 100  # its front end's default "updateFrequency" setting
PANEL_POLL_SECONDS = 2.0  # the labextension's default refreshInterval
STATUS_PROBE_SECONDS = 0.1


def percentile(values, fraction):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def gpus(count, lost=None):
    # A process of this machine (this one) on every GPU: NVML's pids are this namespace's, as on
    # a machine without containers, so processes are matched by pid.
    this = os.getpid()
    return [
        fake_gpu(index, processes=[{"pid": this, "used_memory": 1 << 30}], lost=index == lost)
        for index in range(count)
    ]


# -- 5. cost of matching processes to kernels (in this process) ----------------------------------


def attribution_costs(gpu_count, repeats, folder):
    """Median ms of one attribution pass over `gpu_count` GPUs: by pid; by device file with the
    /proc scan reused; by device file scanning /proc every time."""
    from jupyter_tk.server.gpu.kernels import KernelAttribution

    devices_folder = folder / "dev"
    devices_folder.mkdir(exist_ok=True)
    for minor in range(gpu_count):
        (devices_folder / f"nvidia{minor}").write_bytes(b"")
    limit = int(Path("/proc/sys/kernel/pid_max").read_text())
    names = [lambda minor=minor: f"nvidia{minor}" for minor in range(gpu_count)]

    def devices(pid_of):
        return [
            {"processes": [{"pid": pid_of(i), "used_memory": 1 << 30, "kernel_id": None}]}
            for i in range(gpu_count)
        ]

    def timed(pid_of, fresh_scan):
        attribution = KernelAttribution(device_directory=str(devices_folder))
        times = []
        for _ in range(repeats):
            if fresh_scan:  # a new one has no scan to reuse
                attribution = KernelAttribution(device_directory=str(devices_folder))
            batch = devices(pid_of)
            started = time.perf_counter()
            attribution(batch, names)
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times), batch[0]["attribution"]

    return {
        "by pid": timed(lambda i: os.getpid(), False),
        "by device file, scan reused": timed(lambda i: limit + 1 + i, False),
        "by device file, scan every time": timed(lambda i: limit + 1 + i, True),
    }


# -- 1. cost of one snapshot (in this process) ---------------------------------------------------


def snapshot_costs(gpu_count, delays_us, repeats, folder):
    """Per delay: (jupyter-tk ms p50, NVML calls) and (nvdashboard ms p50, NVML calls)."""
    import logging

    config_path = folder / "in-process.json"
    counter_path = folder / "in-process-calls.bin"
    config = fake_config(gpus(gpu_count), counter_path=str(counter_path))
    write_nvml_config(config, config_path)
    os.environ["FAKE_NVML_CONFIG"] = str(config_path)
    load_fake_nvml_in_process()

    from jupyter_tk.server.gpu.stats import GpuStatsReader

    reader = GpuStatsReader(log=logging.getLogger("benchmark"))
    reader.open()
    try:
        # nvdashboard initialises NVML and takes its handles when its module is imported.
        from jupyterlab_nvdashboard.apps import gpu as nvdashboard_gpu
    except ImportError:
        nvdashboard_gpu = None

    class ChartStub:
        prev_throughput = None

        def write_message(self, message):
            pass

    def nvdashboard_update():
        for name in (
            "GPUUtilizationWebSocketHandler",
            "GPUUsageWebSocketHandler",
            "GPUResourceWebSocketHandler",
        ):
            getattr(nvdashboard_gpu, name).send_data(ChartStub())

    results = {}
    for delay in delays_us:
        write_nvml_config({**config, "call_delay_us": delay}, config_path)
        reader.read()  # warm (learns unsupported fields, as the sampler does on its first sample)
        row = {}
        for label, action in (("jupyter-tk", reader.read), ("nvdashboard", nvdashboard_update)):
            if label == "nvdashboard" and nvdashboard_gpu is None:
                continue
            times = []
            calls_before = read_call_counts(counter_path).get("*total*", 0)
            for _ in range(repeats):
                started = time.perf_counter()
                action()
                times.append((time.perf_counter() - started) * 1000)
            calls = (read_call_counts(counter_path)["*total*"] - calls_before) / repeats
            row[label] = (statistics.median(times), calls)
        results[delay] = row
    reader.close()
    return results


# -- 2.-4. one server with both extensions ------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, folder, gpu_count, delay_us, extensions):
        self.folder = folder
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}/"
        self.config_path = folder / "server.json"
        self.counter_path = folder / "server-calls.bin"
        self.log_path = folder / "server.log"
        self.gpu_count = gpu_count
        self.delay_us = delay_us
        self.extensions = extensions
        self.process = None

    def set_gpus(self, lost=None):
        config = fake_config(
            gpus(self.gpu_count, lost=lost),
            call_delay_us=self.delay_us,
            counter_path=str(self.counter_path),
        )
        write_nvml_config(config, self.config_path)
        return config

    def launch(self):
        config = self.set_gpus()
        env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES",)}
        env.update(nvml_env(config, self.config_path))
        for name in ("config", "data", "runtime"):
            env[f"JUPYTER_{name.upper()}_DIR"] = str(self.folder / name)
        root = self.folder / "root"
        root.mkdir(exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            "--no-browser",
            "--allow-root",
            f"--IdentityProvider.token={TOKEN}",
            # traitlets reads a dict option as a Python literal
            f"--ServerApp.jpserver_extensions={dict.fromkeys(self.extensions, True)!r}",
            f"--ServerApp.root_dir={root}",
        ]
        self.log = self.log_path.open("w")
        self.process = subprocess.Popen(
            command, env=env, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.folder
        )

    async def wait_ready(self):
        client = AsyncHTTPClient(force_instance=True)
        deadline = time.monotonic() + 120
        while True:
            try:
                await client.fetch(self.base + "api/status", headers=auth())
                break
            except (OSError, HTTPClientError):
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(self.log_path.read_text()) from None
                await asyncio.sleep(0.25)
        client.close()
        self.psutil = psutil.Process(self.process.pid)
        # Let start-up work (nvdashboard's NVML set-up, jupyter-tk's warm-up sample) finish.
        calls = -1
        while calls != self.nvml_calls() and time.monotonic() < deadline:
            calls = self.nvml_calls()
            await asyncio.sleep(2.0)

    def stop(self):
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=60)
            self.log.close()

    def cpu_seconds(self):
        times = self.psutil.cpu_times()
        return times.user + times.system

    def nvml_calls(self):
        return read_call_counts(self.counter_path).get("*total*", 0)

    def log_lines(self):
        text = self.log_path.read_text(errors="replace")
        return text.count("\n"), text.count("Traceback")


def auth():
    return {"Authorization": f"token {TOKEN}"}


async def probe_status(client, server, stop_at, latencies):
    """/api/status every STATUS_PROBE_SECONDS, like a light, steady user of the server."""
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        await client.fetch(server.base + "api/status", headers=auth())
        elapsed = time.perf_counter() - started
        latencies.append(elapsed * 1000)
        await asyncio.sleep(max(0.0, STATUS_PROBE_SECONDS - elapsed))


async def poll_panel(client, server, stop_at, latencies, first_latencies):
    """One jupyter-tk panel: GET jupyter-tk/api/gpus every PANEL_POLL_SECONDS (random phase).

    A panel's first request may find the sampler paused and wait for a fresh sample (by
    design); it is recorded apart from the steady polling.
    """
    await asyncio.sleep(random.uniform(0, PANEL_POLL_SECONDS))
    first = True
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        await client.fetch(server.base + "jupyter-tk/api/gpus", headers=auth())
        elapsed = time.perf_counter() - started
        (first_latencies if first else latencies).append(elapsed * 1000)
        first = False
        await asyncio.sleep(max(0.0, PANEL_POLL_SECONDS - elapsed))


async def nvdashboard_chart(server, name, stop_at, received):
    """One nvdashboard chart, driven the way its React component drives the websocket."""
    url = server.base.replace("http", "ws") + f"nvdashboard/{name}"
    connection = await websocket_connect(HTTPRequest(url, headers=auth()))
    try:
        while (remaining := stop_at - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(connection.read_message(), remaining)
            except asyncio.TimeoutError:
                break
            if message is None:
                break
            if json.loads(message).get("status") == "connected":
                settings = {"updateFrequency": NVDASHBOARD_UPDATE_MS, "isPaused": False}
                await connection.write_message(json.dumps(settings))
            else:
                received[name] = received.get(name, 0) + 1
    finally:
        connection.close()


async def phase(server, seconds, panels=0, charts=False):
    client = AsyncHTTPClient(force_instance=True, max_clients=panels + 10)
    stop_at = time.monotonic() + seconds
    status, panel, first, received = [], [], [], {}
    calls, cpu, started = server.nvml_calls(), server.cpu_seconds(), time.monotonic()
    lines, tracebacks = server.log_lines()
    tasks = [probe_status(client, server, stop_at, status)]
    tasks += [poll_panel(client, server, stop_at, panel, first) for _ in range(panels)]
    if charts:
        tasks += [nvdashboard_chart(server, name, stop_at, received) for name in NVDASHBOARD_CHARTS]
    await asyncio.gather(*tasks)
    wall = time.monotonic() - started
    new_lines, new_tracebacks = server.log_lines()
    client.close()
    return {
        "status": status,
        "panel": panel,
        "first": first,
        "nvml_per_s": (server.nvml_calls() - calls) / wall,
        "cpu_pct": (server.cpu_seconds() - cpu) / wall * 100,
        "log_lines_per_s": (new_lines - lines) / wall,
        "tracebacks_per_s": (new_tracebacks - tracebacks) / wall,
        "chart_updates": sum(received.values()),
    }


def ms(values, fraction):
    return f"{percentile(values, fraction):7.1f}"


async def main(args):
    folder = Path(tempfile.mkdtemp(prefix="tk-gpu-bench-"))
    print(f"command: python {' '.join(sys.argv)}")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} at start")
    print(f"fake NVML: {args.gpus} GPUs; folder {folder}")
    # Only look for it: importing it initialises NVML, which must wait for the fake library.
    if importlib.util.find_spec("jupyterlab_nvdashboard") is not None:
        extensions = ["jupyter_tk", "jupyterlab_nvdashboard"]
    else:
        extensions = ["jupyter_tk"]
        print("jupyterlab-nvdashboard is not installed: its columns are left out")

    print(f"\n1. Cost of one snapshot, {args.gpus} GPUs (median of {args.repeats}, this process)")
    costs = snapshot_costs(args.gpus, (200, 1000), args.repeats, folder)
    header = ("per NVML call", "jupyter-tk snapshot", "nvdashboard, 3 charts once")
    print(f"   {header[0]:>14} | {header[1]:>26} | {header[2]:>28}")
    for delay, row in costs.items():
        cells = [
            f"{row[k][0]:8.1f} ms, {row[k][1]:4.0f} calls" if k in row else "n/a"
            for k in ("jupyter-tk", "nvdashboard")
        ]
        print(f"   {delay / 1000:11.1f} ms | {cells[0]:>26} | {cells[1]:>28}")

    server = Server(folder, args.gpus, 1000, extensions)
    server.launch()
    await server.wait_ready()
    results = {}
    try:
        plan = [("idle", {}), ("jupyter-tk panel, 1 client", {"panels": 1})]
        if "jupyterlab_nvdashboard" in extensions:
            plan.insert(1, ("nvdashboard, 3 charts open", {"charts": True}))
        plan.append(("jupyter-tk panel, 50 clients", {"panels": 50}))
        for name, options in plan:
            print(f"   running phase '{name}' for {args.window:.0f} s ...", flush=True)
            results[name] = await phase(server, args.window, **options)
        server.set_gpus(lost=3)
        lost = {"jupyter-tk panel, 1 client": await phase(server, args.lost_window, panels=1)}
        if "jupyterlab_nvdashboard" in extensions:
            lost["nvdashboard, 3 charts open"] = await phase(server, args.lost_window, charts=True)
    finally:
        server.stop()

    print(
        f"\n2.-3. One jupyter server with {' + '.join(extensions)}; 1 ms per NVML call; "
        f"{args.window:.0f} s per phase; /api/status probed every {STATUS_PROBE_SECONDS} s"
    )
    print(
        f"   {'phase':<30} {'status p50':>10} {'p99':>7} {'api/gpus p50':>12} {'p99':>7} "
        f"{'NVML calls/s':>12} {'CPU % core':>10}"
    )
    for name, result in results.items():
        gpus_cells = (
            f"{ms(result['panel'], 0.5):>12} {ms(result['panel'], 0.99):>7}"
            if result["panel"]
            else f"{'-':>12} {'-':>7}"
        )
        print(
            f"   {name:<30} {ms(result['status'], 0.5):>10} {ms(result['status'], 0.99):>7} "
            f"{gpus_cells} {result['nvml_per_s']:12.1f} {result['cpu_pct']:10.2f}"
        )
    idle = results["idle"]
    for name, result in results.items():
        if name != "idle":
            ratio = percentile(result["status"], 0.99) / percentile(idle["status"], 0.99)
            print(
                f"   {name}: /api/status p99 = {ratio:.2f}x idle; "
                f"CPU added {result['cpu_pct'] - idle['cpu_pct']:+.2f}% of a core"
                + (
                    f"; chart updates received {result['chart_updates']}"
                    if result["chart_updates"]
                    else ""
                )
            )
            if result["first"]:
                print(
                    f"      first request of each panel (may wait for a fresh sample): "
                    f"p50 {ms(result['first'], 0.5).strip()} ms, "
                    f"max {max(result['first']):.1f} ms ({len(result['first'])} requests)"
                )

    print(f"\n4. One GPU lost (GPU 3), {args.lost_window:.0f} s each")
    for name, result in lost.items():
        print(
            f"   {name:<30} log lines/s {result['log_lines_per_s']:6.1f}, "
            f"tracebacks/s {result['tracebacks_per_s']:6.1f}, "
            f"chart updates {result['chart_updates']}, "
            f"api/gpus answers {len(result['panel']) + len(result['first'])}"
        )

    processes = sum(1 for entry in os.listdir("/proc") if entry.isdigit())
    print(f"\n5. Matching GPU processes to kernels, {args.gpus} GPUs (median of {args.repeats})")
    print(f"   this machine has {processes} processes to read when scanning /proc")
    for name, (cost, method) in attribution_costs(args.gpus, args.repeats, folder).items():
        print(f"   {name:<32} {cost:8.3f} ms  (attribution: {method})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=float, default=60.0, help="seconds per phase")
    parser.add_argument(
        "--lost-window", type=float, default=10.0, help="seconds per lost-GPU phase"
    )
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=20, help="snapshots timed per delay")
    asyncio.run(main(parser.parse_args()))
