"""NVML, read one way for the whole package (the hub's local inventory and the server's GPU
statistics): one initialisation with its reasons for failing, one enumeration of GPUs and MIG
instances, one field reader that degrades field by field, and ``CUDA_VISIBLE_DEVICES`` read the
way CUDA reads it. Needs only ``nvidia-ml-py`` (no hub or server packages)."""

from jupyter_tk.nvml.fields import DeviceFields, DeviceLost, DriverVariants, GpuProcessInfo
from jupyter_tk.nvml.library import (
    NO_GPU,
    UNKNOWN_NAME,
    Nvml,
    NvmlUnavailable,
    cuda_version_text,
    text,
)
from jupyter_tk.nvml.visibility import (
    MigInstance,
    PhysicalGpu,
    describe_visibility,
    parse_visible_devices,
    select_visible,
)

__all__ = [
    "NO_GPU",
    "UNKNOWN_NAME",
    "DeviceFields",
    "DeviceLost",
    "DriverVariants",
    "GpuProcessInfo",
    "MigInstance",
    "Nvml",
    "NvmlUnavailable",
    "PhysicalGpu",
    "cuda_version_text",
    "describe_visibility",
    "parse_visible_devices",
    "select_visible",
    "text",
]
