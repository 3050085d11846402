"""Kubernetes resource arithmetic: pod requests, node allocation (quantities: ``quantities.py``).

Follows what `kubectl describe node` shows under "Allocated resources" (the scheduler's view):
only pods that are not Succeeded/Failed count; a pod requests
max(sum of its containers + restartable init "sidecar" containers, each regular init container
plus the sidecars started before it) plus its overhead. A container limit without a request
counts as the request (the API server defaults it that way).

Inside the cache, amounts are stored as integers in *storage units*: millicores for `cpu`,
whole units (bytes, counts) for everything else, rounded up like Kubernetes' `Value()` and
`MilliValue()`. Integers keep the per-node sums exact and small in memory.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from decimal import Decimal

from jupyter_tk.hub.quantities import parse_quantity

__all__ = [
    "TERMINAL_PHASES",
    "add_into",
    "from_storage",
    "pod_is_active",
    "pod_requests",
    "pod_storage_requests",
    "to_storage",
]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

# -- storage units -------------------------------------------------------------------------------


def to_storage(resource: str, amount: Decimal) -> int:
    """Convert a parsed quantity to the integer storage unit of `resource` (rounded up)."""
    if resource == "cpu":
        amount = amount * 1000
    return math.ceil(amount)


def from_storage(resource: str, amount: int) -> float | int:
    """Convert a storage-unit integer to the JSON unit: cores (float) for cpu, else int."""
    if resource == "cpu":
        return amount / 1000
    return amount


def add_into(total: dict[str, int], amounts: Iterable[tuple[str, int]], sign: int = 1) -> None:
    """Add (`sign=1`) or subtract (`sign=-1`) (resource, amount) pairs into `total`, in place."""
    for resource, amount in amounts:
        total[resource] = total.get(resource, 0) + sign * amount


# -- pods ----------------------------------------------------------------------------------------


def pod_is_active(pod: Mapping) -> bool:
    """True for a pod that holds node resources: bound to a node and not Succeeded/Failed."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    return bool(spec.get("nodeName")) and status.get("phase") not in TERMINAL_PHASES


def _container_requests(container: Mapping) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    merged = {}
    # A limit alone is the request too (API server defaulting); an explicit request wins.
    for source in (limits, requests):
        for name, value in source.items():
            merged[name] = parse_quantity(value)
    return merged


def _add(total: dict[str, Decimal], amounts: Mapping[str, Decimal]) -> None:
    for name, value in amounts.items():
        total[name] = total.get(name, Decimal(0)) + value


def _max_into(total: dict[str, Decimal], amounts: Mapping[str, Decimal]) -> None:
    for name, value in amounts.items():
        if value > total.get(name, Decimal(0)):
            total[name] = value


def pod_requests(pod: Mapping) -> dict[str, Decimal]:
    """Resource requests of one pod, as the scheduler and `kubectl describe node` count them.

    Raises ValueError if a quantity in the pod spec is malformed.
    """
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or ():
        _add(total, _container_requests(container))

    sidecars: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            # A sidecar keeps running next to the app containers and every later init container.
            _add(total, requests)
            _add(sidecars, requests)
            _max_into(init_peak, sidecars)
        else:
            during_this_init = dict(requests)
            _add(during_this_init, sidecars)
            _max_into(init_peak, during_this_init)
    _max_into(total, init_peak)

    # Pod-level resources (Kubernetes 1.32+), when set, replace the container sum for cpu/memory.
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    for name in ("cpu", "memory"):
        if name in pod_level:
            total[name] = parse_quantity(pod_level[name])

    _add(total, {name: parse_quantity(v) for name, v in (spec.get("overhead") or {}).items()})
    return total


def pod_storage_requests(pod: Mapping) -> dict[str, int]:
    """`pod_requests` in storage units, without zero entries (what the cache keeps per pod)."""
    stored = {}
    for name, amount in pod_requests(pod).items():
        value = to_storage(name, amount)
        if value:
            stored[name] = value
    return stored
