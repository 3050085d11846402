"""This machine's GPUs as NVML reports them, read for the local inventory.

NVML is read through :mod:`jupyter_tk.nvml` (the same enumeration and field reader as the
server's GPU statistics), initialised once per process, with its device handles kept. Every call
is blocking (and can take milliseconds on a busy driver), so :class:`LocalGpuReader` is meant to
run on one dedicated worker thread, never on the event loop. Every field degrades on its own: an
unsupported query gives ``None``, a lost GPU keeps its row with ``error`` set, and a machine
without the library or driver simply has no GPUs.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import pynvml

from jupyter_tk.nvml import (
    NO_GPU,
    DeviceFields,
    DeviceLost,
    DriverVariants,
    MigInstance,
    Nvml,
    NvmlUnavailable,
    PhysicalGpu,
)

__all__ = ["GpuDevice", "GpuReading", "LocalGpuReader"]
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


class LocalGpuReader:
    """Reads the GPUs of this machine. Not thread-safe: call from one worker thread only."""

    def __init__(self, log: logging.Logger | None = None) -> None:
        self.log = log or logging.getLogger(__name__)
        self._nvml = Nvml(self.log)
        self._init_failure: str | None = None
        self._variants = DriverVariants()
        # Learned capabilities per device, kept across readings (MIG instances by their UUID).
        self._fields: dict[str, DeviceFields] = {}

    def read(self) -> GpuReading:
        """Return the current devices; never raises for NVML problems."""
        if not self._ensure_initialised():
            return GpuReading(devices=(), reason=self._init_failure)
        try:
            # MIG instances come and go when an admin reconfigures a GPU: enumerate every pass.
            gpus = self._nvml.gpus()
        except NvmlUnavailable as e:
            return GpuReading(devices=(), reason=e.reason, driver_version=self._nvml.driver_version)
        devices: list[GpuDevice] = []
        for gpu in gpus:
            devices.extend(self._read_gpu(gpu))
        return GpuReading(
            devices=tuple(devices),
            reason=None if devices else NO_GPU,
            driver_version=self._nvml.driver_version,
        )

    def close(self) -> None:
        """Shut NVML down (once); later reads report no GPUs."""
        if self._nvml.is_open:
            self._nvml.close()
            self._fields = {}
            self._init_failure = "NVML was shut down"

    def _ensure_initialised(self) -> bool:
        if self._nvml.is_open:
            return True
        if self._init_failure is not None:
            # Initialised once per process: a machine without a driver stays without GPUs.
            return False
        try:
            self._nvml.open()
        except NvmlUnavailable as e:
            self._init_failure = e.reason
            return False
        return True

    def _fields_of(self, uuid: str, handle: object) -> DeviceFields:
        fields = self._fields.get(uuid)
        if fields is None:
            fields = self._fields[uuid] = DeviceFields(handle, uuid, self._variants, self.log)
        fields.handle = handle  # the same device; pynvml wraps its handle in a new object
        fields.begin()
        return fields

    def _read_gpu(self, gpu: PhysicalGpu) -> list[GpuDevice]:
        if gpu.error is not None:
            return [GpuDevice(uuid=gpu.uuid, index=gpu.index, name="", error=gpu.error)]
        fields = self._fields_of(gpu.uuid, gpu.handle)
        try:
            memory = fields.memory()
            if gpu.mig is not None:
                return [self._read_mig(gpu, mig, memory) for mig in gpu.mig]
            utilization = fields.utilization()
        except DeviceLost as lost:
            return [GpuDevice(uuid=gpu.uuid, index=gpu.index, name="", error=lost.message)]
        return [
            GpuDevice(
                uuid=gpu.uuid,
                index=gpu.index,
                name=gpu.name,
                memory_total=None if memory is None else memory[1],
                memory_used=None if memory is None else memory[0],
                utilization_gpu=None if utilization is None else utilization[0],
            )
        ]

    def _read_mig(
        self, gpu: PhysicalGpu, mig: MigInstance, parent_memory: tuple[int, int] | None
    ) -> GpuDevice:
        memory = self._fields_of(mig.uuid, mig.handle).memory()
        total = None if memory is None else memory[1]
        return GpuDevice(
            uuid=mig.uuid,
            index=gpu.index,
            name=gpu.name,
            mig_profile=_mig_profile(mig.name, mig.handle, total, parent_memory),
            parent_uuid=gpu.uuid,
            memory_total=total,
            memory_used=None if memory is None else memory[0],
            # NVML has no utilization for MIG instances.
            utilization_gpu=None,
        )


def _mig_profile(
    name: str, handle: object, memory_total: int | None, parent_memory: tuple[int, int] | None
) -> str:
    """The MIG profile (``1g.10gb``) that the NVIDIA device plugin would name this instance by."""
    match = _MIG_PROFILE_IN_NAME.search(name)
    if match:
        return match.group(1).lower()
    try:
        attributes = pynvml.nvmlDeviceGetAttributes(handle)
    except pynvml.NVMLError:
        attributes = None  # NotSupported, FunctionNotFound (minimal drivers)
    if attributes is not None and attributes.gpuInstanceSliceCount:
        gib = round(attributes.memorySizeMB / 1024)
        return f"{attributes.gpuInstanceSliceCount}g.{gib}gb"
    # Last resort (minimal drivers): slices estimated from the memory share of a 7-slice GPU.
    if memory_total and parent_memory is not None and parent_memory[1]:
        slices = max(1, round(7 * memory_total / parent_memory[1]))
        return f"{slices}g.{round(memory_total / _GIB)}gb"
    return "unknown"
