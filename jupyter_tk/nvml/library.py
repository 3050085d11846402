"""One NVML initialisation and the enumeration of GPUs and their MIG instances.

Every NVML call blocks (up to milliseconds on a busy driver): an :class:`Nvml` belongs to one
worker thread, never to an event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import pynvml

from jupyter_tk.nvml.visibility import MigInstance, PhysicalGpu

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
        "No NVIDIA driver library (libnvidia-ml.so.1) is available here, so there is no GPU access"
    ),
    pynvml.NVML_ERROR_DRIVER_NOT_LOADED: "The NVIDIA driver is not loaded on this machine",
    pynvml.NVML_ERROR_NO_PERMISSION: "No permission to use the NVIDIA driver on this machine",
}
NO_GPU = "No NVIDIA GPU is visible here"
UNKNOWN_NAME = "Unknown GPU"


class NvmlUnavailable(Exception):
    """NVML cannot be used now; ``reason`` says why in words a user understands."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def text(value: str | bytes) -> str:
    """NVML strings: ``str`` from pynvml 12+, ``bytes`` from older bindings."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def cuda_version_text(version: int) -> str:
    """NVML's integer CUDA driver version (12040) as users write it ("12.4")."""
    return f"{version // 1000}.{version % 1000 // 10}"


def placeholder_uuid(index: int) -> str:
    """The UUID reported for a GPU that NVML cannot open (it is known by its index only)."""
    return f"GPU-unavailable-{index}"


def lost_message(error: pynvml.NVMLError) -> str | None:
    """The user-facing sentence when ``error`` means the GPU is gone, else None."""
    return DEVICE_LOST.get(error.value)


class Nvml:
    """One NVML initialisation: driver facts and the GPUs with their MIG instances."""

    def __init__(self, log: logging.Logger | None = None):
        self.log = log or logging.getLogger(__name__)
        self.is_open = False
        self.driver_version: str | None = None
        self.cuda_driver_version: str | None = None

    def open(self) -> None:
        """Initialise NVML; raises :class:`NvmlUnavailable` with a reason."""
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as error:
            reason = INIT_FAILURES.get(error.value, f"NVML could not start ({error})")
            raise NvmlUnavailable(reason) from error
        self.is_open = True
        version = self._system(pynvml.nvmlSystemGetDriverVersion)
        self.driver_version = text(version) if version is not None else None
        cuda = self._system(pynvml.nvmlSystemGetCudaDriverVersion)
        self.cuda_driver_version = cuda_version_text(cuda) if cuda else None

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            try:
                pynvml.nvmlShutdown()
            except pynvml.NVMLError as error:
                # Shutting down a library that is going away anyway: nothing to recover.
                self.log.debug("nvmlShutdown failed: %s", error)

    def count(self) -> int:
        """How many GPUs the driver reports; raises :class:`NvmlUnavailable` when it cannot say."""
        try:
            return pynvml.nvmlDeviceGetCount()
        except pynvml.NVMLError as error:
            raise NvmlUnavailable(f"NVML could not list the GPUs ({error})") from error

    def gpus(self) -> list[PhysicalGpu]:
        """Every GPU in NVML index order; a GPU NVML cannot open is a row with ``error`` set."""
        return [self.gpu(index) for index in range(self.count())]

    def gpu(self, index: int) -> PhysicalGpu:
        """GPU ``index`` with its MIG instances (``mig`` is None when MIG is off or absent)."""
        try:
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            uuid = text(pynvml.nvmlDeviceGetUUID(handle))
            name = text(pynvml.nvmlDeviceGetName(handle))
        except pynvml.NVMLError as error:
            message = lost_message(error) or f"NVML could not open this GPU ({error})"
            self.log.warning("GPU %d: %s", index, message)
            return PhysicalGpu(index, placeholder_uuid(index), UNKNOWN_NAME, error=message)
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
                mig_uuid = text(pynvml.nvmlDeviceGetUUID(mig_handle))
            except pynvml.NVMLError as error:
                self.log.warning("GPU %d: MIG slot %d has no UUID: %s", index, slot, error)
                continue
            mig_name = self._system(lambda h=mig_handle: pynvml.nvmlDeviceGetName(h))
            gpu.mig.append(
                MigInstance(mig_uuid, text(mig_name) if mig_name else name, slot, mig_handle)
            )
        return gpu

    def _system(self, query: Callable):
        try:
            return query()
        except pynvml.NVMLError as error:
            self.log.debug("%s failed: %s", getattr(query, "__name__", "NVML query"), error)
            return None
