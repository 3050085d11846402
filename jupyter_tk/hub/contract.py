"""The JSON the hub side sends and accepts: ``GET /hub/api/tk/resources`` and ``user_options``.

These ``TypedDict``s are the contract (docs/contracts.md). The spawn form's TypeScript types
(``hub_plugin/src/contract.ts``) are generated from them, and ``tests/test_contracts.py`` checks
the JSON a real hub sends against them. ``Annotated`` strings are the fields' documentation
and become the TypeScript comments. After changing a shape, regenerate the TypeScript with
``python -m tests.support.contract`` and commit both.

No ``from __future__ import annotations`` here: TypedDict would then take every
``NotRequired`` key for a required one.
"""

from typing import Annotated, Literal, NotRequired, TypedDict

__all__ = [
    "Amounts",
    "GpuDevice",
    "GpuKind",
    "Node",
    "ResourcesSnapshot",
    "Taint",
    "UserOptions",
    "UserOptionsGpu",
]

#: Resource name -> amount: ``cpu`` in cores, ``memory`` in bytes, extended resources as counts.
Amounts = dict[str, float]


class Taint(TypedDict):
    """A Kubernetes node taint (the local inventory has none)."""

    key: str
    value: str | None
    effect: str


class GpuDevice(TypedDict):
    """One GPU or MIG instance of this machine with its live use (local inventory only)."""

    uuid: str
    index: int
    parent_uuid: Annotated[str | None, "The whole GPU a MIG instance is cut from; else null."]
    utilization_gpu: Annotated[int | None, "Percent; null where NVML does not say (MIG)."]
    memory_used: Annotated[int | None, "Bytes."]
    memory_total: Annotated[int | None, "Bytes."]
    taken_by: Annotated[
        list[str],
        "The users whose servers hold it. A name the caller may not read "
        "(read:users:name) is replaced by 'another user'.",
    ]
    error: Annotated[str | None, "Why the device cannot be used right now; else null."]


class GpuKind(TypedDict):
    """One kind of GPU on a node: an extended resource such as ``nvidia.com/gpu``."""

    resource: Annotated[str, "The resource name a server requests, e.g. nvidia.com/gpu."]
    product: Annotated[str | None, "Product name, e.g. NVIDIA-A100-SXM4-40GB; null if unknown."]
    memory_mib: Annotated[int | None, "Memory of one unit in MiB; null if unknown."]
    count: Annotated[int, "Units the node offers (allocatable)."]
    free: Annotated[int, "Units not requested by any server."]
    shared: Annotated[bool, "True where one physical GPU is offered as several units."]
    mig_profile: Annotated[str | None, "MIG profile of the unit, e.g. 1g.10gb; else null."]
    physical_count: NotRequired[
        Annotated[int | None, "Kubernetes: GPUs behind the resource (GFD count label)."]
    ]
    devices: NotRequired[Annotated[list[GpuDevice], "Local: each device with its live use."]]


class Node(TypedDict):
    """One node (on the local hub: this machine) and what it can still run."""

    name: str
    ready: bool
    schedulable: Annotated[bool, "Ready and not cordoned: new servers may go there."]
    allocatable: Amounts
    requested: Amounts
    free: Amounts
    gpus: list[GpuKind]
    taints: list[Taint]
    unschedulable: NotRequired[Annotated[bool, "Kubernetes: the node is cordoned."]]
    memory_available: NotRequired[
        Annotated[int | None, "Local: bytes the machine has available right now."]
    ]
    memory_enforced: NotRequired[
        Annotated[bool, "Local: false where memory limits are not enforced (no cgroup v2)."]
    ]
    memory_note: NotRequired[Annotated[str | None, "Local: why memory is advisory; else null."]]
    cpu_mode: NotRequired[
        Annotated[Literal["shared", "exclusive"], "Local: how CPU is handed out."]
    ]
    cpu_enforced: NotRequired[Annotated[bool, "Local: CPU limits are applied (cgroup v2)."]]
    cpu_note: NotRequired[Annotated[str | None, "Local: what CPU means here, in words."]]
    gpu_note: NotRequired[Annotated[str | None, "Local: why no GPU can be read; else null."]]
    driver_version: NotRequired[Annotated[str | None, "Local: the NVIDIA driver version."]]


class LiveGpu(TypedDict):
    """One GPU (or MIG instance) as dcgm-exporter reports it through Prometheus."""

    uuid: str
    index: Annotated[int | None, "The GPU's index on its node (the parent's for MIG)."]
    model: str | None
    mig_profile: Annotated[str | None, "A MIG instance's profile, e.g. 1g.10gb; else null."]
    utilization_gpu: Annotated[float | None, "Percent; null where not reported (MIG)."]
    memory_used: Annotated[int | None, "Bytes."]
    memory_total: Annotated[int | None, "Bytes."]
    pod: Annotated[str | None, "The pod holding the GPU; null when none does."]
    namespace: str | None
    idle_allocated: Annotated[bool, "A pod holds it and it is (nearly) unused."]
    text: Annotated[str, "What the form shows for this GPU."]


class LiveNodeGpus(TypedDict):
    """A node's GPUs with live figures, and the texts the form shows for them."""

    summary: Annotated[str, "For the node list, e.g. 'GPUs 37% busy · 1 idle though allocated'."]
    text: Annotated[str, "Every GPU of the node, one after the other."]
    idle_allocated: Annotated[int, "How many GPUs are held by pods and unused."]
    gpus: list[LiveGpu]


class GpuMetricsBlock(TypedDict):
    """Live GPU figures from Prometheus (docs/gpu-metrics.md); present when configured."""

    source: Literal["prometheus"]
    available: Annotated[bool, "False until Prometheus first answered."]
    stale: Annotated[bool, "The figures are older than GpuMetrics.stale_after_seconds."]
    as_of: Annotated[float | None, "Seconds since the epoch of the last answer."]
    message: Annotated[str | None, "Why the figures are unavailable or out of date; else null."]
    nodes: dict[str, LiveNodeGpus]


class ResourcesSnapshot(TypedDict):
    """``GET /hub/api/tk/resources``: what every node can run right now."""

    source: Literal["kubernetes", "local"]
    generated_at: Annotated[float, "Seconds since the epoch when this answer was made."]
    age_seconds: Annotated[float, "Seconds since the data was last known current."]
    stale: Annotated[bool, "True once the source has been unreachable for too long."]
    as_of: Annotated[float, "Seconds since the epoch when the data was last known current."]
    gpu_metrics: NotRequired[GpuMetricsBlock]
    nodes: list[Node]


class UserOptionsGpu(TypedDict):
    """The GPUs a server asks for."""

    resource: Annotated[str, "A GPU kind's resource, e.g. nvidia.com/gpu."]
    count: NotRequired[Annotated[int | str, "How many (default 1); the form sends a string."]]


class UserOptions(TypedDict, total=False):
    """``user_options`` of a spawn (form, deep link or REST body); every key is optional.

    What each value may be and how it is checked: docs/user-options.md.
    """

    profile: Annotated[str, "A preset's slug, or 'custom' for a free choice."]
    image: Annotated[str, "A catalog name, or a full image reference where allowed."]
    node: Annotated[str | None, "The node to run on; null or absent: any node."]
    cpu: Annotated[float | str, "Cores: 2, 0.5, '500m'."]
    memory: Annotated[int | str, "Bytes, or a quantity such as '8Gi'."]
    gpu: Annotated[UserOptionsGpu | None, "null: no GPU."]
