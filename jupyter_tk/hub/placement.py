"""Which nodes can take a server of a given size right now, and why the others cannot.

Pure functions over the `/hub/api/tk/resources` snapshot. The spawn form uses them to disable
choices, the validator to refuse a submission that no longer fits. The front end mirrors this
file in ``hub_plugin/src/placement.ts``; the shared cases in ``tests/vectors/form_rules.json``
(run by pytest and by the front end's tests) check that both say the same.

A node can take a request when it is Ready, not cordoned, every NoSchedule/NoExecute taint is
tolerated, and its free CPU, memory and GPUs of the requested kind cover what the pod will
*request* (its limits times the spawner's guarantee ratio; GPUs are always requested in full).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jupyter_tk.hub.quantities import format_bytes, format_cores, format_gpu_kind

__all__ = [
    "GpuKind",
    "ResourceRequest",
    "fit_checker",
    "gpu_absence",
    "gpu_kinds",
    "largest_request",
    "node_unfit_reason",
    "nodes_that_fit",
    "place_name",
    "scheduling_amounts",
    "size_limits",
    "taint_is_tolerated",
    "why_nothing_fits",
]

_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


@dataclass(frozen=True)
class ResourceRequest:
    """What a server asks for: ``cpu`` cores and ``memory`` bytes as limits, plus GPUs."""

    cpu: float
    memory: int
    gpu_resource: str | None = None
    gpu_count: int = 0

    @property
    def wants_gpu(self) -> bool:
        return bool(self.gpu_resource) and self.gpu_count > 0


def scheduling_amounts(request: ResourceRequest, ratio: float) -> tuple[float, int]:
    """CPU cores and memory bytes the pod *requests* (reserves) for limits scaled by ``ratio``.

    CPU is rounded up to whole millicores and memory up to whole bytes, as Kubernetes does, so
    the fit check never promises a node more room than the scheduler will find.
    """
    cpu = math.ceil(round(request.cpu * ratio * 1000, 6)) / 1000
    memory = math.ceil(round(request.memory * ratio, 3))
    return cpu, memory


def taint_is_tolerated(taint: Mapping, tolerations: Iterable[Mapping]) -> bool:
    """Kubernetes' toleration matching for one taint (key, operator Exists/Equal, value, effect)."""
    for toleration in tolerations:
        effect = toleration.get("effect") or ""
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key") or ""
        operator = toleration.get("operator") or "Equal"
        if operator == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and (toleration.get("value") or "") == (
            taint.get("value") or ""
        ):
            return True
    return False


def _taint_text(taint: Mapping) -> str:
    value = taint.get("value")
    key = f"{taint.get('key')}={value}" if value else str(taint.get("key"))
    return f"{key}:{taint.get('effect')}"


def _gpu_entry(node: Mapping, resource: str) -> Mapping | None:
    return next((g for g in node.get("gpus") or () if g.get("resource") == resource), None)


def node_unfit_reason(
    node: Mapping,
    request: ResourceRequest,
    *,
    ratio: float = 1.0,
    tolerations: Sequence[Mapping] = (),
) -> str | None:
    """None when ``node`` can take ``request`` now, else a short reason ("only 2 CPU free")."""
    return fit_checker(request, ratio=ratio, tolerations=tolerations)(node)


def fit_checker(
    request: ResourceRequest, *, ratio: float = 1.0, tolerations: Sequence[Mapping] = ()
) -> Callable[[Mapping], str | None]:
    """``node_unfit_reason`` for one request, prepared once for checking many nodes."""
    cpu, memory = scheduling_amounts(request, ratio)
    resource = request.gpu_resource or ""
    wants_gpu = request.wants_gpu

    def reason(node: Mapping) -> str | None:
        if not node.get("ready"):
            return "not ready"
        if not node.get("schedulable", True):
            return "cordoned"
        for taint in node.get("taints") or ():
            if taint.get("effect") in _BLOCKING_EFFECTS and not taint_is_tolerated(
                taint, tolerations
            ):
                return f"tainted {_taint_text(taint)}"
        free = node.get("free") or {}
        free_cpu = float(free.get("cpu", 0))
        if cpu > free_cpu + 1e-9:
            return f"only {format_cores(max(free_cpu, 0))} CPU free"
        free_memory = int(free.get("memory", 0))
        if memory > free_memory:
            return f"only {format_bytes(max(free_memory, 0))} memory free"
        if wants_gpu:
            gpu = _gpu_entry(node, resource)
            if gpu is None:
                return f"no {resource}"
            if gpu.get("free", 0) < request.gpu_count:
                return f"only {gpu.get('free', 0)} of {gpu.get('count', 0)} {resource} free"
        return None

    return reason


def nodes_that_fit(
    nodes: Iterable[Mapping],
    request: ResourceRequest,
    *,
    ratio: float = 1.0,
    tolerations: Sequence[Mapping] = (),
) -> list[Mapping]:
    """The nodes of ``nodes`` that can take ``request`` now."""
    return [
        node
        for node in nodes
        if node_unfit_reason(node, request, ratio=ratio, tolerations=tolerations) is None
    ]


def why_nothing_fits(
    nodes: Sequence[Mapping],
    request: ResourceRequest,
    *,
    ratio: float = 1.0,
    tolerations: Sequence[Mapping] = (),
) -> str:
    """A scheduler-like summary of why no node fits: "0/3 nodes fit: 2 cordoned, 1 ..."."""
    if not nodes:
        return "no node you may use is known right now"
    reasons: Counter[str] = Counter()
    for node in nodes:
        reason = node_unfit_reason(node, request, ratio=ratio, tolerations=tolerations)
        if reason is not None:
            # "only 2 CPU free" and "only 1 CPU free" are the same kind of reason.
            reasons[_reason_kind(reason)] += 1
    parts = ", ".join(f"{count} {kind}" for kind, count in reasons.most_common())
    return f"0/{len(nodes)} nodes you may use can take it: {parts}"


def _reason_kind(reason: str) -> str:
    if reason.startswith("only ") and reason.endswith(" free"):
        # "only 2 CPU free", "only 1 GiB memory free", "only 0 of 4 nvidia.com/gpu free"
        return f"not enough {reason.split()[-2]}"
    if reason.startswith("tainted "):
        return "with a taint not tolerated"
    if reason.startswith("no "):
        return f"without {reason[3:]}"
    return reason


def largest_request(nodes: Iterable[Mapping], *, ratio: float = 1.0) -> dict | None:
    """``{"cpu": cores, "memory": bytes, "gpus": count}``: the most CPU and memory (as limits)
    and GPUs of one kind that any one of ``nodes`` could ever take, were it empty: its
    allocatable amounts (CPU and memory divided by ``ratio``, since a pod requests ``ratio`` of
    its limits). None when there are no nodes.

    CPU and memory may come from different nodes: each is the largest there is, not a shape.
    """
    cpu, memory, gpus, any_node = 0.0, 0, 0, False
    for node in nodes:
        any_node = True
        allocatable = node.get("allocatable") or {}
        cpu = max(cpu, float(allocatable.get("cpu", 0)))
        memory = max(memory, int(allocatable.get("memory", 0)))
        gpus = max([gpus, *(int(g.get("count", 0)) for g in node.get("gpus") or ())])
    if not any_node:
        return None
    return {
        "cpu": math.floor(cpu / ratio * 1000) / 1000,
        "memory": int(memory / ratio),
        "gpus": gpus,
    }


def size_limits(caps: Any, nodes: Iterable[Mapping], *, ratio: float = 1.0) -> dict:
    """``{"cpu", "memory", "gpus"}``: the most one custom server may ask for, the policy's caps
    (``caps.cpu``, ``caps.memory``, ``caps.gpus``) or less where no node is that large.

    The one number the form's help text, the Custom card and the refusal all show.
    """
    largest = largest_request(nodes, ratio=ratio)
    limits = {"cpu": caps.cpu, "memory": caps.memory, "gpus": caps.gpus}
    if largest is None:
        return limits
    return {name: min(cap, largest[name]) for name, cap in limits.items()}


def place_name(source: str) -> str:
    """How the form names where servers run: the hub's machine, or the nodes of a cluster."""
    return "this machine" if source == "local" else "any node you may use"


def gpu_absence(nodes: Iterable[Mapping], resource: str | None, *, source: str) -> str | None:
    """Why ``resource`` can never be had on ``nodes`` (not merely now): None when one offers it.
    With ``resource`` None: why there are no GPUs at all, None when there are some.

    ``"this machine has no GPU"`` (local), ``"no node you may use offers GPUs"`` (a cluster
    without any), ``"no node you may use offers nvidia.com/mig-1g.10gb"`` (other kinds only).
    Nothing is claimed while no node is known.
    """
    nodes = list(nodes)
    offered = {gpu.get("resource") for node in nodes for gpu in node.get("gpus") or ()}
    # No node known at all (an inventory that has not answered yet) proves nothing.
    if not nodes or resource in offered or (resource is None and offered):
        return None
    local = source == "local"
    if not offered:
        return "this machine has no GPU" if local else "no node you may use offers GPUs"
    return f"this machine has no {resource}" if local else f"no node you may use offers {resource}"


@dataclass(frozen=True)
class GpuKind:
    """One GPU resource offered somewhere in the cluster, described for the form."""

    resource: str
    description: str
    total_free: int
    max_free_on_one_node: int
    nodes: int

    @property
    def label(self) -> str:
        free = f"{self.total_free} free"
        if self.nodes > 1:
            free += f", up to {self.max_free_on_one_node} on one node"
        return f"{self.description} — {free} ({self.resource})"


def gpu_kinds(nodes: Iterable[Mapping], *, usable: Callable[[Mapping], bool] | None = None):
    """The GPU kinds on ``nodes`` (those where ``usable(node)``), sorted by resource name.

    Products differing between nodes for one resource are listed together ("T4 / A10").
    """
    descriptions: dict[str, list[str]] = {}
    totals: Counter[str] = Counter()
    best: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    for node in nodes:
        if usable is not None and not usable(node):
            continue
        for gpu in node.get("gpus") or ():
            resource = gpu["resource"]
            text = format_gpu_kind(gpu)
            known = descriptions.setdefault(resource, [])
            if text not in known:
                known.append(text)
            free = int(gpu.get("free", 0))
            totals[resource] += free
            best[resource] = max(best[resource], free)
            counts[resource] += 1
    return [
        GpuKind(
            resource=resource,
            description=" / ".join(descriptions[resource]),
            total_free=totals[resource],
            max_free_on_one_node=best[resource],
            nodes=counts[resource],
        )
        for resource in sorted(descriptions)
    ]
