"""CPU on one machine: time-shared by default, reserved and pinned in exclusive mode.

The real-hub tests run the shipped local_config.py on two cores of this machine (the hub's CPU
affinity), as on a two-core workstation, with the fake NVML library's GPUs.
"""

import concurrent.futures
import os

import psutil
import pytest

from jupyter_tk.hub.local.cgroups import MemoryCgroups, cpu_weight
from jupyter_tk.hub.local.inventory import AllocationError, LocalInventory
from tests.fakes.nvml import fake_config, fake_gpu, load_fake_nvml_in_process, write_nvml_config
from tests.support.local_hub import LocalHub, custom_form

GPU = "nvidia.com/gpu"
GIB = 2**30
CORES = 2

needs_two_cores = pytest.mark.skipif(
    len(os.sched_getaffinity(0)) < CORES, reason="needs a machine with two cores"
)


# -- the inventory on its own ----------------------------------------------------------------


@pytest.fixture
async def inventory(tmp_path, monkeypatch):
    load_fake_nvml_in_process()
    path = tmp_path / "nvml.json"
    monkeypatch.setenv("FAKE_NVML_CONFIG", str(path))
    write_nvml_config(fake_config([fake_gpu(0)]), path)
    inventory = LocalInventory(refresh_interval=60)
    await inventory.start()
    yield inventory
    await inventory.stop()


async def test_shared_cpu_admits_more_servers_than_cores_and_pins_none(inventory):
    cores = len(os.sched_getaffinity(0))
    assert inventory.cpu_mode == "shared"
    # Given servers that together ask for three times the machine's cores
    held = [inventory.allocate(f"user{i}", cpu=cores, memory=0) for i in range(3)]
    # Then all of them fit, none is pinned, and the snapshot counts what they asked for
    assert all(allocation.cores == () for allocation in held)
    node = inventory.snapshot()["nodes"][0]
    assert node["requested"]["cpu"] == 3 * cores
    # And "free CPU" stays the most one server may use: the whole machine
    assert node["free"]["cpu"] == node["allocatable"]["cpu"] == cores
    assert node["cpu_mode"] == "shared"
    assert node["cpu_note"].startswith("CPU is time-shared on this machine")
    assert f"running servers ask for {3 * cores:g} cores in all" in node["cpu_note"]


async def test_shared_cpu_still_refuses_more_than_the_machine_offers(inventory):
    inventory.reserved_cpu = 0.5
    offered = len(os.sched_getaffinity(0)) - 0.5
    with pytest.raises(AllocationError, match=f"offers {offered:g} cores to servers, asked 64"):
        inventory.allocate("alice", cpu=64, memory=0)
    assert inventory.allocation("alice") is None


async def test_gpus_and_memory_stay_reserved_when_cpu_is_shared(inventory):
    inventory.allocate("alice", cpu=1, memory=GIB, gpu_resource=GPU, gpu_count=1)
    with pytest.raises(AllocationError, match=r"not enough free nvidia\.com/gpu"):
        inventory.allocate("bob", cpu=1, memory=GIB, gpu_resource=GPU, gpu_count=1)
    free_memory = inventory.snapshot()["nodes"][0]["free"]["memory"]
    with pytest.raises(AllocationError, match="not enough free memory"):
        inventory.allocate("bob", cpu=1, memory=free_memory + GIB)


async def test_exclusive_cpu_adds_requests_up_and_refuses_the_next(inventory):
    inventory.cpu_mode = "exclusive"
    cores = len(os.sched_getaffinity(0))
    first = inventory.allocate("alice", cpu=cores, memory=0)
    assert len(first.cores) == cores
    before = inventory.snapshot()["nodes"]
    with pytest.raises(AllocationError, match=r"not enough free CPU .* asked 1, free 0 cores"):
        inventory.allocate("bob", cpu=1, memory=0)
    assert inventory.snapshot()["nodes"] == before
    node = before[0]
    assert node["free"]["cpu"] == 0 and node["cpu_mode"] == "exclusive"
    assert node["cpu_note"] == (
        f"CPU is reserved on this machine: each server is pinned to whole cores, "
        f"0 of {cores} cores are not requested."
    )


def test_an_unknown_cpu_mode_is_refused_when_the_config_loads():
    with pytest.raises(Exception, match="cpu_mode"):
        LocalInventory(cpu_mode="fair")


def test_a_servers_cpu_weight_is_proportional_to_its_cpu():
    assert [cpu_weight(c) for c in (0.1, 0.5, 1, 2, 2.5)] == [10, 50, 100, 200, 250]
    assert cpu_weight(0.001) == 1 and cpu_weight(1000) == 10_000


def test_where_cgroups_have_the_cpu_controller_a_group_gets_limit_and_weight():
    cgroups = MemoryCgroups(parent_group="jupyter-tk-test-cpu")
    support = cgroups.support
    if not (support.enforced and support.cpu_controller):
        pytest.skip(f"no cgroup v2 cpu controller here: {support.reason or 'not delegated'}")
    try:
        group = cgroups.create("alice", 0, 1.5)
        assert cgroups.cpu_settings(group) == ("150000 100000", "150")
        assert MemoryCgroups.memory_limit(group) == "max"
        group.rmdir()
    finally:
        support.parent.rmdir()


# -- a real hub on a two-core machine --------------------------------------------------------


def start_hub(workdir, extra_config=""):
    return LocalHub(workdir, cores=CORES, extra_config=extra_config).start()


def server_process(hub, user):
    for child in psutil.Process(hub.process.pid).children():
        try:
            if child.environ().get("JUPYTERHUB_USER") == user:
                return child
        except psutil.Error:
            continue
    raise AssertionError(f"no server process for {user}")


GPU_PRESET = dict(custom_form("", ""), profile="gpu-1")


@needs_two_cores
@pytest.mark.skipif(
    psutil.virtual_memory().total < 11 * GIB, reason="the 1 GPU preset and two servers need 11 GiB"
)
def test_two_cpu_servers_and_a_gpu_server_share_two_cores_by_default(tmp_path):
    hub = start_hub(tmp_path)
    try:
        # Given the "1 GPU" preset (2 CPU) started on a two-core machine
        alice = hub.login("alice")
        response = alice.submit_form(GPU_PRESET)
        assert response.status_code == 302, response.text[-2000:]
        # When two more users each start a 1-CPU server without GPU
        bob, carol = hub.login("bob"), hub.login("carol")
        for user in (bob, carol):
            response = user.submit_form(custom_form("1", "1Gi"))
            assert response.status_code == 302, response.text[-2000:]
        # Then all three run at once
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            list(pool.map(lambda user: user.wait_ready(), (alice, bob, carol)))
        (node,) = alice.resources()["nodes"]
        assert node["requested"]["cpu"] == 4.0 and node["allocatable"]["cpu"] == CORES
        assert node["free"]["cpu"] == CORES
        assert node["requested"][GPU] == 1
        assert "CPU is time-shared on this machine" in node["cpu_note"]
        # And each runs on both cores (a share, not a pinned core); alice alone has a GPU
        hub_cores = psutil.Process(hub.process.pid).cpu_affinity()
        assert len(hub_cores) == CORES
        for user in (alice, bob, carol):
            process = server_process(hub, user.name)
            assert process.cpu_affinity() == hub_cores
            assert bool(process.environ()["CUDA_VISIBLE_DEVICES"]) == (user is alice)
        # And the node list offers a fourth user the whole machine's CPU
        form = hub.login("dave").get("/hub/spawn").content.decode()
        assert f"— {CORES} CPU · " in form
        for user in (alice, bob, carol):
            user.stop_server()
        assert alice.resources()["nodes"][0]["requested"]["cpu"] == 0
    finally:
        hub.stop()


@needs_two_cores
def test_exclusive_cpu_pins_servers_and_refuses_what_does_not_fit(tmp_path):
    hub = start_hub(tmp_path, "c.LocalInventory.cpu_mode = 'exclusive'\n")
    try:
        # Given a 1-CPU server on a two-core machine where CPU is exclusive
        bob = hub.login("bob")
        assert bob.submit_form(custom_form("1", "1Gi")).status_code == 302
        bob.wait_ready()
        # Then it is pinned to one core
        assert len(server_process(hub, "bob").cpu_affinity()) == 1
        (node,) = bob.resources()["nodes"]
        assert node["free"]["cpu"] == 1 and node["cpu_mode"] == "exclusive"
        # When another user asks for the 2-CPU "1 GPU" preset, the form refuses and says why
        alice = hub.login("alice")
        refused = alice.submit_form(GPU_PRESET)
        assert refused.status_code == 400
        assert "only 1 CPU free" in refused.text
        assert alice.server() is None
        bob.stop_server()
    finally:
        hub.stop()
