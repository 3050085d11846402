"""The JSON the single-user server extension sends and accepts under ``jupyter-tk/api``.

These ``TypedDict``s are the contract (docs/contracts.md). The JupyterLab extension's
TypeScript types (``labextension/src/contract.ts``) are generated from them, and
``tests/test_contracts.py`` checks the JSON a real jupyter_server sends against them.
``Annotated`` strings are the fields' documentation and become the TypeScript comments. After
changing a shape, regenerate the TypeScript with ``python -m tests.support.contract`` and
commit both.

No ``from __future__ import annotations`` here: TypedDict would then take every
``NotRequired`` key for a required one.
"""

from typing import Annotated, Literal, TypedDict

__all__ = [
    "CopyAllRequest",
    "CopyRequest",
    "ExampleItem",
    "ExampleResult",
    "ExampleSkipped",
    "ExampleStatus",
    "ExamplesActionResult",
    "ExamplesListing",
    "ExamplesSyncState",
    "GpuAttribution",
    "GpuDevice",
    "GpuDeviceHistory",
    "GpuHistory",
    "GpuKernelUse",
    "GpuProcess",
    "GpuSnapshot",
    "ResetRequest",
]


class GpuProcess(TypedDict):
    """A process using a GPU."""

    pid: int
    used_memory: Annotated[int | None, "Bytes; null when NVML cannot tell."]
    kernel_id: Annotated[str | None, "Set when the process is one of this server's kernels."]


#: How the processes of a device were matched to kernels (docs/gpu-attribution.md): ``pid``
#: NVML's process ids are this server's; ``device-file`` they are not (host ids, as older drivers
#: report them in containers), so the kernels holding the GPU's device file open are used; null
#: they are not and no device file tells this device apart (a MIG instance beside others).
GpuAttribution = Literal["pid", "device-file"] | None


class GpuKernelUse(TypedDict):
    """One of this server's kernels using a device."""

    kernel_id: str
    pids: Annotated[list[int], "Its processes here: the kernel and descendants using the GPU."]
    used_memory: Annotated[int | None, "Bytes; null when NVML's processes cannot be told apart."]


class GpuDevice(TypedDict):
    """One GPU, or one MIG instance of a MIG-enabled GPU (``mig`` true, ``parent_uuid`` set)."""

    index: int
    uuid: str
    name: str
    mig: bool
    parent_uuid: str | None
    utilization_gpu: Annotated[int | None, "Percent."]
    utilization_memory: Annotated[int | None, "Percent."]
    memory_used: Annotated[int | None, "Bytes."]
    memory_total: Annotated[int | None, "Bytes."]
    temperature: Annotated[int | None, "Degrees Celsius."]
    power_usage: Annotated[float | None, "Watts."]
    power_limit: Annotated[float | None, "Watts."]
    processes: list[GpuProcess]
    attribution: GpuAttribution
    kernels: Annotated[list[GpuKernelUse], "This server's kernels using this device."]
    error: Annotated[str | None, "Set when this device failed (e.g. lost); the figures are null."]


class GpuSnapshot(TypedDict):
    """``GET jupyter-tk/api/gpus``."""

    available: bool
    reason: Annotated[str | None, "Why no GPU is available, for people."]
    driver_version: str | None
    cuda_driver_version: str | None
    timestamp: Annotated[float, "Seconds since the epoch when the sample was taken."]
    interval: Annotated[float, "Seconds between samples."]
    devices: list[GpuDevice]


class GpuDeviceHistory(TypedDict):
    """Samples of one device, oldest first; the three lists have the same length."""

    timestamps: list[float]
    utilization_gpu: list[int | None]
    memory_used: list[int | None]


class GpuHistory(TypedDict):
    """``GET jupyter-tk/api/gpus/history``: the last ``seconds`` of samples per device UUID."""

    interval: Annotated[float, "Seconds between samples."]
    seconds: Annotated[float, "Seconds of history kept."]
    devices: dict[str, GpuDeviceHistory]


#: Status of one example: ``new`` not copied yet; ``unchanged`` the copy equals the source;
#: ``update-available`` the source changed and the copy was not edited; ``modified`` the user
#: edited the copy; ``conflict`` both changed; ``deleted`` the user deleted the copy.
ExampleStatus = Literal["new", "unchanged", "update-available", "modified", "conflict", "deleted"]


class ExampleItem(TypedDict):
    """One example file and the state of the user's copy."""

    id: Annotated[str, "category/relative/path, the only way the server accepts to name it."]
    category: str
    path: Annotated[str, "Path of the user's copy, relative to the server root."]
    status: ExampleStatus
    size: Annotated[int, "Bytes of the original."]
    error: Annotated[str | None, "Why it cannot be copied right now (e.g. over the size cap)."]


class ExampleSkipped(TypedDict):
    """A source file the server leaves out, and why."""

    id: str
    reason: str


class ExamplesSyncState(TypedDict):
    """The start-up (or last) background sync."""

    running: bool
    error: str | None
    finished_at: Annotated[float | None, "Seconds since the epoch."]
    copied: int
    total: Annotated[int, "Files the running sync is copying."]


class ExamplesListing(TypedDict):
    """``GET jupyter-tk/api/examples``."""

    image: str
    source: str
    destination: str
    categories: list[str]
    items: list[ExampleItem]
    source_exists: bool
    sync: ExamplesSyncState
    error: Annotated[str | None, "Why the examples cannot be listed or copied; else null."]
    skipped: list[ExampleSkipped]


class CopyAllRequest(TypedDict):
    """Body of ``POST jupyter-tk/api/examples/copy`` that copies every example."""

    all: Literal[True]


class ResetRequest(TypedDict):
    """Body of ``POST jupyter-tk/api/examples/reset`` (and of a copy of some examples)."""

    ids: list[str]


#: Body of ``POST jupyter-tk/api/examples/copy``.
CopyRequest = ResetRequest | CopyAllRequest


class ExampleResult(TypedDict):
    """What the server did with one example of a copy or reset request."""

    id: str
    status: Annotated[ExampleStatus, "Status after the request."]
    action: Annotated[
        Literal["copied", "updated", "skipped", "error"],
        "skipped: nothing to do, or not allowed (then message says why).",
    ]
    message: str | None
    backup: Annotated[str | None, "Where the user's version was kept (reset), from the root."]


class ExamplesActionResult(TypedDict):
    """Answer of ``POST jupyter-tk/api/examples/copy`` and ``.../reset``: one result per id."""

    results: list[ExampleResult]
