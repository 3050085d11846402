"""Reading one device's fields from NVML, each degrading on its own (as in nvitop / gpustat).

- "not supported", a function the installed driver lacks (``FunctionNotFound``) and missing
  permissions give ``None`` for that field only; once a device says a field is unsupported it is
  not asked again (capabilities do not change while the driver runs);
- a lost GPU (``GPU_IS_LOST``, ``RESET_REQUIRED``) raises :class:`DeviceLost`, so the caller keeps
  the row with an error and never breaks the other rows;
- any other error on a field gives ``None`` and one log line (not one per sample).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pynvml

from jupyter_tk.nvml.library import FIELD_ABSENT, FIELD_NEVER, VARIANT_MISSING, lost_message

# The enforced power limit only changes when an administrator sets it: re-read it this often
# rather than on every sample (one NVML call per GPU per sample saved).
POWER_LIMIT_REFRESH_SECONDS = 30.0


class DeviceLost(Exception):
    """The GPU stopped answering; ``message`` says so in words a user understands."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


@dataclass
class DriverVariants:
    """Which variant of a versioned NVML call this driver answers; shared by all its devices
    (the first variant that works wins, so older drivers cost one failed call, once)."""

    memory_version: int | None = pynvml.nvmlMemory_v2
    temperature_versioned: bool = True


@dataclass(frozen=True)
class GpuProcessInfo:
    """One process NVML lists on a device; ``used_memory`` in bytes, None when NVML cannot say.

    ``pid`` is in the PID namespace the driver chose: usually the caller's, on some drivers and
    container runtimes the host's.
    """

    pid: int
    used_memory: int | None


class DeviceFields:
    """The fields of one device (a GPU or a MIG instance) and what it was found not to support."""

    def __init__(
        self,
        handle,
        label: str,
        variants: DriverVariants | None = None,
        log: logging.Logger | None = None,
    ):
        self.handle = handle
        self.label = label
        self.variants = variants or DriverVariants()
        self.log = log or logging.getLogger(__name__)
        # Fields this device answered NOT_SUPPORTED / FUNCTION_NOT_FOUND for -> that error code.
        self.never: dict[str, int] = {}
        self.failures: list[str] = []
        self.successes = 0
        self._logged: set[tuple[str, int]] = set()
        self._power_limit: float | None = None
        self._power_limit_read_at = float("-inf")
        self._minor_number: int | None = None
        self._minor_number_known = False

    def begin(self) -> None:
        """Start one pass over the fields: forget the last pass's failures."""
        self.failures = []
        self.successes = 0

    @property
    def failed(self) -> str | None:
        """The first failure of this pass when no field answered at all, else None."""
        if self.failures and not self.successes:
            return self.failures[0]
        return None

    def utilization(self) -> tuple[int, int] | None:
        """(GPU %, memory %), or None."""
        value = self.field("utilization", pynvml.nvmlDeviceGetUtilizationRates, self.handle)
        return None if value is None else (int(value.gpu), int(value.memory))

    def memory(self) -> tuple[int, int] | None:
        """(used, total) in bytes, or None; "used" excludes reserved memory where the driver
        can say so (R510 and later), as ``nvidia-smi`` shows it."""
        variants = self.variants
        if variants.memory_version is not None:
            memory = self.field(
                "memory_v2", pynvml.nvmlDeviceGetMemoryInfo, self.handle, variants.memory_version
            )
            if self.never.get("memory_v2") not in VARIANT_MISSING:
                return None if memory is None else (int(memory.used), int(memory.total))
            # Drivers before R510 lack the v2 call (or reject its version): use v1 from now on.
            variants.memory_version = None
        memory = self.field("memory", pynvml.nvmlDeviceGetMemoryInfo, self.handle)
        return None if memory is None else (int(memory.used), int(memory.total))

    def temperature(self) -> int | None:
        """°C of the GPU die, or None."""
        sensor = pynvml.NVML_TEMPERATURE_GPU
        if self.variants.temperature_versioned:
            value = self.field(
                "temperature_v", pynvml.nvmlDeviceGetTemperatureV, self.handle, sensor
            )
            if self.never.get("temperature_v") not in VARIANT_MISSING:
                return value
            self.variants.temperature_versioned = False
        value = self.field("temperature", pynvml.nvmlDeviceGetTemperature, self.handle, sensor)
        return int(value) if value is not None else None

    def power_usage(self) -> float | None:
        """Watts drawn now, or None."""
        milliwatts = self.field("power_usage", pynvml.nvmlDeviceGetPowerUsage, self.handle)
        return milliwatts / 1000.0 if milliwatts is not None else None

    def power_limit(self) -> float | None:
        """The enforced power limit in watts, or None (re-read every 30 s)."""
        now = time.monotonic()
        if now - self._power_limit_read_at < POWER_LIMIT_REFRESH_SECONDS:
            return self._power_limit
        limit = self.field("power_limit", pynvml.nvmlDeviceGetEnforcedPowerLimit, self.handle)
        if limit is None and "power_limit" in self.never:
            limit = self.field(
                "power_management_limit", pynvml.nvmlDeviceGetPowerManagementLimit, self.handle
            )
        self._power_limit = limit / 1000.0 if limit is not None else None
        self._power_limit_read_at = now
        return self._power_limit

    def processes(self) -> list[GpuProcessInfo]:
        """Compute and graphics processes on this device, one entry per pid."""
        queries = (
            ("processes", pynvml.nvmlDeviceGetComputeRunningProcesses_v3),
            ("graphics_processes", pynvml.nvmlDeviceGetGraphicsRunningProcesses_v3),
        )
        by_pid: dict[int, GpuProcessInfo] = {}
        for field_name, query in queries:
            for info in self.field(field_name, query, self.handle) or []:
                used = info.usedGpuMemory
                pid = int(info.pid)
                by_pid.setdefault(pid, GpuProcessInfo(pid, None if used is None else int(used)))
        return list(by_pid.values())

    def minor_number(self) -> int | None:
        """N of the device file ``/dev/nvidiaN`` (fixed while the driver runs: asked once).

        None for MIG instances (their processes open their GPU's file) and where unsupported.
        """
        if not self._minor_number_known:
            self._minor_number = self.field(
                "minor_number", pynvml.nvmlDeviceGetMinorNumber, self.handle
            )
            # Asked once even when it failed for a passing reason: the answer never changes.
            self._minor_number_known = True
        return None if self._minor_number is None else int(self._minor_number)

    def field(self, field_name: str, query: Callable, *args):
        """The value of one NVML query, or None; raises DeviceLost when the GPU is gone."""
        if field_name in self.never:
            return None
        try:
            value = query(*args)
        except pynvml.NVMLError as error:
            lost = lost_message(error)
            if lost is not None:
                raise DeviceLost(lost) from error
            if error.value in FIELD_NEVER or error.value in VARIANT_MISSING:
                self.never[field_name] = error.value
            elif error.value not in FIELD_ABSENT:
                self.failures.append(str(error))
            self._log_once(field_name, error)
            return None
        self.successes += 1
        return value

    def _log_once(self, field_name: str, error: pynvml.NVMLError) -> None:
        key = (field_name, error.value)
        if key in self._logged:
            return
        self._logged.add(key)
        expected = error.value in FIELD_ABSENT or error.value in VARIANT_MISSING
        level = logging.DEBUG if expected else logging.WARNING
        self.log.log(level, "%s: %s unavailable: %s", self.label, field_name, error)
