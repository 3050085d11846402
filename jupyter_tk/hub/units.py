"""How amounts are written: for people (``16 GiB``, ``2.5 CPU``) and for Kubernetes (``16Gi``).

The front end (``hub_plugin/src/units.ts``) writes them the same way, so a value rendered by the
server and the same value re-rendered live in the browser read identically.
"""

from __future__ import annotations

__all__ = ["format_bytes", "format_cores", "format_gpu_kind", "format_memory_quantity"]

_BINARY_UNITS = (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024))


def format_cores(cores: float) -> str:
    """``2`` -> ``"2"``, ``0.5`` -> ``"0.5"``, ``1.25`` -> ``"1.25"`` (millicore precision)."""
    text = f"{round(cores, 3):.3f}".rstrip("0").rstrip(".")
    return text or "0"


def format_bytes(amount: float) -> str:
    """Bytes for people, in binary units with at most one decimal: ``"7.5 GiB"``."""
    for suffix, size in _BINARY_UNITS:
        if abs(amount) >= size:
            value = amount / size
            text = f"{value:.1f}".rstrip("0").rstrip(".")
            return f"{text} {suffix}B"
    return f"{int(amount)} B"


def format_memory_quantity(amount: int) -> str:
    """Bytes as the shortest exact Kubernetes quantity: ``17179869184`` -> ``"16Gi"``."""
    for suffix, size in _BINARY_UNITS:
        if amount >= size and amount % size == 0:
            return f"{amount // size}{suffix}"
    return str(amount)


def format_gpu_kind(gpu: dict) -> str:
    """One GPU entry of the resources contract as a short description.

    ``{"resource": "nvidia.com/mig-1g.10gb", "product": "NVIDIA-A100-SXM4-80GB", ...}`` ->
    ``"NVIDIA-A100-SXM4-80GB MIG 1g.10gb"``; memory and sharing are added when known.
    """
    product = gpu.get("product") or gpu["resource"]
    profile = gpu.get("mig_profile")
    if profile:
        # GFD names a slice "<GPU>-MIG-1g.10gb"; say it once.
        product = product.removesuffix(f"-MIG-{profile}")
    parts = [product]
    if profile:
        parts.append(f"MIG {profile}")
    if gpu.get("memory_mib"):
        parts.append(format_bytes(gpu["memory_mib"] * 1024**2))
    if gpu.get("shared"):
        parts.append("shared")
    return " · ".join(parts)
