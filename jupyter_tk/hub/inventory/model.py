"""Kubernetes resource arithmetic: quantities, pod requests, node allocation.

Follows what `kubectl describe node` shows under "Allocated resources" (the scheduler's view):
only pods that are not Succeeded/Failed count; a pod requests
max(sum of its containers + restartable init "sidecar" containers, each regular init container
plus the sidecars started before it) plus its overhead. A container limit without a request
counts as the request (the API server defaults it that way).

Inside the cache, amounts are stored as integers in *storage units*: millicores for `cpu`,
whole units (bytes, counts) for everything else, rounded up like Kubernetes' `Value()` and
`MilliValue()`. Integers keep the per-node sums exact and small in memory.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache

__all__ = [
    "TERMINAL_PHASES",
    "add_into",
    "from_storage",
    "parse_quantity",
    "pod_is_active",
    "pod_requests",
    "pod_storage_requests",
    "to_storage",
]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

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


# -- storage units -------------------------------------------------------------------------------


def to_storage(resource: str, amount: Decimal) -> int:
    """Convert a parsed quantity to the integer storage unit of `resource` (rounded up)."""
    if resource == "cpu":
        amount = amount * 1000
    return math.ceil(amount)


def from_storage(resource: str, amount: int) -> float | int:
    """Convert a storage-unit integer to the JSON unit: cores (float) for cpu, else int."""
    if resource == "cpu":
        return amount / 1000
    return amount


def add_into(total: dict[str, int], amounts: Iterable[tuple[str, int]], sign: int = 1) -> None:
    """Add (`sign=1`) or subtract (`sign=-1`) (resource, amount) pairs into `total`, in place."""
    for resource, amount in amounts:
        total[resource] = total.get(resource, 0) + sign * amount


# -- pods ----------------------------------------------------------------------------------------


def pod_is_active(pod: Mapping) -> bool:
    """True for a pod that holds node resources: bound to a node and not Succeeded/Failed."""
    status = pod.get("status") or {}
    spec = pod.get("spec") or {}
    return bool(spec.get("nodeName")) and status.get("phase") not in TERMINAL_PHASES


def _container_requests(container: Mapping) -> dict[str, Decimal]:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    merged = {}
    # A limit alone is the request too (API server defaulting); an explicit request wins.
    for source in (limits, requests):
        for name, value in source.items():
            merged[name] = parse_quantity(value)
    return merged


def _add(total: dict[str, Decimal], amounts: Mapping[str, Decimal]) -> None:
    for name, value in amounts.items():
        total[name] = total.get(name, Decimal(0)) + value


def _max_into(total: dict[str, Decimal], amounts: Mapping[str, Decimal]) -> None:
    for name, value in amounts.items():
        if value > total.get(name, Decimal(0)):
            total[name] = value


def pod_requests(pod: Mapping) -> dict[str, Decimal]:
    """Resource requests of one pod, as the scheduler and `kubectl describe node` count them.

    Raises ValueError if a quantity in the pod spec is malformed.
    """
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for container in spec.get("containers") or ():
        _add(total, _container_requests(container))

    sidecars: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":
            # A sidecar keeps running next to the app containers and every later init container.
            _add(total, requests)
            _add(sidecars, requests)
            _max_into(init_peak, sidecars)
        else:
            during_this_init = dict(requests)
            _add(during_this_init, sidecars)
            _max_into(init_peak, during_this_init)
    _max_into(total, init_peak)

    # Pod-level resources (Kubernetes 1.32+), when set, replace the container sum for cpu/memory.
    pod_level = (spec.get("resources") or {}).get("requests") or {}
    for name in ("cpu", "memory"):
        if name in pod_level:
            total[name] = parse_quantity(pod_level[name])

    _add(total, {name: parse_quantity(v) for name, v in (spec.get("overhead") or {}).items()})
    return total


def pod_storage_requests(pod: Mapping) -> dict[str, int]:
    """`pod_requests` in storage units, without zero entries (what the cache keeps per pod)."""
    stored = {}
    for name, amount in pod_requests(pod).items():
        value = to_storage(name, amount)
        if value:
            stored[name] = value
    return stored
