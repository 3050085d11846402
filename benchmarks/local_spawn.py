"""The embedded default: time to a usable JupyterLab, and hub memory with many servers.

Starts real hubs on this machine (the fake NVML library stands in for the GPUs) and measures, side
by side in one run:

  spawn -> usable Lab   from submitting the spawn request to HTTP 200 from /user/<name>/lab and
                        from its jupyter-tk API (GET jupyter-tk/api/gpus), median of --repeat:
                        - jupyter-tk: share/jupyterhub/local_config.py, the form POSTed with 1 CPU
                          and one GPU (validation against policy/catalog/inventory, GPU, CPU and
                          memory reservation, CUDA_VISIBLE_DEVICES);
                        - baseline: JupyterHub's stock SimpleLocalProcessSpawner (no form), same
                          authenticator and single-user command, started with the REST API.
  hub RSS               of the hub process alone (not the proxy or servers): idle, then with
                        --servers running servers (one per user), for both hubs.
  hub-side spawn time   what each hub logs as "took N seconds to start" (Spawner.start until
                        the server answered the hub).

The two hubs run side by side and the timed spawns alternate between them, so load from other
work on the machine falls on both alike.

    python benchmarks/local_spawn.py                   # 3 timed spawns, 10 servers
    python benchmarks/local_spawn.py --repeat 5 --servers 10
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.fakes.nvml import fake_gpu
from tests.support.hub_process import HubUser
from tests.support.local_hub import LocalHub, custom_form

POLL_SECONDS = 0.05
SPAWN_TIMEOUT_SECONDS = 180


def baseline_config(workdir: Path) -> str:
    """Stock JupyterHub on one machine, shaped like local_config.py minus jupyter-tk."""
    root_flag = "['--ServerApp.allow_root=True']" if os.geteuid() == 0 else "[]"
    return (
        "import os\n"
        "port = int(os.environ['JUPYTER_TK_PORT'])\n"
        "state = os.environ['JUPYTER_TK_STATE_DIR']\n"
        "os.makedirs(state, exist_ok=True)\n"
        "c.JupyterHub.bind_url = f'http://127.0.0.1:{port}/'\n"
        "c.ConfigurableHTTPProxy.api_url = f'http://127.0.0.1:{port + 1}'\n"
        "c.JupyterHub.hub_bind_url = f'http://127.0.0.1:{port + 81}'\n"
        "c.JupyterHub.db_url = f'sqlite:///{state}/jupyterhub.sqlite'\n"
        "c.JupyterHub.cookie_secret_file = f'{state}/jupyterhub_cookie_secret'\n"
        "c.ConfigurableHTTPProxy.pid_file = f'{state}/jupyterhub-proxy.pid'\n"
        "c.JupyterHub.authenticator_class = 'shared-password'\n"
        "c.SharedPasswordAuthenticator.user_password = os.environ['JUPYTER_TK_PASSWORD']\n"
        "c.Authenticator.allow_all = True\n"
        "c.JupyterHub.spawner_class = 'simple'\n"
        f"c.SimpleLocalProcessSpawner.home_dir_template = '{workdir}/simple-home/{{username}}'\n"
        f"c.Spawner.args = {root_flag}\n"
        "c.Spawner.default_url = '/lab'\n"
        "c.Spawner.env_keep.append('FAKE_NVML_CONFIG')\n"
        "c.Spawner.start_timeout = 180\n"
        "c.Spawner.http_timeout = 180\n"
    )


def wait_usable(user: HubUser, started: float) -> float:
    """Seconds from `started` until Lab and the jupyter-tk API both answer 200."""
    user.wait_ready(timeout=SPAWN_TIMEOUT_SECONDS, poll=POLL_SECONDS)
    lab = user.open_lab()
    if lab.status_code != 200 or not lab.url.rstrip("/").endswith(f"/user/{user.name}/lab"):
        raise RuntimeError(f"Lab of {user.name}: HTTP {lab.status_code} at {lab.url}")
    api = user.server_api("gpus")
    if api.status_code != 200:
        raise RuntimeError(f"jupyter-tk API of {user.name}: HTTP {api.status_code}")
    return time.perf_counter() - started


def spawn_with_form(hub: LocalHub, name: str) -> float:
    user = hub.login(name)
    xsrf = user.open_form()
    started = time.perf_counter()
    response = user.post_form(xsrf, custom_form("1", "1Gi", "nvidia.com/gpu", "1"))
    if response.status_code != 302:
        raise RuntimeError(f"form refused: HTTP {response.status_code}: {response.text[-500:]}")
    return wait_usable(user, started)


def spawn_with_rest(hub: LocalHub, name: str, options: dict | None) -> float:
    user = hub.login(name)
    started = time.perf_counter()
    response = user.api("POST", f"/hub/api/users/{name}/server", json=options or {})
    if response.status_code not in (201, 202):
        raise RuntimeError(f"spawn refused: HTTP {response.status_code}: {response.text[-500:]}")
    return wait_usable(user, started)


def rss_mib(hub: LocalHub) -> float:
    return psutil.Process(hub.process.pid).memory_info().rss / 2**20


def hub_side_seconds(hub: LocalHub, name: str) -> float:
    """What the hub itself logged as the spawn's duration (start() until the server answered)."""
    found = re.findall(rf"User {name} took ([0-9.]+) seconds to start", hub.log_path.read_text())
    return float(found[-1])


def timed_spawn(hub: LocalHub, name: str, use_form: bool) -> tuple[float, float]:
    seconds = spawn_with_form(hub, name) if use_form else spawn_with_rest(hub, name, None)
    hub.login(name).stop_server()
    return seconds, hub_side_seconds(hub, name)


def fill(hub: LocalHub, servers: int, use_form: bool) -> tuple[float, float]:
    """Hub RSS before and with `servers` running servers (one per user)."""
    idle = rss_mib(hub)
    small = {"profile": "custom", "cpu": 0.1, "memory": "256Mi", "gpu": None}

    def start_one(index: int) -> float:
        return spawn_with_rest(hub, f"user{index:02d}", small if use_form else None)

    # A few at a time: a 2-core machine starting ten JupyterLabs at once only measures queueing.
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(start_one, range(servers)))
    return idle, rss_mib(hub)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed spawns per hub")
    parser.add_argument("--servers", type=int, default=10, help="servers running for the RSS")
    args = parser.parse_args()

    gpus = [fake_gpu(0), fake_gpu(1)]
    with tempfile.TemporaryDirectory(prefix="tk-local-spawn-") as tmp:
        print(
            f"machine: {psutil.cpu_count()} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB"
        )
        ours = LocalHub(Path(tmp) / "tk", gpus=gpus).start()
        stock = LocalHub(
            Path(tmp) / "stock",
            gpus=gpus,
            load_local_config=False,
            extra_config=baseline_config(Path(tmp) / "stock"),
        ).start()
        results = {"ours": [], "stock": []}
        try:
            # Alternating, so load from elsewhere on the machine hits both alike.
            for index in range(args.repeat):
                for key, hub, use_form in (("ours", ours, True), ("stock", stock, False)):
                    seconds, hub_side = timed_spawn(hub, f"timed{index}", use_form)
                    results[key].append((seconds, hub_side))
                    print(f"  {key}: spawn {index + 1}: usable after {seconds:.2f} s", flush=True)
            rss = {}
            for key, hub, use_form in (("ours", ours, True), ("stock", stock, False)):
                rss[key] = fill(hub, args.servers, use_form)
                print(f"  {key}: {args.servers} servers running", flush=True)
                hub.stop(timeout=180)
        finally:
            ours.stop(timeout=180)
            stock.stop(timeout=180)

    def row(name: str, tk: str, stock: str) -> None:
        print(f"{name:<38} {tk:>14} {stock:>14}")

    def median(key: str, part: int) -> str:
        return f"{statistics.median(r[part] for r in results[key]):.2f}"

    def spread(key: str) -> str:
        values = [r[0] for r in results[key]]
        return f"{min(values):.2f}/{max(values):.2f}"

    print()
    row("", "jupyter-tk", "stock spawner")
    row("submit -> usable Lab, median (s)", median("ours", 0), median("stock", 0))
    row("  min / max (s)", spread("ours"), spread("stock"))
    row("hub-side spawn time, median (s)", median("ours", 1), median("stock", 1))
    row("hub RSS idle (MiB)", f"{rss['ours'][0]:.0f}", f"{rss['stock'][0]:.0f}")
    row(
        f"hub RSS with {args.servers} servers (MiB)",
        f"{rss['ours'][1]:.0f}",
        f"{rss['stock'][1]:.0f}",
    )


if __name__ == "__main__":
    main()
