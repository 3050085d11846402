"""Amounts of CPU, memory and GPUs: read (Kubernetes quantities) and written (for people).

One home for both directions. :func:`parse_quantity` reads what Kubernetes, the policy file and
users write (``100m``, ``1.5Gi``, ``2e3``) exactly; the ``format_*`` functions write amounts for
people (``16 GiB``, ``2.5 CPU``) and for Kubernetes (``16Gi``). The front end
(``hub_plugin/src/units.ts``) writes them the same way; the shared cases in
``tests/vectors/form_rules.json`` check that both agree.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

__all__ = [
    "format_bytes",
    "format_cores",
    "format_gpu_kind",
    "format_memory_quantity",
    "parse_quantity",
]

_BINARY_SUFFIXES = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL_SUFFIXES = {"m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

# The grammar of k8s.io/apimachinery/pkg/api/resource (ASCII digits only; no spaces).
_QUANTITY = re.compile(
    r"(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[mkMGTPE]?))",
    re.ASCII,
)
# Kubernetes stores quantities in an int64 of the smallest unit; anything beyond is not a
# real request and would only be a way to make arithmetic slow.
_MAX_MAGNITUDE = Decimal(2**63 - 1)
_MAX_TEXT_LENGTH = 64
_MAX_EXPONENT = 30


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity (`100m`, `1.5Gi`, `2e3`, `512M`) into an exact Decimal.

    Raises ValueError (with the offending value) for anything Kubernetes would reject, for
    non-finite numbers and for magnitudes beyond what Kubernetes can store (int64).
    """
    if isinstance(value, bool):
        raise ValueError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"not a finite quantity: {value!r}")
        result = Decimal(repr(value))
    elif isinstance(value, str):
        result = _parse_quantity_text(value)
    else:
        raise ValueError(f"not a quantity: {value!r}")
    if abs(result) > _MAX_MAGNITUDE:
        raise ValueError(f"quantity too large: {_shorten(value)}")
    return result


# Clusters repeat the same few quantity strings ("100m", "1Gi") across thousands of pods.
@lru_cache(maxsize=4096)
def _parse_quantity_text(text: str) -> Decimal:
    if len(text) > _MAX_TEXT_LENGTH:
        raise ValueError(f"quantity too long: {_shorten(text)}")
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(f"not a Kubernetes quantity: {_shorten(text)}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as error:  # pragma: no cover - the regex only lets numbers through
        raise ValueError(f"not a Kubernetes quantity: {_shorten(text)}") from error
    if match["binary"]:
        return number * (1024 ** _BINARY_SUFFIXES[match["binary"]])
    if match["exponent"] is not None:
        exponent = int(match["exponent"])
        if abs(exponent) > _MAX_EXPONENT:
            raise ValueError(f"quantity exponent out of range: {_shorten(text)}")
    else:
        exponent = _DECIMAL_SUFFIXES[match["decimal"]]
    return number.scaleb(exponent)


def _shorten(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# -- writing amounts ------------------------------------------------------------------------------

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
