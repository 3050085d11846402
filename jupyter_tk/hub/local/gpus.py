"""This machine's GPUs as NVML reports them, read for the local inventory.

NVML is initialised once per process and its device handles are kept. Every call is blocking
(and can take milliseconds on a busy driver), so :class:`NvmlReader` is meant to run on one
dedicated worker thread, never on the event loop. Every field degrades on its own: an unsupported
query gives ``None``, a lost GPU keeps its row with ``error`` set, and a machine without the
library or driver simply has no GPUs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pynvml

__all__ = ["GpuDevice", "GpuReading", "NvmlReader"]

# A MIG device's NVML name ends in its profile, e.g. "NVIDIA A100-SXM4-40GB MIG 1g.5gb".
_MIG_PROFILE_IN_NAME = re.compile(r"\bMIG\s+(\d+g\.\d+gb)\b", re.IGNORECASE)
_MIB = 1024 * 1024
_GIB = 1024 * _MIB


@dataclass(frozen=True)
class GpuDevice:
    """One GPU that can be handed to a server: a whole GPU, or one MIG instance of a GPU."""

    uuid: str
    index: int
    name: str
    mig_profile: str | None = None
    parent_uuid: str | None = None
    memory_total: int | None = None
    memory_used: int | None = None
    utilization_gpu: int | None = None
    error: str | None = None

    @property
    def resource(self) -> str:
        """The Kubernetes device-plugin resource name this device would have (mixed MIG)."""
        if self.mig_profile:
            return f"nvidia.com/mig-{self.mig_profile}"
        return "nvidia.com/gpu"


@dataclass(frozen=True)
class GpuReading:
    """One pass over NVML: the devices, or why there are none."""

    devices: tuple[GpuDevice, ...]
    reason: str | None = None
    driver_version: str | None = None


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _optional(query, *args):
    """Run one NVML query; ``None`` when this device or driver does not support it."""
    try:
        return query(*args)
    except pynvml.NVMLError_GpuIsLost:
        raise
    except pynvml.NVMLError:
        # NotSupported, FunctionNotFound (older driver or a minimal library), NoPermission...
        return None


class NvmlReader:
    """Reads the GPUs of this machine. Not thread-safe: call from one worker thread only."""

    def __init__(self) -> None:
        self._initialised = False
        self._init_failure: str | None = None
        self._driver_version: str | None = None
        self._handles: list[object] = []

    def read(self) -> GpuReading:
        """Return the current devices; never raises for NVML problems."""
        if not self._ensure_initialised():
            return GpuReading(devices=(), reason=self._init_failure)
        devices: list[GpuDevice] = []
        for index, handle in enumerate(self._handles):
            devices.extend(self._read_gpu(index, handle))
        reason = None if devices else "NVML reports no GPU on this machine"
        return GpuReading(
            devices=tuple(devices), reason=reason, driver_version=self._driver_version
        )

    def close(self) -> None:
        """Shut NVML down (once); later reads report no GPUs."""
        if self._initialised:
            self._initialised = False
            self._handles = []
            self._init_failure = "NVML was shut down"
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError as e:
                # Shutting down a library that is going away anyway: nothing to recover.
                self._init_failure = f"NVML was shut down ({e})"

    def _ensure_initialised(self) -> bool:
        if self._initialised:
            return True
        if self._init_failure is not None:
            # Initialised once per process: a machine without a driver stays without GPUs.
            return False
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as e:
            self._init_failure = f"NVML is not available on this machine: {e}"
            return False
        self._initialised = True
        self._driver_version = _optional(pynvml.nvmlSystemGetDriverVersion)
        if self._driver_version is not None:
            self._driver_version = _text(self._driver_version)
        try:
            count = pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as e:
            self.close()
            self._init_failure = f"NVML could not count the GPUs: {e}"
            return False
        for index in range(count):
            try:
                self._handles.append(pynvml.nvmlDeviceGetHandleByIndex(index))
            except pynvml.NVMLError as e:
                # Keep the slot so indices stay NVML's; the read reports this GPU as failed.
                self._handles.append(e)
        return True

    def _read_gpu(self, index: int, handle: object) -> list[GpuDevice]:
        if isinstance(handle, pynvml.NVMLError):
            return [GpuDevice(uuid=f"unknown-{index}", index=index, name="", error=str(handle))]
        try:
            uuid = _text(pynvml.nvmlDeviceGetUUID(handle))
        except pynvml.NVMLError as e:
            return [GpuDevice(uuid=f"unknown-{index}", index=index, name="", error=str(e))]
        try:
            name = _text(_optional(pynvml.nvmlDeviceGetName, handle) or "")
            mig_mode = _optional(pynvml.nvmlDeviceGetMigMode, handle)
            if mig_mode is not None and mig_mode[0] == pynvml.NVML_DEVICE_MIG_ENABLE:
                return self._read_mig_instances(index, handle, uuid, name)
            memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
            utilization = _optional(pynvml.nvmlDeviceGetUtilizationRates, handle)
        except pynvml.NVMLError as e:
            return [GpuDevice(uuid=uuid, index=index, name="", error=str(e))]
        return [
            GpuDevice(
                uuid=uuid,
                index=index,
                name=name,
                memory_total=None if memory is None else int(memory.total),
                memory_used=None if memory is None else int(memory.used),
                utilization_gpu=None if utilization is None else int(utilization.gpu),
            )
        ]

    def _read_mig_instances(
        self, index: int, handle: object, parent_uuid: str, parent_name: str
    ) -> list[GpuDevice]:
        # MIG instances come and go when an admin reconfigures the GPU: enumerate every pass.
        instances: list[GpuDevice] = []
        slots = _optional(pynvml.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
        parent_memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
        for slot in range(slots):
            try:
                mig = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
                uuid = _text(pynvml.nvmlDeviceGetUUID(mig))
            except pynvml.NVMLError_GpuIsLost:
                raise
            except pynvml.NVMLError:
                continue  # an empty slot (NotFound)
            name = _text(_optional(pynvml.nvmlDeviceGetName, mig) or "")
            memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, mig)
            total = None if memory is None else int(memory.total)
            instances.append(
                GpuDevice(
                    uuid=uuid,
                    index=index,
                    name=parent_name,
                    mig_profile=_mig_profile(name, mig, total, parent_memory),
                    parent_uuid=parent_uuid,
                    memory_total=total,
                    memory_used=None if memory is None else int(memory.used),
                    # NVML has no utilization for MIG instances.
                    utilization_gpu=None,
                )
            )
        return instances


def _mig_profile(name: str, handle: object, memory_total: int | None, parent_memory) -> str:
    """The MIG profile (``1g.10gb``) that the NVIDIA device plugin would name this instance by."""
    match = _MIG_PROFILE_IN_NAME.search(name)
    if match:
        return match.group(1).lower()
    attributes = _optional(pynvml.nvmlDeviceGetAttributes, handle)
    if attributes is not None and attributes.gpuInstanceSliceCount:
        gib = round(attributes.memorySizeMB / 1024)
        return f"{attributes.gpuInstanceSliceCount}g.{gib}gb"
    # Last resort (minimal drivers): slices estimated from the memory share of a 7-slice GPU.
    if memory_total and parent_memory is not None and parent_memory.total:
        slices = max(1, round(7 * memory_total / int(parent_memory.total)))
        return f"{slices}g.{round(memory_total / _GIB)}gb"
    return "unknown"
