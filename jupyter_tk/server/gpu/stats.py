"""The GPUs this server may show, read from NVML for ``GET jupyter-tk/api/gpus``.

Only the sampler thread uses a :class:`GpuStatsReader` (NVML calls block for up to milliseconds
each and must never run on the IOLoop). NVML itself is read through :mod:`jupyter_tk.nvml`; this
module adds what the API needs: the devices ``CUDA_VISIBLE_DEVICES`` leaves to this server, a lost
GPU kept as a row and re-checked only every ``lost_retry_seconds``, and the device dicts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from jupyter_tk.nvml import (
    NO_GPU,
    DeviceFields,
    DeviceLost,
    DriverVariants,
    Nvml,
    NvmlUnavailable,
    describe_visibility,
    select_visible,
)

__all__ = ["GpuStatsReader", "NvmlUnavailable"]


class GpuStatsReader:
    """Owns one NVML initialisation and the handles of the devices this server may show."""

    def __init__(
        self,
        visible_devices: str | None = None,
        lost_retry_seconds: float = 60.0,
        log: logging.Logger | None = None,
    ):
        self.visible_devices = visible_devices
        self.lost_retry_seconds = lost_retry_seconds
        self.log = log or logging.getLogger(__name__)
        self.nvml = Nvml(self.log)
        self.rows: list[_Row] = []

    @property
    def is_open(self) -> bool:
        return self.nvml.is_open

    @property
    def driver_version(self) -> str | None:
        return self.nvml.driver_version

    @property
    def cuda_driver_version(self) -> str | None:
        return self.nvml.cuda_driver_version

    # -- opening and closing --------------------------------------------------------------

    def open(self) -> None:
        """Initialise NVML and enumerate devices; raises :class:`NvmlUnavailable` with a reason."""
        self.nvml.open()
        try:
            gpus = self.nvml.gpus()
        except NvmlUnavailable:
            self.close()
            raise
        variants = DriverVariants()
        rows = []
        for gpu in select_visible(gpus, self.visible_devices):
            if gpu.mig is None:
                rows.append(_Row(gpu.index, gpu.uuid, gpu.name, gpu.handle, variants, self.log))
                rows[-1].error = gpu.error
                continue
            parent = _Row(gpu.index, gpu.uuid, gpu.name, gpu.handle, variants, self.log)
            for mig in gpu.visible_mig:
                row = _Row(gpu.index, mig.uuid, mig.name, mig.handle, variants, self.log)
                row.parent = parent
                # The GPU's device file tells its MIG instances apart only when one is shown.
                row.shares_device_file = len(gpu.visible_mig) > 1
                rows.append(row)
        self.rows = rows
        if not rows:
            count = len(gpus)
            self.close()
            if count == 0:
                raise NvmlUnavailable(NO_GPU)
            raise NvmlUnavailable(
                f"None of the {count} GPU(s) of this machine is assigned to this server "
                f"({describe_visibility(self.visible_devices)})"
            )

    def close(self) -> None:
        self.rows = []
        self.nvml.close()

    # -- sampling ---------------------------------------------------------------------------

    def read(self, attribute: Callable[[list[dict], list[Callable]], None] | None = None) -> list:
        """One device dict per visible device (docs/gpu-attribution.md), with its processes.

        ``attribute(devices, device_files)`` fills each process's ``kernel_id`` and each device's
        ``attribution`` and ``kernels``; ``device_files[i]()`` is the path of device ``i``'s
        device file, or None when it cannot tell this device apart.
        """
        devices = [self._read_row(row) for row in self.rows]
        if attribute is not None:
            attribute(devices, [row.device_file for row in self.rows])
        return devices

    def _read_row(self, row: _Row) -> dict:
        device = row.empty_device()
        if row.handle is None or time.monotonic() < row.lost_until:
            device["error"] = row.error
            return device
        fields = row.fields
        fields.begin()
        try:
            utilization = fields.utilization()
            if utilization is not None:
                device["utilization_gpu"], device["utilization_memory"] = utilization
            memory = fields.memory()
            if memory is not None:
                device["memory_used"], device["memory_total"] = memory
            device["temperature"] = fields.temperature()
            device["power_usage"] = fields.power_usage()
            device["power_limit"] = fields.power_limit()
            device["processes"] = [
                {"pid": info.pid, "used_memory": info.used_memory, "kernel_id": None}
                for info in fields.processes()
            ]
        except DeviceLost as lost:
            self.log.warning("GPU %s (%s): %s", row.index, row.uuid, lost.message)
            row.error = lost.message
            row.lost_until = time.monotonic() + self.lost_retry_seconds
            device = row.empty_device()
            device["error"] = lost.message
            return device
        row.error = None
        if fields.failed is not None:
            device["error"] = f"NVML could not read this GPU ({fields.failed})"
        return device


class _Row:
    """One reported device (a GPU, or a MIG instance) with its kept handle and learned limits."""

    def __init__(self, index, uuid, name, handle, variants, log):
        self.index = index
        self.uuid = uuid
        self.name = name
        self.handle = handle
        self.parent: _Row | None = None
        self.shares_device_file = False
        self.error: str | None = None
        self.lost_until = 0.0
        self.fields = DeviceFields(handle, f"GPU {index} ({uuid})", variants, log)
        self._device_file: str | None = None

    def device_file(self) -> str | None:
        """The bare name of the device file (``nvidia<minor>``) that only this row's GPU has."""
        if self.parent is not None:
            return None if self.shares_device_file else self.parent.device_file()
        if self.handle is None:
            return None
        if self._device_file is None:
            try:
                minor = self.fields.minor_number()
            except DeviceLost:
                return None
            if minor is not None:
                self._device_file = f"nvidia{minor}"
        return self._device_file

    def empty_device(self) -> dict:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "mig": self.parent is not None,
            "parent_uuid": None if self.parent is None else self.parent.uuid,
            "utilization_gpu": None,
            "utilization_memory": None,
            "memory_used": None,
            "memory_total": None,
            "temperature": None,
            "power_usage": None,
            "power_limit": None,
            "processes": [],
            "attribution": "pid",
            "kernels": [],
            "error": None,
        }
