"""This machine as a one-node inventory, minus what the running servers of this hub hold.

CPUs, memory and GPUs (through NVML, read on one worker thread every few seconds) make up the
node; the local spawner reserves a server's share here (:meth:`LocalInventory.allocate`) before it
starts the process and releases it when the process is gone. GPUs and memory are reserved;
CPU is time-shared by default (`LocalInventory.cpu_mode`). Reservations are atomic because every
method runs on the event loop thread without awaiting in between. The snapshot is the same JSON as
the Kubernetes inventory's, with resource names as the NVIDIA device plugin uses them
(``nvidia.com/gpu``, ``nvidia.com/mig-<profile>``), plus additive fields for the picker: live
per-device use, whether memory limits are enforced, and why there are no GPUs when there are none.
"""

from __future__ import annotations

import asyncio
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import psutil
from traitlets import Enum, Float, Integer, TraitError, Unicode, default, validate

from jupyter_tk.hub.inventory import Inventory
from jupyter_tk.hub.local.cgroups import MemoryCgroups
from jupyter_tk.hub.local.gpus import GpuDevice, GpuReading, LocalGpuReader
from jupyter_tk.hub.local.ledger import AllocationError, AllocationLedger, LocalAllocation
from jupyter_tk.hub.quantities import parse_quantity

__all__ = ["AllocationError", "LocalAllocation", "LocalInventory"]


@dataclass(frozen=True)
class _MachineReading:
    gpus: GpuReading
    memory_total: int
    memory_available: int


class LocalInventory(Inventory):
    """The machine the hub runs on, as one node of the `/hub/api/tk/resources` contract."""

    source = "local"

    refresh_interval = Float(
        3.0,
        config=True,
        help="""Seconds between two readings of GPU use (NVML) and free memory. Example: 3""",
    )

    node_name = Unicode(
        config=True,
        help="""Name of this machine in the picker; defaults to the host name. Example: "ws-01" """,
    )

    @default("node_name")
    def _default_node_name(self) -> str:
        return socket.gethostname()

    gpu_replicas = Integer(
        1,
        min=1,
        config=True,
        help="""How many servers may share one GPU (or one MIG instance) at the same time.

        1 (the default) gives every server GPUs of its own. Above 1 each GPU is offered that many
        times and marked `shared`, like Kubernetes time-slicing with `replicas`. Example: 4
        """,
    )

    cpu_mode = Enum(
        ["shared", "exclusive"],
        "shared",
        config=True,
        help="""How servers get CPU: "shared" (the default) or "exclusive".

        "shared": CPU is time-shared like on any multi-user machine. A server's CPU (in cores)
        is its limit (cgroup v2 `cpu.max`) and its weight when cores are busy (`cpu.weight`,
        100 per core), so servers asking for more get proportionally more. A request only has
        to fit the machine, so any number of servers may run; "free CPU" on the form is the
        most one server may use. Without the cgroup v2 cpu controller limits and weights are
        not applied and the kernel shares cores between all processes.
        "exclusive": CPU requests of all running servers add up to at most the cores offered
        (a server that does not fit is refused) and each server is pinned to ceil(cpu) whole
        cores, the least used first (`sched_setaffinity`; servers asking for fractions of a
        core may share one). Example: "exclusive"
        """,
    )

    reserved_cpu = Float(
        0.0,
        min=0.0,
        config=True,
        help="""Cores kept back for the hub and the system, not offered to servers. Example: 0.5""",
    )

    reserved_memory = Unicode(
        "1Gi",
        config=True,
        help="""Memory kept back for the hub and the system, as a Kubernetes quantity.

        Offered memory is the machine's total minus this. Example: "2Gi"
        """,
    )

    @validate("reserved_memory")
    def _check_reserved_memory(self, proposal) -> str:
        # Refused when the config loads, not on the first page view.
        try:
            amount = parse_quantity(proposal.value)
        except ValueError as e:
            raise TraitError(f"LocalInventory.reserved_memory: {e}") from None
        if amount < 0:
            raise TraitError("LocalInventory.reserved_memory must not be negative")
        return proposal.value

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._ledger = AllocationLedger(os.sched_getaffinity(0))
        self._reading: _MachineReading | None = None
        self._reader = LocalGpuReader(self.log)
        # One thread: NVML is used from one thread only, and never from the event loop.
        self._executor: ThreadPoolExecutor | None = None
        self._cgroups = MemoryCgroups(parent=self, log=self.log)

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tk-local-inventory")
        await self.refresh()
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever())

    async def stop(self) -> None:
        await self._stop_task()
        if self._executor is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._reader.close)
            self._executor.shutdown(wait=False)
            self._executor = None

    async def refresh(self) -> None:
        """Read the machine now (off the event loop) and update the snapshot if anything moved."""
        if self._executor is None:
            raise RuntimeError("LocalInventory.refresh() called before start()")
        reading = await asyncio.get_running_loop().run_in_executor(self._executor, self._read)
        if reading != self._reading:
            self._reading = reading
            self._data_changed()
        self._source_live()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh()
            except Exception:
                # Reading this machine should not fail; if it does, keep serving the last one.
                self.log.exception("Could not read this machine's resources")

    def _read(self) -> _MachineReading:
        memory = psutil.virtual_memory()
        # The cgroup probe touches /sys; do it here, once, off the event loop.
        _ = self._cgroups.support
        return _MachineReading(
            gpus=self._reader.read(),
            memory_total=int(memory.total),
            memory_available=int(memory.available),
        )

    # -- machine facts ---------------------------------------------------------------------------

    @property
    def gpus(self) -> tuple[GpuDevice, ...]:
        """The GPUs (whole GPUs and MIG instances) seen at the last reading."""
        return () if self._reading is None else self._reading.gpus.devices

    @property
    def cgroups(self) -> MemoryCgroups:
        """The memory-limit groups of this machine, shared with the local spawner."""
        return self._cgroups

    @property
    def cpu_exclusive(self) -> bool:
        """True when servers reserve and are pinned to cores, False when CPU is time-shared."""
        return self.cpu_mode == "exclusive"

    @property
    def memory_enforced(self) -> bool:
        """True when servers' memory is limited by cgroups, False when it is advisory."""
        return self._cgroups.support.enforced

    def _allocatable(self) -> dict[str, float | int]:
        total = 0 if self._reading is None else self._reading.memory_total
        reserved = int(parse_quantity(self.reserved_memory))
        result: dict[str, float | int] = {
            "cpu": max(0.0, len(self._ledger.cores) - self.reserved_cpu),
            "memory": max(0, total - reserved),
        }
        for device in self.gpus:
            if device.error is None:
                result[device.resource] = result.get(device.resource, 0) + self.gpu_replicas
        return result

    # -- reservations (called by the local spawner) ----------------------------------------------

    def allocate(
        self,
        key: str,
        *,
        cpu: float,
        memory: int,
        gpu_resource: str | None = None,
        gpu_count: int = 0,
    ) -> LocalAllocation:
        """Reserve CPU, memory and specific GPUs for the server `key`, or raise AllocationError.

        `cpu` in cores (a share, or ceil(cpu) pinned cores when `cpu_mode` is "exclusive"),
        `memory` in bytes (0 = none reserved).
        A server asking again first gives back what it held. Nothing awaits in here: two
        requests can never both get the last GPU.
        """
        previous = self._ledger.pop(key)
        try:
            allocation = self._ledger.reserve(
                key,
                (cpu, memory, gpu_resource, gpu_count),
                allocatable=self._allocatable(),
                gpus=self.gpus,
                replicas=self.gpu_replicas,
                node_name=self.node_name,
                exclusive_cpu=self.cpu_exclusive,
            )
        except AllocationError:
            if previous is not None:
                self._ledger.store(previous)
            raise
        self._ledger.store(allocation)
        self._data_changed()
        return allocation

    def restore(self, state: dict) -> LocalAllocation:
        """Take back a running server's reservation after a hub restart (no checks: it runs)."""
        allocation = LocalAllocation.from_state(state)
        self._ledger.store(allocation)
        self._data_changed()
        return allocation

    def release(self, key: str) -> LocalAllocation | None:
        """Give back what the server `key` held; returns it (None when it held nothing)."""
        allocation = self._ledger.pop(key)
        if allocation is not None:
            self._data_changed()
        return allocation

    def allocation(self, key: str) -> LocalAllocation | None:
        return self._ledger.get(key)

    # -- snapshot --------------------------------------------------------------------------------

    def _collect_nodes(self) -> list[dict]:
        allocatable = self._allocatable()
        requested = self._ledger.requested()
        for resource in requested:
            allocatable.setdefault(resource, 0)
        free = {
            name: _round(amount - requested.get(name, 0)) for name, amount in allocatable.items()
        }
        if not self.cpu_exclusive:
            # Time-shared: every server may use all offered cores, whoever else runs. `requested`
            # still sums the servers' CPU, which says how busy the cores may get.
            free["cpu"] = _round(allocatable["cpu"])
        support = self._cgroups.support
        reading = self._reading
        node = {
            "name": self.node_name,
            "ready": reading is not None,
            "schedulable": True,
            "allocatable": {k: _round(v) for k, v in allocatable.items()},
            "requested": {k: _round(v) for k, v in requested.items()},
            "free": free,
            "gpus": self._gpu_kinds(),
            "taints": [],
            # Additive fields for the picker on one machine.
            "memory_available": None if reading is None else reading.memory_available,
            "memory_enforced": support.enforced,
            "memory_note": None
            if support.enforced
            else f"Memory is advisory on this machine: {support.reason}.",
            "cpu_mode": self.cpu_mode,
            "cpu_enforced": support.enforced and support.cpu_controller,
            "cpu_note": self._cpu_note(allocatable["cpu"], requested["cpu"]),
            "gpu_note": None if reading is None else reading.gpus.reason,
            "driver_version": None if reading is None else reading.gpus.driver_version,
        }
        return [node]

    def _cpu_note(self, offered: float, requested: float) -> str:
        """What CPU means on this machine, in the words the form shows."""
        cores = f"{_round(offered):g} core{'' if offered == 1 else 's'}"
        if self.cpu_exclusive:
            return (
                f"CPU is reserved on this machine: each server is pinned to whole cores, "
                f"{_round(max(offered - requested, 0.0)):g} of {cores} are not requested."
            )
        support = self._cgroups.support
        if support.enforced and support.cpu_controller:
            how = "each server may use up to its CPU and gets a share in proportion to it when "
            how += "cores are busy"
        else:
            how = (
                "CPU limits and shares are not applied here (they need the cgroup v2 cpu "
                "controller), "
                "so busy servers share the cores evenly"
            )
        return (
            f"CPU is time-shared on this machine: free CPU is the most one server may use "
            f"({cores}); running servers ask for {_round(requested):g} cores in all, and {how}."
        )

    def _gpu_kinds(self) -> list[dict]:
        holders = self._ledger.holders()
        kinds: dict[str, dict] = {}
        for device in self.gpus:
            kind = kinds.get(device.resource)
            if kind is None:
                kind = kinds[device.resource] = {
                    "resource": device.resource,
                    "product": device.name or None,
                    "memory_mib": None
                    if device.memory_total is None
                    else device.memory_total // (1024 * 1024),
                    "count": 0,
                    "free": 0,
                    "shared": self.gpu_replicas > 1,
                    "mig_profile": device.mig_profile,
                    "devices": [],
                }
            elif device.name and kind["product"] and device.name not in kind["product"]:
                kind["product"] = f"{kind['product']} + {device.name}"
            taken_by = holders.get(device.uuid, [])
            if device.error is None:
                kind["count"] += self.gpu_replicas
                kind["free"] += max(0, self.gpu_replicas - len(taken_by))
            kind["devices"].append(
                {
                    "uuid": device.uuid,
                    "index": device.index,
                    "parent_uuid": device.parent_uuid,
                    "utilization_gpu": device.utilization_gpu,
                    "memory_used": device.memory_used,
                    "memory_total": device.memory_total,
                    "taken_by": list(taken_by),
                    "error": device.error,
                }
            )
        return list(kinds.values())


def _round(value: float | int) -> float | int:
    return round(value, 3) if isinstance(value, float) else value
