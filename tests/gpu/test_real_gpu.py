"""jupyter-tk on a real NVIDIA GPU: the API against nvidia-smi, kernels, CUDA_VISIBLE_DEVICES and
the local hub's GPU pinning. Skipped without a real NVML; run with ``bash .ci/gpu-check``.

Figures that move (utilization, memory in use, temperature, power) are read by jupyter-tk and by
nvidia-smi at slightly different moments, so they are compared within the tolerances below; the
others must be equal. The CUDA workload is a PyTorch matmul loop in a real kernel (skipped where
this Python has no PyTorch with CUDA).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import psutil
import pytest
import requests
from jupyter_client import BlockingKernelClient

from tests.gpu.conftest import (
    MIB,
    JupyterServer,
    nvidia_smi,
    real_gpu_env,
    real_nvml,
    torch_available,
)
from tests.support.local_hub import LocalHub, custom_form

pytestmark = pytest.mark.real_gpu

GPU = "nvidia.com/gpu"
GPU_FIELDS = [
    "index",
    "uuid",
    "name",
    "driver_version",
    "memory.total",
    "memory.used",
    "utilization.gpu",
    "utilization.memory",
    "temperature.gpu",
    "power.draw",
    "enforced.power.limit",
]
# nvidia-smi field -> (API field, unit in bytes/W/... of one nvidia-smi unit, allowed difference).
MOVING = {
    "memory.used": ("memory_used", MIB, 64),  # MiB, allocator churn between two reads
    "utilization.gpu": ("utilization_gpu", 1, 20),  # percent, averaged over NVML's window
    "utilization.memory": ("utilization_memory", 1, 20),
    "temperature.gpu": ("temperature", 1, 3),  # °C
}
# Held on the GPU while the workload runs, so both tools must list it (bytes).
WORKLOAD_BYTES = 1536 * MIB
WORKLOAD = f"""
import threading, torch
held = torch.empty({WORKLOAD_BYTES}, dtype=torch.uint8, device="cuda")
a = torch.randn(4096, 4096, device="cuda")
(a @ a).sum().item()  # cuBLAS's workspace is allocated now, not while the test compares
stop = threading.Event()
def busy():
    while not stop.is_set():
        (a @ a).sum().item()
threading.Thread(target=busy, daemon=True).start()
uuid = "GPU-" + str(torch.cuda.get_device_properties(0).uuid)
"""


def kernel_pid(server: JupyterServer, kernel_id: str) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for child in psutil.Process(server.process.pid).children(recursive=True):
            try:
                if any(kernel_id in part for part in child.cmdline()):
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no process for kernel {kernel_id}:\n{server.tail()}")


def run_in_kernel(server: JupyterServer, kernel_id: str, code: str, **expressions) -> dict:
    client = BlockingKernelClient(connection_file=str(server.runtime / f"kernel-{kernel_id}.json"))
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=120)
        reply = client.execute_interactive(code, user_expressions=expressions, timeout=180)
    finally:
        client.stop_channels()
    content = reply["content"]
    assert content["status"] == "ok", content
    return {k: v["data"]["text/plain"] for k, v in content["user_expressions"].items()}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with JupyterServer(tmp_path_factory.mktemp("gpu-server")) as server:
        yield server


@pytest.fixture(scope="module")
def cuda_kernel(server):
    """A kernel of `server` running a CUDA workload: (kernel id, its pid, its GPU's UUID)."""
    if not torch_available():
        pytest.skip("this Python has no PyTorch with CUDA: the kernel workload part is skipped")
    kernel_id = server.api("api/kernels", method="POST", body={"name": "python3"})["id"]
    values = run_in_kernel(server, kernel_id, WORKLOAD, uuid="uuid")
    yield kernel_id, kernel_pid(server, kernel_id), values["uuid"].strip("'\"")
    run_in_kernel(server, kernel_id, "stop.set(); del held, a; torch.cuda.empty_cache()")
    server.api(f"api/kernels/{kernel_id}", method="DELETE")


def number(value: str | None) -> float | None:
    return None if value is None else float(value)


def differences(device: dict, row: dict) -> list[str]:
    """Fields where the API's device and nvidia-smi's row disagree beyond the tolerances."""
    problems = []

    def differ(field, ours, theirs):
        problems.append(f"{field}: jupyter-tk {ours!r}, nvidia-smi {theirs!r}")

    for field, ours in (("index", str(device["index"])), ("uuid", device["uuid"])):
        if ours != row[field]:
            differ(field, ours, row[field])
    if device["name"] != row["name"]:
        differ("name", device["name"], row["name"])
    total = number(row["memory.total"])
    if total is not None and abs(device["memory_total"] / MIB - total) > 1:
        differ("memory.total", device["memory_total"], row["memory.total"])
    for field, (ours_name, unit, tolerance) in MOVING.items():
        theirs, ours = number(row[field]), device[ours_name]
        if theirs is None or ours is None:
            if (theirs is None) != (ours is None):
                differ(field, ours, row[field])
        elif abs(ours / unit - theirs) > tolerance:
            differ(field, ours, row[field])
    draw, ours = number(row["power.draw"]), device["power_usage"]
    if (draw is None) != (ours is None) or (
        draw is not None and abs(ours - draw) > max(30.0, 0.15 * draw)
    ):
        differ("power.draw", ours, row["power.draw"])
    limit, ours = number(row["enforced.power.limit"]), device["power_limit"]
    if (limit is None) != (ours is None) or (limit is not None and abs(ours - limit) > 1.0):
        differ("enforced.power.limit", ours, row["enforced.power.limit"])
    return problems


def compare_with_nvidia_smi(server: JupyterServer, attempts: int = 8) -> dict:
    """The API snapshot once every whole GPU agrees with nvidia-smi (a few reads for moving
    figures to settle); fails with the differences of the last attempt."""
    problems: list[str] = []
    for _ in range(attempts):
        snapshot = server.gpus()
        rows = {row["uuid"]: row for row in nvidia_smi("gpu", GPU_FIELDS)}
        assert snapshot["available"] is True, snapshot["reason"]
        whole = [d for d in snapshot["devices"] if not d["mig"]]
        problems = [
            f"GPU {d['index']} ({d['uuid']}) is unknown to nvidia-smi"
            for d in whole
            if d["uuid"] not in rows
        ]
        for device in whole:
            row = rows.get(device["uuid"])
            if row is None:
                continue
            problems += [f"GPU {device['index']} {p}" for p in differences(device, row)]
            if snapshot["driver_version"] != row["driver_version"]:
                problems.append(f"driver: {snapshot['driver_version']} vs {row['driver_version']}")
        if not problems:
            return snapshot
        time.sleep(1.0)
    raise AssertionError("jupyter-tk and nvidia-smi disagree:\n" + "\n".join(problems))


def test_every_gpu_of_the_machine_is_shown_as_nvidia_smi_shows_it(server):
    count, _ = real_nvml()
    snapshot = compare_with_nvidia_smi(server)
    rows = nvidia_smi("gpu", ["uuid", "mig.mode.current"])
    assert len(rows) == count
    whole = {row["uuid"] for row in rows if row["mig.mode.current"] != "Enabled"}
    assert {d["uuid"] for d in snapshot["devices"] if not d["mig"]} == whole
    assert snapshot["cuda_driver_version"], "the driver reports its CUDA version"


def test_a_kernels_cuda_process_carries_its_kernel_id_and_matches_nvidia_smi(server, cuda_kernel):
    kernel_id, pid, uuid = cuda_kernel

    def listed() -> dict | None:
        snapshot = server.gpus()
        device = next(d for d in snapshot["devices"] if d["uuid"] == uuid)
        mine = [p for p in device["processes"] if p["pid"] == pid]
        # The sampler's figure may predate the workload's allocation: wait for a fresh one.
        return device if mine and (mine[0]["used_memory"] or 0) >= WORKLOAD_BYTES else None

    deadline = time.monotonic() + 30
    while (device := listed()) is None:
        assert time.monotonic() < deadline, f"the kernel's process never showed on {uuid}"
        time.sleep(0.5)
    (process,) = [p for p in device["processes"] if p["pid"] == pid]
    assert process["kernel_id"] == kernel_id
    assert device["attribution"] == "pid"
    assert [k["kernel_id"] for k in device["kernels"]] == [kernel_id]
    assert process["used_memory"] >= WORKLOAD_BYTES

    def on_this_gpu() -> dict[int, dict]:
        apps = nvidia_smi("compute-apps", ["pid", "gpu_uuid", "used_memory"])
        theirs = {int(row["pid"]): row for row in apps if row["gpu_uuid"] == uuid}
        assert pid in theirs, f"nvidia-smi does not list the kernel {pid}: {apps}"
        return theirs

    # The sampler's figure is up to one interval old: compare while the process's memory holds
    # still, i.e. nvidia-smi reads the same before and after a fresh sample.
    deadline = time.monotonic() + 30
    while True:
        before = on_this_gpu()
        time.sleep(1.5)
        device = listed() or device
        (process,) = [p for p in device["processes"] if p["pid"] == pid]
        theirs = on_this_gpu()
        if before[pid]["used_memory"] == theirs[pid]["used_memory"]:
            break
        assert time.monotonic() < deadline, "the kernel's GPU memory never held still"
    assert abs(process["used_memory"] / MIB - float(theirs[pid]["used_memory"])) <= 2
    ours = {p["pid"] for p in device["processes"]}
    assert set(theirs) <= ours | {pid}, f"nvidia-smi lists {set(theirs) - ours} that we do not"

    # Under load, every figure still agrees with nvidia-smi.
    compare_with_nvidia_smi(server)


def visible_to_cuda(cuda_visible_devices: str) -> list[str]:
    """The GPU UUIDs CUDA (through PyTorch) sees with this CUDA_VISIBLE_DEVICES."""
    script = (
        "import json, torch\n"
        "print(json.dumps(['GPU-' + str(torch.cuda.get_device_properties(i).uuid)"
        " for i in range(torch.cuda.device_count())]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=real_gpu_env(CUDA_VISIBLE_DEVICES=cuda_visible_devices),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("how", ["index", "uuid", "uuid-prefix", "empty"])
def test_cuda_visible_devices_gives_a_server_the_gpus_cuda_gives_its_kernels(tmp_path, server, how):
    first = next(d for d in server.gpus()["devices"] if not d["mig"])
    spec = {
        "index": str(first["index"]),
        "uuid": first["uuid"],
        "uuid-prefix": first["uuid"][:12],
        "empty": "",
    }[how]
    with JupyterServer(tmp_path, env={"CUDA_VISIBLE_DEVICES": spec}) as limited:
        snapshot = limited.gpus()
    if how == "empty":
        assert snapshot["available"] is False
        assert "CUDA_VISIBLE_DEVICES=''" in snapshot["reason"]
        shown = []
    else:
        assert snapshot["available"] is True, snapshot["reason"]
        shown = [d["uuid"] for d in snapshot["devices"]]
        if how != "index":  # CUDA orders by speed, NVML by PCI bus: only a UUID names one GPU
            assert shown == [first["uuid"]]
    if torch_available():
        assert visible_to_cuda(spec) == shown


def test_the_local_hub_pins_one_gpu_to_one_server_and_refuses_one_more(tmp_path):
    hub = LocalHub(tmp_path / "hub", real_nvml=True)
    with hub:
        alice = hub.login("alice")
        whole = [g for g in alice.resources()["nodes"][0]["gpus"] if g["resource"] == GPU]
        if not whole:
            pytest.skip("every GPU here has MIG enabled: no whole GPU to pin")
        response = alice.submit_form(custom_form("1", "4Gi", GPU, "1"))
        assert response.status_code == 302, response.text[-2000:]
        alice.wait_ready()
        node = alice.resources()["nodes"][0]
        kind = next(g for g in node["gpus"] if g["resource"] == GPU)
        held = [d["uuid"] for d in kind["devices"] if d["taken_by"] == ["alice"]]
        assert len(held) == 1

        # Her server sees exactly that GPU, and so does CUDA in its environment.
        server = next(
            child
            for child in psutil.Process(hub.process.pid).children()
            if child.environ().get("JUPYTERHUB_USER") == "alice"
        )
        assert server.environ()["CUDA_VISIBLE_DEVICES"] == held[0]
        # The check installs no JupyterLab to open: a token with access to her server instead.
        token = alice.api(
            "POST", "/hub/api/users/alice/tokens", json={"scopes": ["access:servers!user=alice"]}
        ).json()["token"]
        gpus = requests.get(
            f"{hub.url}/user/alice/jupyter-tk/api/gpus",
            headers={"Authorization": f"token {token}"},
            timeout=60,
        ).json()
        assert [d["uuid"] for d in gpus["devices"]] == held

        # The other whole GPUs go to a second user, then one more GPU is refused.
        if kind["count"] > 1:
            carol = hub.login("carol")
            rest = str(kind["count"] - 1)
            assert carol.submit_form(custom_form("1", "4Gi", GPU, rest)).status_code == 302
            carol.wait_ready()
        bob = hub.login("bob")
        refused = bob.submit_form(custom_form("1", "4Gi", GPU, "1"))
        assert refused.status_code == 400
        assert GPU in refused.text
        assert bob.server() is None
        alice.stop_server()
