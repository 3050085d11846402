"""KubernetesInventory against the simulated API over real HTTP (kubernetes_asyncio client)."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time

import pytest
from traitlets.config import Config

from jupyter_tk.hub.inventory import get_inventory
from jupyter_tk.hub.kubernetes.inventory import KubernetesInventory, NoRoom
from jupyter_tk.hub.placement import ResourceRequest
from tests.fakes.clusters import gfd_labels, make_cluster, make_node, make_pod
from tests.fakes.kubernetes import SimulatedKubernetes

GI = 1024**3
MI = 1024**2


async def eventually(predicate, timeout: float = 1.0, interval: float = 0.01):
    """Poll until `predicate()` is true; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s: {predicate.__doc__ or predicate}")
        await asyncio.sleep(interval)


def node(inventory, name):
    matches = [n for n in inventory.snapshot()["nodes"] if n["name"] == name]
    return matches[0] if matches else None


@pytest.fixture
def kubeconfig(api, tmp_path):
    return str(api.write_kubeconfig(tmp_path / "kubeconfig"))


@pytest.fixture
async def inventory(kubeconfig):
    inv = KubernetesInventory(
        kubeconfig=kubeconfig, stale_after_seconds=0.3, backoff_max_seconds=0.5
    )
    await inv.start()
    assert await inv.wait_synced(10)
    yield inv
    await inv.stop()


async def test_small_cluster_matches_a_hand_computation(inventory):
    snapshot = inventory.snapshot()
    assert snapshot["source"] == "kubernetes"
    assert snapshot["stale"] is False
    assert [n["name"] for n in snapshot["nodes"]] == ["cpu-1", "cpu-2", "gpu-1"]

    # cpu-1: web (500m, 1Gi) + db (1500m, 2Gi); the Succeeded pod "done" (4 cpu) holds nothing.
    cpu1 = node(inventory, "cpu-1")
    assert cpu1["allocatable"]["cpu"] == 8.0
    assert cpu1["requested"]["cpu"] == 2.0
    assert cpu1["free"]["cpu"] == 6.0
    assert cpu1["requested"]["memory"] == 3 * GI
    assert cpu1["free"]["memory"] == 29 * GI
    assert cpu1["requested"]["pods"] == 2
    assert cpu1["free"]["pods"] == 108
    assert cpu1["gpus"] == []
    assert (cpu1["ready"], cpu1["schedulable"], cpu1["taints"]) == (True, True, [])

    # gpu-1: train asks 4 cpu, 16Gi and (limits only) one of the two A100s.
    gpu1 = node(inventory, "gpu-1")
    assert gpu1["free"]["cpu"] == 28.0
    assert gpu1["free"]["memory"] == 112 * GI
    assert gpu1["requested"]["nvidia.com/gpu"] == 1
    assert gpu1["free"]["nvidia.com/gpu"] == 1
    assert gpu1["gpus"] == [
        {
            "resource": "nvidia.com/gpu",
            "product": "NVIDIA-A100-SXM4-40GB",
            "memory_mib": 40960,
            "count": 2,
            "free": 1,
            "shared": False,
            "mig_profile": None,
            "physical_count": 2,
        }
    ]
    assert gpu1["taints"] == [{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}]

    # cpu-2 is cordoned; migrate's init container (1 cpu, 128Mi) outweighs its app (250m, 256Mi).
    cpu2 = node(inventory, "cpu-2")
    assert cpu2["schedulable"] is False
    assert cpu2["ready"] is True
    assert cpu2["requested"]["cpu"] == 1.0
    assert cpu2["requested"]["memory"] == 256 * MI
    assert cpu2["free"]["cpu"] == 3.0
    assert {"key": "node.kubernetes.io/unschedulable", "value": None, "effect": "NoSchedule"} in (
        cpu2["taints"]
    )


async def test_snapshot_follows_the_contract(inventory):
    snapshot = inventory.snapshot()
    assert set(snapshot) >= {"source", "generated_at", "age_seconds", "stale", "nodes"}
    assert isinstance(snapshot["generated_at"], float)
    for row in snapshot["nodes"]:
        assert set(row) >= {
            "name",
            "ready",
            "schedulable",
            "allocatable",
            "requested",
            "free",
            "gpus",
            "taints",
        }
        assert isinstance(row["allocatable"]["cpu"], float)
        assert isinstance(row["allocatable"]["memory"], int)
        for gpu in row["gpus"]:
            assert set(gpu) >= {
                "resource",
                "product",
                "memory_mib",
                "count",
                "free",
                "shared",
                "mig_profile",
            }
    encoded = json.loads(inventory.snapshot_json())
    assert encoded["nodes"] == snapshot["nodes"]
    assert encoded["source"] == "kubernetes"


async def test_pod_added_then_deleted_shows_within_one_second(api, inventory):
    api.add_pod(make_pod("new", "ml", node="gpu-1", limits={"nvidia.com/gpu": "1"}))
    await eventually(lambda: node(inventory, "gpu-1")["free"]["nvidia.com/gpu"] == 0)
    assert node(inventory, "gpu-1")["gpus"][0]["free"] == 0

    api.delete_pod("ml", "new")
    await eventually(lambda: node(inventory, "gpu-1")["free"]["nvidia.com/gpu"] == 1)


async def test_a_finished_pod_frees_its_resources(api, inventory):
    api.set_pod_phase("apps", "db", "Succeeded")
    await eventually(lambda: node(inventory, "cpu-1")["free"]["cpu"] == 7.5)
    assert node(inventory, "cpu-1")["requested"]["pods"] == 1


async def test_a_pod_bound_later_counts_from_then(api, inventory):
    pending = make_pod("later", "apps", requests={"cpu": "3"})
    pending["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "nowhere"}
    api.add_pod(pending)  # unschedulable: Pending, no node
    await asyncio.sleep(0.1)
    assert node(inventory, "cpu-1")["free"]["cpu"] == 6.0
    bound = copy.deepcopy(api.store.get("pods", "apps/later"))
    bound["spec"]["nodeName"] = "cpu-1"
    bound["status"] = {"phase": "Running"}
    api.store.put("pods", bound)
    await eventually(lambda: node(inventory, "cpu-1")["free"]["cpu"] == 3.0)


async def test_node_readiness_cordon_and_taints_follow_the_node(api, inventory):
    api.update_node(
        make_node(
            "cpu-1",
            cpu="8",
            memory="32Gi",
            ready=False,
            taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}],
        )
    )
    await eventually(lambda: node(inventory, "cpu-1")["ready"] is False)
    row = node(inventory, "cpu-1")
    assert row["schedulable"] is False
    assert {"key": "dedicated", "value": "ml", "effect": "NoSchedule"} in row["taints"]

    api.update_node(make_node("cpu-2", cpu="4", memory="16Gi"))  # uncordoned
    await eventually(lambda: node(inventory, "cpu-2")["schedulable"] is True)
    assert node(inventory, "cpu-2")["taints"] == []


async def test_nodes_come_and_go(api, inventory):
    labels = gfd_labels("NVIDIA-L4", 23034, 1)
    api.add_node(make_node("l4", extended={"nvidia.com/gpu": 1}, labels=labels))
    await eventually(lambda: node(inventory, "l4") is not None)
    assert node(inventory, "l4")["gpus"][0]["product"] == "NVIDIA-L4"
    api.delete_node("l4")
    await eventually(lambda: node(inventory, "l4") is None)


async def test_version_changes_with_the_data_only(api, inventory):
    version = inventory.version
    inventory.snapshot()
    assert inventory.version == version
    # A status-only change of a pod (what kubelets send all day) changes nothing we show.
    pod = copy.deepcopy(api.store.get("pods", "apps/web"))
    pod["status"]["podIP"] = "10.0.0.9"
    api.store.put("pods", pod)
    await asyncio.sleep(0.2)
    assert inventory.version == version
    api.add_pod(make_pod("more", "apps", node="cpu-1", requests={"cpu": "1"}))
    await eventually(lambda: inventory.version != version)


async def test_api_down_serves_last_snapshot_as_stale_then_recovers(api, inventory):
    before, live_version = inventory.snapshot()["nodes"], inventory.version
    await asyncio.sleep(1.5)  # a quiet cluster: the open watches see no events for a while
    await api.stop()
    await eventually(lambda: inventory.snapshot()["stale"], timeout=5)
    snapshot = inventory.snapshot()
    assert snapshot["nodes"] == before
    assert inventory.version != live_version  # so a cached ETag does not hide the staleness
    # The age counts from when the API went away, not from the last event.
    assert 0.3 <= snapshot["age_seconds"] < 1.5
    stale_version = inventory.version

    # Changes made while the hub cannot see them arrive once the API is back.
    api.add_pod(make_pod("offline", "apps", node="cpu-1", requests={"cpu": "2"}))
    await api.start(port=api.port)
    await eventually(lambda: not inventory.snapshot()["stale"], timeout=5)
    await eventually(lambda: node(inventory, "cpu-1")["free"]["cpu"] == 4.0)
    assert inventory.snapshot()["age_seconds"] == 0
    assert inventory.version != stale_version
    # The watch resumed from its resourceVersion: no relist was needed.
    assert {kind: w.list_count for kind, w in inventory.watches.items()} == {
        "nodes": 1,
        "pods": 1,
    }


async def test_410_gone_relists_and_stays_correct(api, inventory):
    api.force_gone()
    api.add_pod(make_pod("after-gone", "apps", node="cpu-1", requests={"cpu": "1"}))
    await eventually(lambda: all(w.list_count == 2 for w in inventory.watches.values()))
    await eventually(lambda: node(inventory, "cpu-1")["free"]["cpu"] == 5.0)
    assert inventory.snapshot()["stale"] is False


async def test_history_too_old_after_an_outage_relists(tmp_path):
    api = SimulatedKubernetes(make_cluster("small"), history_window=3)
    await api.start()
    inv = KubernetesInventory(
        kubeconfig=str(api.write_kubeconfig(tmp_path / "kc")), backoff_max_seconds=0.3
    )
    try:
        await inv.start()
        assert await inv.wait_synced(10)
        await api.stop()
        for index in range(6):  # more changes than the history keeps
            api.add_pod(make_pod(f"p{index}", "apps", node="cpu-1", requests={"cpu": "500m"}))
        await api.start(port=api.port)
        await eventually(lambda: node(inv, "cpu-1")["free"]["cpu"] == 3.0, timeout=5)
        assert inv.watches["pods"].list_count == 2
    finally:
        await inv.stop()
        await api.stop()


async def test_unreachable_api_at_start_is_stale_and_empty_then_syncs(tmp_path):
    api = SimulatedKubernetes(make_cluster("small"))
    await api.start()
    kubeconfig = str(api.write_kubeconfig(tmp_path / "kc"))
    port = api.port
    await api.stop()
    inv = KubernetesInventory(kubeconfig=kubeconfig, backoff_max_seconds=0.3)
    try:
        await inv.start()
        await asyncio.sleep(0.5)
        snapshot = inv.snapshot()
        assert (snapshot["stale"], snapshot["nodes"]) == (True, [])
        await api.start(port=port)
        assert await inv.wait_synced(5)
        assert len(inv.snapshot()["nodes"]) == 3
    finally:
        await inv.stop()
        await api.stop()


async def test_missing_kubeconfig_keeps_retrying_without_crashing(tmp_path):
    inv = KubernetesInventory(kubeconfig=str(tmp_path / "absent"), backoff_max_seconds=0.2)
    await inv.start()
    await asyncio.sleep(0.5)
    assert inv.snapshot()["stale"] is True
    assert inv._task is not None and not inv._task.done()
    await inv.stop()


async def test_malformed_amounts_are_ignored_not_fatal(api, inventory):
    api.add_pod(make_pod("odd", "apps", node="cpu-1", requests={"cpu": "lots"}))
    api.add_pod(make_pod("fine", "apps", node="cpu-1", requests={"cpu": "1"}))
    await eventually(lambda: node(inventory, "cpu-1")["free"]["cpu"] == 5.0)
    assert node(inventory, "cpu-1")["requested"]["pods"] == 4


async def test_node_selector_limits_the_nodes(api, kubeconfig):
    api.add_node(make_node("picked", labels={"pool": "notebooks"}))
    inv = KubernetesInventory(kubeconfig=kubeconfig, node_selector="pool=notebooks")
    await inv.start()
    try:
        assert await inv.wait_synced(5)
        assert [n["name"] for n in inv.snapshot()["nodes"]] == ["picked"]
    finally:
        await inv.stop()


async def test_lists_in_pages(api, kubeconfig):
    for index in range(7):
        api.add_pod(make_pod(f"x{index}", "apps", node="cpu-1", requests={"cpu": "100m"}))
    inv = KubernetesInventory(kubeconfig=kubeconfig, list_page_size=2)
    await inv.start()
    try:
        assert await inv.wait_synced(5)
        assert node(inv, "cpu-1")["free"]["cpu"] == pytest.approx(5.3)
        assert api.stats()["list"]["pods"] >= 6  # 11 active pods in pages of 2
    finally:
        await inv.stop()


async def test_get_inventory_shares_one_started_instance(kubeconfig):
    class SharedProbe(KubernetesInventory):
        """A subclass so this test owns its process-wide instance."""

    config = Config({"SharedProbe": {"kubeconfig": kubeconfig, "stale_after_seconds": 7.0}})
    first = get_inventory(SharedProbe, config=config)
    second = get_inventory(SharedProbe)
    try:
        assert first is second
        assert first.stale_after_seconds == 7.0
        assert await first.wait_synced(5)  # started by get_inventory on the running loop
        assert len(first.snapshot()["nodes"]) == 3
    finally:
        await first.stop()


class LogLines(logging.Handler):
    """Every line a logger writes at INFO or above, as "LEVEL message"."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.levelname} {record.getMessage()}")


@pytest.fixture
def log_lines():
    log = logging.getLogger(f"test-inventory-{time.monotonic_ns()}")
    log.setLevel(logging.DEBUG)
    log.propagate = False
    handler = LogLines()
    log.addHandler(handler)
    return log, handler


@pytest.mark.parametrize("mode", ["status", "event"])
async def test_a_watch_answering_410_forever_backs_off_and_logs_once(
    api, kubeconfig, log_lines, mode
):
    log, handler = log_lines
    inv = KubernetesInventory(
        kubeconfig=kubeconfig, backoff_max_seconds=2.0, stale_after_seconds=1.0, log=log
    )
    await inv.start()
    try:
        assert await inv.wait_synced(10)
        lines_before = len(handler.lines)
        api.watch_gone = mode
        api.force_gone()  # open watches end with 410; every later watch answers 410 too
        started = api.stats()["list"].copy()
        await asyncio.sleep(6)
        lists = {k: api.stats()["list"][k] - started[k] for k in ("nodes", "pods")}
        # One list at once (an ordinary 410), then waits of about 0.5, 1, 2, 2 s: at most a
        # handful of lists, not thousands.
        assert all(2 <= n <= 6 for n in lists.values()), lists
        # Three lines per watch: the ordinary 410, its relist, then "keeps answering 410" once;
        # the retries after that log nothing at INFO or above.
        new_lines = handler.lines[lines_before:]
        assert len(new_lines) <= 6, new_lines
        assert sum("410 Gone even right after a fresh list" in line for line in new_lines) == 2
        # Between lists the data ages: the snapshot says so.
        assert inv.snapshot()["stale"] is True

        api.watch_gone = None
        api.add_pod(make_pod("after-storm", "apps", node="cpu-1", requests={"cpu": "1"}))
        await eventually(lambda: node(inv, "cpu-1")["free"]["cpu"] == 5.0, timeout=5)
        await eventually(lambda: not inv.snapshot()["stale"], timeout=5)
        assert sum("working again" in line for line in handler.lines) == 2
    finally:
        await inv.stop()


async def test_a_hung_api_is_stale_within_stale_after(api, kubeconfig, log_lines):
    log, handler = log_lines
    # The probe's interval and timeout default to a third of stale_after_seconds each.
    inv = KubernetesInventory(kubeconfig=kubeconfig, stale_after_seconds=2.0, log=log)
    await inv.start()
    try:
        assert await inv.wait_synced(10)
        await asyncio.sleep(1.5)  # quiet watches, answered probes: still fresh
        assert inv.snapshot()["stale"] is False
        hung_at = time.monotonic()
        api.hang()  # connections stay open, nothing answers
        await eventually(lambda: inv.snapshot()["stale"], timeout=6)
        assert time.monotonic() - hung_at <= 2.0 + 1.5
        snapshot = inv.snapshot()
        assert snapshot["age_seconds"] >= 2.0
        assert len(snapshot["nodes"]) == 3  # the last known data is still served
        assert sum("did not answer a probe" in line for line in handler.lines) == 1

        api.resume()
        api.add_pod(make_pod("after-hang", "apps", node="cpu-1", requests={"cpu": "1"}))
        await eventually(lambda: not inv.snapshot()["stale"], timeout=5)
        await eventually(lambda: node(inv, "cpu-1")["free"]["cpu"] == 5.0, timeout=5)
    finally:
        api.resume()
        await inv.stop()


# -- room held for pods the hub is creating --------------------------------------------------------

GPU_REQUEST = ResourceRequest(cpu=2, memory=4 * GI, gpu_resource="nvidia.com/gpu", gpu_count=1)
GPU_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def hold(inventory, key, node=None, request=GPU_REQUEST, hold_seconds=60.0):
    return inventory.reserve(
        key,
        request,
        node=node,
        ratio=1.0,
        tolerations=GPU_TOLERATIONS,
        hold_seconds=hold_seconds,
    )


async def test_held_room_counts_until_the_pod_is_seen_bound(api, inventory):
    assert hold(inventory, "jhub/jupyter-ann") == "gpu-1"  # the only node with a free GPU
    gpu1 = node(inventory, "gpu-1")
    assert (gpu1["free"]["nvidia.com/gpu"], gpu1["gpus"][0]["free"]) == (0, 0)
    assert gpu1["free"]["cpu"] == 26.0
    with pytest.raises(NoRoom, match=r"not enough nvidia\.com/gpu"):
        hold(inventory, "jhub/jupyter-ben")
    with pytest.raises(NoRoom, match=r"only 0 of 2 nvidia\.com/gpu free"):
        hold(inventory, "jhub/jupyter-ben", node="gpu-1")

    # Created and still unbound: held. Bound: the pod itself counts, the hold is gone.
    pending = make_pod("jupyter-ann", "jhub", requests={"cpu": "2"}, limits={"nvidia.com/gpu": "1"})
    pending["spec"]["nodeSelector"] = {"kubernetes.io/hostname": "nowhere"}
    api.add_pod(pending)
    await asyncio.sleep(0.2)
    assert inventory.reservations() == {"jhub/jupyter-ann": "gpu-1"}
    bound = copy.deepcopy(api.store.get("pods", "jhub/jupyter-ann"))
    bound["spec"]["nodeName"] = "gpu-1"
    bound["status"] = {"phase": "Running"}
    api.store.put("pods", bound)
    await eventually(lambda: inventory.reservations() == {})
    assert node(inventory, "gpu-1")["requested"]["nvidia.com/gpu"] == 2  # counted once


async def test_released_and_expired_holds_give_the_room_back(api, kubeconfig, log_lines):
    log, handler = log_lines
    inv = KubernetesInventory(kubeconfig=kubeconfig, probe_interval_seconds=0.1, log=log)
    await inv.start()
    try:
        assert await inv.wait_synced(10)
        hold(inv, "jhub/jupyter-ann")
        inv.release("jhub/jupyter-ann")
        assert node(inv, "gpu-1")["gpus"][0]["free"] == 1
        hold(inv, "jhub/jupyter-ann", hold_seconds=0.2)
        assert node(inv, "gpu-1")["gpus"][0]["free"] == 0
        await eventually(lambda: node(inv, "gpu-1")["gpus"][0]["free"] == 1, timeout=3)
        assert any("jhub/jupyter-ann expired" in line for line in handler.lines)
    finally:
        await inv.stop()


async def test_a_hold_outlives_the_old_pod_of_the_same_name(api, inventory):
    api.add_pod(make_pod("jupyter-ann", "jhub", node="cpu-1", requests={"cpu": "1"}))
    await eventually(lambda: node(inventory, "cpu-1")["free"]["cpu"] == 5.0)
    hold(inventory, "jhub/jupyter-ann", node="gpu-1")
    # The old pod changes, then goes away: the hold for the new one stays.
    old = copy.deepcopy(api.store.get("pods", "jhub/jupyter-ann"))
    old["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    api.store.put("pods", old)
    api.delete_pod("jhub", "jupyter-ann")
    await eventually(lambda: node(inventory, "cpu-1")["free"]["cpu"] == 6.0)
    assert inventory.reservations() == {"jhub/jupyter-ann": "gpu-1"}
    api.add_pod(
        make_pod("jupyter-ann", "jhub", node="gpu-1", limits={"nvidia.com/gpu": "1", "cpu": "2"})
    )
    await eventually(lambda: inventory.reservations() == {})
    assert node(inventory, "gpu-1")["gpus"][0]["free"] == 0
