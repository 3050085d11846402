"""Reads GPU state from NVML: one initialisation, handles kept, every field degrading on its own.

Only the sampler thread uses an :class:`NvmlReader` (NVML calls block for up to milliseconds each
and must never run on the IOLoop). Rules, as in nvitop / gpustat:

- "not supported", a function the installed driver lacks (``FunctionNotFound``) and missing
  permissions give ``null`` for that field only; once a device says a field is unsupported it is
  not asked again (capabilities do not change while the driver runs);
- a lost GPU (``GPU_IS_LOST``, ``RESET_REQUIRED``) keeps its row with ``error`` set, is not queried
  again for ``lost_retry_seconds``, and never breaks the other rows;
- any other error on a field gives ``null`` and one log line (not one per sample).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable

import pynvml

from jupyter_tk.server.gpu.visibility import (
    MigInstance,
    PhysicalGpu,
    describe_visibility,
    select_visible,
)

# Errors that mean "this field has no value here", not "the device failed".
FIELD_ABSENT = frozenset(
    {
        pynvml.NVML_ERROR_NOT_SUPPORTED,
        pynvml.NVML_ERROR_FUNCTION_NOT_FOUND,
        pynvml.NVML_ERROR_NO_PERMISSION,
    }
)
# Errors after which a field is not asked again on that device.
FIELD_NEVER = frozenset({pynvml.NVML_ERROR_NOT_SUPPORTED, pynvml.NVML_ERROR_FUNCTION_NOT_FOUND})
# Errors that mean "this driver lacks this variant of a versioned call": use the older one.
VARIANT_MISSING = frozenset(
    {pynvml.NVML_ERROR_FUNCTION_NOT_FOUND, pynvml.NVML_ERROR_ARGUMENT_VERSION_MISMATCH}
)
DEVICE_LOST = {
    pynvml.NVML_ERROR_GPU_IS_LOST: (
        "GPU is lost: the driver can no longer reach it (the node may need a GPU reset or reboot)"
    ),
    pynvml.NVML_ERROR_RESET_REQUIRED: "GPU requires a reset before it can be used again",
}
INIT_FAILURES = {
    pynvml.NVML_ERROR_LIBRARY_NOT_FOUND: (
        "No NVIDIA driver library (libnvidia-ml.so.1) is available to this server, "
        "so it has no GPU access"
    ),
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "The NVIDIA driver is not loaded on this machine",
    pynvml.NVML_ERROR_NO_PERMISSION: "This server has no permission to use the NVIDIA driver",
}
UNKNOWN_NAME = "Unknown GPU"
# The enforced power limit only changes when an administrator sets it: re-read it this often
# rather than on every sample (one NVML call per GPU per sample saved).
POWER_LIMIT_REFRESH_SECONDS = 30.0


class NvmlUnavailable(Exception):
    """NVML cannot be used now; ``reason`` says why in words a user understands."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _DeviceLost(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def cuda_version_text(version: int) -> str:
    """NVML's integer CUDA driver version (12040) as users write it ("12.4")."""
    return f"{version // 1000}.{version % 1000 // 10}"


class NvmlReader:
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
        self.is_open = False
        self.driver_version: str | None = None
        self.cuda_driver_version: str | None = None
        self.rows: list[_Row] = []
        self._logged: set[tuple] = set()
        # Which variant of a versioned NVML function this driver answers (first that works wins).
        self._memory_version: int | None = pynvml.nvmlMemory_v2
        self._temperature_versioned = True

    # -- opening and closing --------------------------------------------------------------

    def open(self) -> None:
        """Initialise NVML and enumerate devices; raises :class:`NvmlUnavailable` with a reason."""
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            reason = INIT_FAILURES.get(error.value, f"NVML could not start ({error})")
            raise NvmlUnavailable(reason) from error
        self.is_open = True
        try:
            self._enumerate()
        except pynvml.NVMLError as error:
            self.close()
            raise NvmlUnavailable(f"NVML could not list the GPUs ({error})") from error
        if not self.rows:
            self.close()
            raise NvmlUnavailable(self._no_device_reason)

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self.rows = []
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError as error:
                self.log.debug("nvmlShutdown failed: %s", error)

    def _enumerate(self) -> None:
        self.driver_version = self._system(pynvml.nvmlSystemGetDriverVersion)
        cuda = self._system(pynvml.nvmlSystemGetCudaDriverVersion)
        self.cuda_driver_version = cuda_version_text(cuda) if cuda else None
        count = pynvml.nvmlDeviceGetCount()
        gpus = [self._enumerate_gpu(index) for index in range(count)]
        visible = select_visible(gpus, self.visible_devices)
        rows = []
        for gpu in visible:
            if gpu.mig is None:
                rows.append(_Row(gpu.index, gpu.uuid, gpu.name, gpu.handle, error=gpu.error))
            else:
                rows.extend(
                    _Row(gpu.index, mig.uuid, mig.name, mig.handle, parent_uuid=gpu.uuid)
                    for mig in gpu.visible_mig
                )
        self.rows = rows
        if count == 0:
            self._no_device_reason = "No NVIDIA GPU is visible to this server"
        else:
            self._no_device_reason = (
                f"None of the {count} GPU(s) of this machine is assigned to this server "
                f"({describe_visibility(self.visible_devices)})"
            )

    def _system(self, query: Callable):
        try:
            return query()
        except pynvml.NVMLError as error:
            self.log.debug("%s failed: %s", query.__name__, error)
            return None

    def _enumerate_gpu(self, index: int) -> PhysicalGpu:
        placeholder = f"GPU-unavailable-{index}"
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            uuid = pynvml.nvmlDeviceGetUUID(handle)
            name = pynvml.nvmlDeviceGetName(handle)
        except pynvml.NVMLError as error:
            message = DEVICE_LOST.get(error.value, f"NVML could not open this GPU ({error})")
            self.log.warning("GPU %d: %s", index, message)
            return PhysicalGpu(index, placeholder, UNKNOWN_NAME, error=message)
        gpu = PhysicalGpu(index, uuid, name, handle)
        try:
            current_mode, _pending = pynvml.nvmlDeviceGetMigMode(handle)
        except pynvml.NVMLError:
            return gpu  # GPUs without MIG support answer NOT_SUPPORTED
        if current_mode != pynvml.NVML_DEVICE_MIG_ENABLE:
            return gpu
        gpu.mig = []
        try:
            slots = pynvml.nvmlDeviceGetMaxMigDeviceCount(handle)
        except pynvml.NVMLError as error:
            self.log.warning("GPU %d: cannot count its MIG instances: %s", index, error)
            return gpu
        for slot in range(slots):
            try:
                mig_handle = pynvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, slot)
            except pynvml.NVMLError_NotFound:
                continue  # an empty slot
            except pynvml.NVMLError as error:
                self.log.warning("GPU %d: MIG slot %d unreadable: %s", index, slot, error)
                continue
            try:
                mig_uuid = pynvml.nvmlDeviceGetUUID(mig_handle)
            except pynvml.NVMLError as error:
                self.log.warning("GPU %d: MIG slot %d has no UUID: %s", index, slot, error)
                continue
            mig_name = self._system(lambda h=mig_handle: pynvml.nvmlDeviceGetName(h)) or name
            gpu.mig.append(MigInstance(mig_uuid, mig_name, slot, mig_handle))
        return gpu

    # -- sampling ---------------------------------------------------------------------------

    def read(self, kernel_ids: Callable[[Iterable[int]], dict[int, str]] | None = None) -> list:
        """One DEVICE dict per visible device (see ARCHITECTURE.md), processes mapped to kernels."""
        devices = [self._read_row(row) for row in self.rows]
        pids = {process["pid"] for device in devices for process in device["processes"]}
        if pids and kernel_ids is not None:
            owners = kernel_ids(pids)
            for device in devices:
                for process in device["processes"]:
                    process["kernel_id"] = owners.get(process["pid"])
        return devices

    def _read_row(self, row: _Row) -> dict:
        device = row.empty_device()
        if row.handle is None or time.monotonic() < row.lost_until:
            device["error"] = row.error
            return device
        row.failures = []
        row.successes = 0
        try:
            self._read_fields(row, device)
        except _DeviceLost as lost:
            self.log.warning("GPU %s (%s): %s", row.index, row.uuid, lost.message)
            row.error = lost.message
            row.lost_until = time.monotonic() + self.lost_retry_seconds
            device = row.empty_device()
            device["error"] = lost.message
            return device
        row.error = None
        if row.failures and not row.successes:
            device["error"] = f"NVML could not read this GPU ({row.failures[0]})"
        return device

    def _read_fields(self, row: _Row, device: dict) -> None:
        handle = row.handle
        utilization = self._field(row, "utilization", pynvml.nvmlDeviceGetUtilizationRates, handle)
        if utilization is not None:
            device["utilization_gpu"] = int(utilization.gpu)
            device["utilization_memory"] = int(utilization.memory)
        memory = self._memory(row)
        if memory is not None:
            device["memory_used"] = int(memory.used)
            device["memory_total"] = int(memory.total)
        device["temperature"] = self._temperature(row)
        milliwatts = self._field(row, "power_usage", pynvml.nvmlDeviceGetPowerUsage, handle)
        device["power_usage"] = milliwatts / 1000.0 if milliwatts is not None else None
        device["power_limit"] = self._power_limit(row)
        device["processes"] = self._processes(row)

    def _power_limit(self, row: _Row) -> float | None:
        now = time.monotonic()
        if now - row.power_limit_read_at < POWER_LIMIT_REFRESH_SECONDS:
            return row.power_limit
        handle = row.handle
        limit = self._field(row, "power_limit", pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        if limit is None and "power_limit" in row.never:
            limit = self._field(
                row, "power_management_limit", pynvml.nvmlDeviceGetPowerManagementLimit, handle
            )
        row.power_limit = limit / 1000.0 if limit is not None else None
        row.power_limit_read_at = now
        return row.power_limit

    def _memory(self, row: _Row):
        if self._memory_version is not None:
            memory = self._field(
                row, "memory_v2", pynvml.nvmlDeviceGetMemoryInfo, row.handle, self._memory_version
            )
            if row.never.get("memory_v2") not in VARIANT_MISSING:
                return memory
            # Drivers before R510 lack the v2 call (or reject its version): use v1 from now on.
            self._memory_version = None
        return self._field(row, "memory", pynvml.nvmlDeviceGetMemoryInfo, row.handle)

    def _temperature(self, row: _Row) -> int | None:
        sensor = pynvml.NVML_TEMPERATURE_GPU
        if self._temperature_versioned:
            value = self._field(
                row, "temperature_v", pynvml.nvmlDeviceGetTemperatureV, row.handle, sensor
            )
            if row.never.get("temperature_v") not in VARIANT_MISSING:
                return value
            self._temperature_versioned = False
        value = self._field(row, "temperature", pynvml.nvmlDeviceGetTemperature, row.handle, sensor)
        return int(value) if value is not None else None

    def _processes(self, row: _Row) -> list[dict]:
        queries = (
            ("processes", pynvml.nvmlDeviceGetComputeRunningProcesses_v3),
            ("graphics_processes", pynvml.nvmlDeviceGetGraphicsRunningProcesses_v3),
        )
        by_pid: dict[int, dict] = {}
        for field_name, query in queries:
            for info in self._field(row, field_name, query, row.handle) or []:
                used = info.usedGpuMemory
                by_pid.setdefault(
                    int(info.pid),
                    {"pid": int(info.pid), "used_memory": None if used is None else int(used)},
                )
        for process in by_pid.values():
            process["kernel_id"] = None
        return list(by_pid.values())

    def _field(self, row: _Row, field_name: str, query: Callable, *args):
        """The value of one NVML query, or None; raises _DeviceLost when the GPU is gone."""
        if field_name in row.never:
            return None
        try:
            value = query(*args)
        except pynvml.NVMLError as error:
            if error.value in DEVICE_LOST:
                raise _DeviceLost(DEVICE_LOST[error.value]) from error
            if error.value in FIELD_NEVER or error.value in VARIANT_MISSING:
                row.never[field_name] = error.value
            elif error.value not in FIELD_ABSENT:
                row.failures.append(str(error))
            self._log_once(row, field_name, error)
            return None
        row.successes += 1
        return value

    def _log_once(self, row: _Row, field_name: str, error: pynvml.NVMLError) -> None:
        key = (row.uuid, field_name, error.value)
        if key in self._logged:
            return
        self._logged.add(key)
        expected = error.value in FIELD_ABSENT or error.value in VARIANT_MISSING
        level = logging.DEBUG if expected else logging.WARNING
        self.log.log(
            level, "GPU %s (%s): %s unavailable: %s", row.index, row.uuid, field_name, error
        )


class _Row:
    """One reported device (a GPU, or a MIG instance) with its kept handle and learned limits."""

    def __init__(self, index, uuid, name, handle, parent_uuid=None, error=None):
        self.index = index
        self.uuid = uuid
        self.name = name
        self.handle = handle
        self.parent_uuid = parent_uuid
        self.error = error
        # Fields this device answered NOT_SUPPORTED / FUNCTION_NOT_FOUND for -> that error code.
        self.never: dict[str, int] = {}
        self.lost_until = 0.0
        self.power_limit: float | None = None
        self.power_limit_read_at = float("-inf")
        self.failures: list[str] = []
        self.successes = 0

    def empty_device(self) -> dict:
        return {
            "index": self.index,
            "uuid": self.uuid,
            "name": self.name,
            "mig": self.parent_uuid is not None,
            "parent_uuid": self.parent_uuid,
            "utilization_gpu": None,
            "utilization_memory": None,
            "memory_used": None,
            "memory_total": None,
            "temperature": None,
            "power_usage": None,
            "power_limit": None,
            "processes": [],
            "error": None,
        }
