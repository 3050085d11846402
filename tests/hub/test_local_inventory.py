"""LocalInventory: this machine as one node, read by the real pynvml from a fake NVML library."""

import json
import os
import subprocess
import sys
import threading

import psutil
import pytest
from traitlets import TraitError

from jupyter_tk.hub.local.inventory import AllocationError, LocalAllocation, LocalInventory
from tests.fakes.nvml import (
    GIB,
    fake_config,
    fake_gpu,
    fake_mig_gpu,
    fake_uuid,
    load_fake_nvml_in_process,
    read_call_counts,
    read_calling_threads,
    write_nvml_config,
)

GPU = "nvidia.com/gpu"
MIG = "nvidia.com/mig-1g.10gb"


@pytest.fixture
def nvml_config(tmp_path, monkeypatch):
    """Write a fake NVML config for this test; the in-process library reads it on every call."""
    load_fake_nvml_in_process()
    path = tmp_path / "nvml.json"
    monkeypatch.setenv("FAKE_NVML_CONFIG", str(path))

    def write(devices, **options):
        write_nvml_config(fake_config(devices, **options), path)
        return path

    write([fake_gpu(0), fake_gpu(1), fake_mig_gpu(2, instances=3)])
    return write


@pytest.fixture
async def inventory(nvml_config):
    inventory = LocalInventory(refresh_interval=60)
    await inventory.start()
    yield inventory
    await inventory.stop()


def node_of(inventory):
    snapshot = inventory.snapshot()
    assert snapshot["source"] == "local"
    assert len(snapshot["nodes"]) == 1
    return snapshot["nodes"][0]


def kind(node, resource):
    return next(gpu for gpu in node["gpus"] if gpu["resource"] == resource)


async def test_the_machine_is_one_node_with_its_cpus_memory_and_gpu_kinds(inventory):
    node = node_of(inventory)
    assert node["ready"] and node["schedulable"]
    assert node["allocatable"]["cpu"] == len(os.sched_getaffinity(0))
    assert node["allocatable"]["memory"] == psutil.virtual_memory().total - GIB
    assert node["allocatable"][GPU] == 2 and node["allocatable"][MIG] == 3
    assert node["free"] == node["allocatable"]
    whole = kind(node, GPU)
    assert whole["product"] == "NVIDIA A100-SXM4-80GB"
    assert (whole["count"], whole["free"], whole["shared"]) == (2, 2, False)
    assert whole["memory_mib"] == 80 * 1024 and whole["mig_profile"] is None
    assert [d["uuid"] for d in whole["devices"]] == [fake_uuid(0), fake_uuid(1)]
    # Live use per device, as the fake reports it (fake_gpu: utilization (10*i+7)%101, i+1 GiB).
    assert [d["utilization_gpu"] for d in whole["devices"]] == [7, 17]
    assert [d["memory_used"] for d in whole["devices"]] == [GIB, 2 * GIB]
    slices = kind(node, MIG)
    assert (slices["count"], slices["free"], slices["mig_profile"]) == (3, 3, "1g.10gb")
    assert slices["memory_mib"] == 10 * 1024
    assert {d["parent_uuid"] for d in slices["devices"]} == {fake_uuid(2)}
    assert all(d["utilization_gpu"] is None for d in slices["devices"])
    assert node["gpu_note"] is None and node["driver_version"] == "550.54.15"


async def test_gpus_taken_by_a_server_leave_free_and_come_back_on_release(inventory):
    allocation = inventory.allocate("alice", cpu=1, memory=2 * GIB, gpu_resource=GPU, gpu_count=1)
    node = node_of(inventory)
    whole = kind(node, GPU)
    assert whole["free"] == 1 and node["free"][GPU] == 1
    assert node["requested"] == {"cpu": 1.0, "memory": 2 * GIB, GPU: 1}
    holders = {d["uuid"]: d["taken_by"] for d in whole["devices"]}
    assert holders[allocation.gpu_uuids[0]] == ["alice"]

    inventory.release("alice")
    node = node_of(inventory)
    assert kind(node, GPU)["free"] == 2 and node["requested"]["cpu"] == 0


async def test_two_servers_never_get_the_same_gpu(inventory):
    first = inventory.allocate("alice", cpu=0.5, memory=0, gpu_resource=GPU, gpu_count=1)
    second = inventory.allocate("bob", cpu=0.5, memory=0, gpu_resource=GPU, gpu_count=1)
    assert set(first.gpu_uuids).isdisjoint(second.gpu_uuids)
    before = inventory.snapshot()["nodes"]

    with pytest.raises(AllocationError, match=r"not enough free nvidia.com/gpu.*free 0"):
        inventory.allocate("carol", cpu=0.1, memory=0, gpu_resource=GPU, gpu_count=1)

    assert inventory.snapshot()["nodes"] == before
    assert inventory.allocation("carol") is None


async def test_mig_instances_are_handed_out_as_their_own_kind(inventory):
    allocation = inventory.allocate("alice", cpu=1, memory=0, gpu_resource=MIG, gpu_count=2)
    assert all(uuid.startswith("MIG-") for uuid in allocation.gpu_uuids)
    node = node_of(inventory)
    assert kind(node, MIG)["free"] == 1 and kind(node, GPU)["free"] == 2


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        ({"cpu": 64, "memory": 0}, r"offers \d+ cores to servers, asked 64"),
        ({"cpu": 1, "memory": 10**15}, "not enough free memory"),
        ({"cpu": 0, "memory": 0}, "positive number of cores"),
        ({"cpu": float("nan"), "memory": 0}, "positive number of cores"),
        ({"cpu": 1, "memory": 0, "gpu_resource": "amd.com/gpu", "gpu_count": 1}, "no amd.com/gpu"),
        ({"cpu": 1, "memory": 0, "gpu_resource": GPU, "gpu_count": 3}, "asked 3, free 2"),
    ],
)
async def test_requests_the_machine_cannot_hold_are_refused_and_change_nothing(
    inventory, request_, message
):
    before = inventory.snapshot()["nodes"]
    with pytest.raises(AllocationError, match=message):
        inventory.allocate("alice", **request_)
    assert inventory.snapshot()["nodes"] == before


async def test_a_refused_request_keeps_what_the_server_held(inventory):
    held = inventory.allocate("alice", cpu=1, memory=0, gpu_resource=GPU, gpu_count=1)
    with pytest.raises(AllocationError):
        inventory.allocate("alice", cpu=1, memory=0, gpu_resource=GPU, gpu_count=5)
    assert inventory.allocation("alice") == held


async def test_exclusive_cores_are_pinned_where_fewest_servers_run(inventory):
    inventory.cpu_mode = "exclusive"
    cores = sorted(os.sched_getaffinity(0))
    first = inventory.allocate("alice", cpu=0.5, memory=0)
    second = inventory.allocate("bob", cpu=0.5, memory=0)
    assert len(first.cores) == 1 and len(second.cores) == 1
    if len(cores) > 1:
        assert first.cores != second.cores
    whole = inventory.allocate("carol", cpu=len(cores) - 1, memory=0)
    assert len(whole.cores) == len(cores) - 1


async def test_shared_gpus_are_offered_replicas_times(nvml_config):
    inventory = LocalInventory(refresh_interval=60, gpu_replicas=2)
    await inventory.start()
    try:
        node = node_of(inventory)
        whole = kind(node, GPU)
        assert (whole["count"], whole["free"], whole["shared"]) == (4, 4, True)
        picks = [
            inventory.allocate(name, cpu=0.1, memory=0, gpu_resource=GPU, gpu_count=1)
            for name in ("a", "b", "c", "d")
        ]
        per_gpu = [
            sum(p.gpu_uuids[0] == uuid for p in picks) for uuid in (fake_uuid(0), fake_uuid(1))
        ]
        assert per_gpu == [2, 2]
        with pytest.raises(AllocationError):
            inventory.allocate("e", cpu=0.1, memory=0, gpu_resource=GPU, gpu_count=1)
    finally:
        await inventory.stop()


async def test_reservations_come_back_after_a_hub_restart(nvml_config):
    first = LocalInventory(refresh_interval=60)
    await first.start()
    held = first.allocate("alice/gpu", cpu=1, memory=GIB, gpu_resource=GPU, gpu_count=1)
    # What the spawner keeps in its JupyterHub state is plain JSON.
    saved = json.loads(json.dumps(held.to_state()))
    await first.stop()

    restarted = LocalInventory(refresh_interval=60)
    await restarted.start()
    try:
        assert restarted.restore(saved) == held
        node = node_of(restarted)
        assert kind(node, GPU)["free"] == 1
        other = restarted.allocate("bob", cpu=0.1, memory=0, gpu_resource=GPU, gpu_count=1)
        assert other.gpu_uuids != held.gpu_uuids
    finally:
        await restarted.stop()


async def test_live_use_follows_the_gpus_and_bumps_the_version(inventory, nvml_config):
    version = inventory.version
    nvml_config([fake_gpu(0, utilization_gpu=93, memory_used=70 * GIB), fake_gpu(1)])
    await inventory.refresh()
    node = node_of(inventory)
    assert inventory.version != version
    device = kind(node, GPU)["devices"][0]
    assert (device["utilization_gpu"], device["memory_used"]) == (93, 70 * GIB)
    # The MIG GPU is gone from the config: so are its instances.
    assert [g["resource"] for g in node["gpus"]] == [GPU]


async def test_a_lost_gpu_keeps_its_row_but_is_not_offered(nvml_config):
    nvml_config([fake_gpu(0), fake_gpu(1, lost=True)])
    inventory = LocalInventory(refresh_interval=60)
    await inventory.start()
    try:
        whole = kind(node_of(inventory), GPU)
        assert (whole["count"], whole["free"]) == (1, 1)
        lost = whole["devices"][1]
        # A lost GPU answers nothing, not even its UUID: it is known by its NVML index.
        assert lost["index"] == 1 and "lost" in lost["error"].lower()
        allocation = inventory.allocate("a", cpu=0.1, memory=0, gpu_resource=GPU, gpu_count=1)
        assert allocation.gpu_uuids == (fake_uuid(0),)
    finally:
        await inventory.stop()


async def test_a_machine_whose_driver_fails_has_no_gpus_and_says_why(nvml_config):
    nvml_config([fake_gpu(0)], fail_init="driver_not_loaded")
    inventory = LocalInventory(refresh_interval=60)
    await inventory.start()
    try:
        node = node_of(inventory)
        assert node["gpus"] == [] and GPU not in node["allocatable"]
        assert node["gpu_note"] == "The NVIDIA driver is not loaded on this machine"
        with pytest.raises(AllocationError, match=r"no nvidia\.com/gpu"):
            inventory.allocate("a", cpu=0.1, memory=0, gpu_resource=GPU, gpu_count=1)
        assert inventory.allocate("a", cpu=0.1, memory=0).gpu_uuids == ()
    finally:
        await inventory.stop()


async def test_nvml_is_initialised_once_and_never_called_on_the_event_loop(nvml_config, tmp_path):
    counter = tmp_path / "calls.bin"
    nvml_config([fake_gpu(0), fake_mig_gpu(1)], counter_path=str(counter))
    inventory = LocalInventory(refresh_interval=60)
    await inventory.start()
    try:
        for _ in range(3):
            await inventory.refresh()
            inventory.snapshot()
    finally:
        await inventory.stop()
    counts = read_call_counts(counter)
    assert counts["nvmlInitWithFlags"] == 1
    assert counts["nvmlDeviceGetUtilizationRates"] >= 4
    callers = read_calling_threads(counter)
    assert callers and threading.get_native_id() not in callers


def test_without_any_nvml_library_the_machine_simply_has_no_gpus(tmp_path):
    # A fresh interpreter that cannot find libnvidia-ml.so.1 at all (this test process may
    # already hold the fake), started the way the hub would start.
    script = (
        "import asyncio, json\n"
        "from jupyter_tk.hub.local.inventory import LocalInventory\n"
        "async def main():\n"
        "    inventory = LocalInventory()\n"
        "    await inventory.start()\n"
        "    print(json.dumps(inventory.snapshot()['nodes'][0]))\n"
        "    await inventory.stop()\n"
        "asyncio.run(main())\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "FAKE_NVML_CONFIG")}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    node = json.loads(result.stdout)
    assert node["gpus"] == [] and node["allocatable"]["cpu"] > 0
    assert "libnvidia-ml.so.1" in node["gpu_note"]


def test_an_allocation_survives_a_round_trip_through_json():
    allocation = LocalAllocation(
        key="alice/x", cpu=1.5, memory=GIB, cores=(0, 1), gpu_resource=MIG, gpu_uuids=("MIG-1",)
    )
    assert LocalAllocation.from_state(json.loads(json.dumps(allocation.to_state()))) == allocation


@pytest.mark.parametrize("value", ["1GB", "-1Gi", "lots"])
def test_a_bad_reserved_memory_is_refused_when_the_config_loads(value):
    with pytest.raises(TraitError, match="reserved_memory"):
        LocalInventory(reserved_memory=value)


def test_the_hub_and_the_server_read_the_same_devices_in_the_same_words(nvml_config):
    """One NVML module: the local inventory and a server's GPU statistics agree on every device,
    a lost one included (same placeholder UUID, same message)."""
    from jupyter_tk.hub.local.gpus import LocalGpuReader
    from jupyter_tk.server.gpu.stats import GpuStatsReader

    nvml_config([fake_gpu(0), fake_gpu(1, handle_lost=True), fake_mig_gpu(2, instances=2)])
    hub_reader, server_reader = LocalGpuReader(), GpuStatsReader()
    try:
        hub = hub_reader.read()
        server_reader.open()
        server = server_reader.read()
    finally:
        hub_reader.close()
        server_reader.close()
    assert [(d.index, d.uuid, d.parent_uuid, d.error) for d in hub.devices] == [
        (d["index"], d["uuid"], d["parent_uuid"], d["error"]) for d in server
    ]
    lost = hub.devices[1]
    assert lost.uuid == "GPU-unavailable-1" and lost.error.startswith("GPU is lost")
    assert hub.driver_version == server_reader.driver_version == "550.54.15"
