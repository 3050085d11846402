"""Who holds what on this machine: the reservations of the running local servers.

Plain bookkeeping, no I/O: :class:`AllocationLedger` decides whether a request fits next to the
reservations already made, and which GPUs (by UUID) and, when CPU is exclusive, which cores it
gets. The
:class:`~jupyter_tk.hub.local.inventory.LocalInventory` owns one ledger and calls it from the
event loop thread only, which makes every reservation atomic.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from jupyter_tk.hub.local.gpus import GpuDevice

__all__ = ["AllocationError", "AllocationLedger", "LocalAllocation"]


class AllocationError(ValueError):
    """The machine cannot give a server what it asked for right now (message says why)."""


@dataclass(frozen=True)
class LocalAllocation:
    """What one running server holds: its CPU (a share, or pinned `cores` when CPU is exclusive),
    its memory and its GPUs. `cores` is empty for a server that runs on every core."""

    key: str
    cpu: float
    memory: int
    cores: tuple[int, ...]
    gpu_resource: str | None = None
    gpu_uuids: tuple[str, ...] = ()

    def to_state(self) -> dict:
        """JSON-able form kept in the spawner's state across hub restarts."""
        return {
            "key": self.key,
            "cpu": self.cpu,
            "memory": self.memory,
            "cores": list(self.cores),
            "gpu_resource": self.gpu_resource,
            "gpu_uuids": list(self.gpu_uuids),
        }

    @classmethod
    def from_state(cls, state: dict) -> LocalAllocation:
        return cls(
            key=str(state["key"]),
            cpu=float(state["cpu"]),
            memory=int(state["memory"]),
            cores=tuple(int(c) for c in state["cores"]),
            gpu_resource=state.get("gpu_resource"),
            gpu_uuids=tuple(str(u) for u in state.get("gpu_uuids", ())),
        )


class AllocationLedger:
    """The reservations of the running servers, by server key (``user`` or ``user/name``)."""

    def __init__(self, cores: Iterable[int]) -> None:
        self.cores: tuple[int, ...] = tuple(sorted(cores))
        self._allocations: dict[str, LocalAllocation] = {}

    def get(self, key: str) -> LocalAllocation | None:
        return self._allocations.get(key)

    def store(self, allocation: LocalAllocation) -> None:
        self._allocations[allocation.key] = allocation

    def pop(self, key: str) -> LocalAllocation | None:
        return self._allocations.pop(key, None)

    def requested(self) -> dict[str, float | int]:
        """Sum of what is reserved, per resource name (cpu in cores, memory in bytes)."""
        requested: dict[str, float | int] = {"cpu": 0.0, "memory": 0}
        for allocation in self._allocations.values():
            requested["cpu"] += allocation.cpu
            requested["memory"] += allocation.memory
            if allocation.gpu_resource:
                resource = allocation.gpu_resource
                requested[resource] = requested.get(resource, 0) + len(allocation.gpu_uuids)
        return requested

    def holders(self) -> dict[str, list[str]]:
        """GPU UUID -> keys of the servers holding it."""
        holders: dict[str, list[str]] = {}
        for allocation in self._allocations.values():
            for uuid in allocation.gpu_uuids:
                holders.setdefault(uuid, []).append(allocation.key)
        return holders

    def reserve(
        self,
        key: str,
        request: tuple[float, int, str | None, int],
        *,
        allocatable: Mapping[str, float | int],
        gpus: Iterable[GpuDevice],
        replicas: int,
        node_name: str,
        exclusive_cpu: bool = False,
    ) -> LocalAllocation:
        """The allocation `request` (cores, memory bytes, GPU resource, count) would get now.

        With `exclusive_cpu` the CPU requests of all servers add up to at most the cores
        offered and each server is pinned to cores; otherwise CPU is time-shared: a request
        only has to fit the machine, and the server runs on every core.
        Raises AllocationError when it does not fit; stores nothing (see :meth:`store`).
        """
        cpu, memory, gpu_resource, gpu_count = request
        if not math.isfinite(cpu) or cpu <= 0:
            raise AllocationError(f"CPU must be a positive number of cores, not {cpu!r}")
        requested = self.requested()
        free_cpu = allocatable["cpu"] - requested["cpu"] if exclusive_cpu else allocatable["cpu"]
        if cpu > free_cpu + 1e-9:
            raise AllocationError(
                f"not enough free CPU on {node_name}: asked {cpu:g}, free {free_cpu:g} cores"
                if exclusive_cpu
                else f"{node_name} offers {free_cpu:g} cores to servers, asked {cpu:g}"
            )
        free_memory = allocatable["memory"] - requested["memory"]
        if memory > free_memory:
            raise AllocationError(
                f"not enough free memory on {node_name}: asked {_gib(memory)}, "
                f"free {_gib(free_memory)}"
            )
        gpu_uuids: tuple[str, ...] = ()
        if gpu_resource and gpu_count > 0:
            gpu_uuids = self._pick_gpus(gpus, gpu_resource, gpu_count, replicas, node_name)
        else:
            gpu_resource = None
        return LocalAllocation(
            key=key,
            cpu=float(cpu),
            memory=int(memory),
            cores=self._pick_cores(math.ceil(cpu), node_name) if exclusive_cpu else (),
            gpu_resource=gpu_resource,
            gpu_uuids=gpu_uuids,
        )

    def _pick_gpus(
        self, gpus: Iterable[GpuDevice], resource: str, count: int, replicas: int, node_name: str
    ) -> tuple[str, ...]:
        holders = self.holders()
        kind = [d for d in gpus if d.resource == resource and d.error is None]
        if not kind:
            raise AllocationError(f"this machine has no {resource}")
        # Each device may be handed out `replicas` times; least held, least used first.
        slots = []
        for device in kind:
            taken = len(holders.get(device.uuid, ()))
            slots.extend(
                (taken + n, device.memory_used or 0, device.index, device.uuid)
                for n in range(replicas - taken)
            )
        slots.sort()
        chosen: list[str] = []
        for _, _, _, uuid in slots:
            if uuid not in chosen:
                chosen.append(uuid)
            if len(chosen) == count:
                return tuple(chosen)
        raise AllocationError(
            f"not enough free {resource} on {node_name}: asked {count}, free {len(chosen)}"
        )

    def _pick_cores(self, count: int, node_name: str) -> tuple[int, ...]:
        # Cores may be shared (fractional CPU rounds up); spread servers over the least used.
        if count > len(self.cores):
            raise AllocationError(f"{node_name} has {len(self.cores)} cores, asked for {count}")
        pins = dict.fromkeys(self.cores, 0)
        for allocation in self._allocations.values():
            for core in allocation.cores:
                if core in pins:
                    pins[core] += 1
        return tuple(sorted(sorted(self.cores, key=lambda c: (pins[c], c))[:count]))


def _gib(amount: int) -> str:
    return f"{amount / 2**30:.1f} GiB"
