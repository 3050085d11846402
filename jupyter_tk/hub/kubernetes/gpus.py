"""Which GPUs a node offers, described from its extended resources and its GPU labels.

Understands the labels of NVIDIA GPU Feature Discovery (GFD), all optional:

- `nvidia.com/gpu.product` (e.g. `NVIDIA-A100-SXM4-80GB`), `nvidia.com/gpu.memory` (MiB),
  `nvidia.com/gpu.count` (physical GPUs);
- MIG "mixed" strategy: one resource per profile, `nvidia.com/mig-1g.10gb`, with
  `nvidia.com/mig-1g.10gb.product` / `.memory` / `.count` labels;
- sharing (time-slicing or MPS): `nvidia.com/gpu.replicas` > 1, `nvidia.com/gpu.sharing-strategy`
  (`time-slicing`, `mps`), a product ending in `-SHARED`, or the renamed resource
  `nvidia.com/gpu.shared` (also `nvidia.com/mig-1g.10gb.shared`).

Other vendors' device plugins (`amd.com/gpu`, `gpu.intel.com/i915`, `gpu.intel.com/xe`) are listed
by resource name, with `product` and `memory_mib` null.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

__all__ = ["GPU_LABEL_PREFIXES", "OTHER_GPU_RESOURCES", "describe_gpus", "is_gpu_resource"]

OTHER_GPU_RESOURCES = ("amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe")

#: Node labels under these prefixes are the only ones the inventory keeps.
GPU_LABEL_PREFIXES = ("nvidia.com/",)

# nvidia.com/gpu, nvidia.com/gpu.shared, nvidia.com/mig-1g.10gb, nvidia.com/mig-3g.40gb.shared
_NVIDIA_RESOURCE = re.compile(
    r"nvidia\.com/(?P<kind>gpu|mig-(?P<profile>[0-9]+g\.[0-9]+gb))(?P<shared>\.shared)?",
    re.ASCII,
)
_SHARED_SUFFIX = "-SHARED"
_SHARING_STRATEGIES = frozenset({"time-slicing", "mps"})


def is_gpu_resource(resource: str, extra: Iterable[str] = ()) -> bool:
    """True for an extended resource that stands for (a part of) a GPU."""
    return (
        _NVIDIA_RESOURCE.fullmatch(resource) is not None
        or resource in OTHER_GPU_RESOURCES
        or resource in extra
    )


def _label_int(labels: Mapping[str, str], key: str) -> int | None:
    value = labels.get(key)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        return None
    return number if number >= 0 else None


def _nvidia_gpu(resource: str, match: re.Match, labels: Mapping[str, str]) -> dict:
    base = f"nvidia.com/{match['kind']}."
    product = labels.get(base + "product")
    profile = match["profile"]
    if product is None and profile is not None:
        # No per-profile label: name the physical GPU the slice is cut from.
        product = labels.get("nvidia.com/gpu.product")
    shared = match["shared"] is not None
    if product is not None and product.endswith(_SHARED_SUFFIX):
        product = product[: -len(_SHARED_SUFFIX)]
        shared = True
    replicas = _label_int(labels, base + "replicas")
    if replicas is not None and replicas > 1:
        shared = True
    if labels.get(base + "sharing-strategy") in _SHARING_STRATEGIES:
        shared = True
    return {
        "resource": resource,
        "product": product or None,
        "memory_mib": _label_int(labels, base + "memory"),
        "shared": shared,
        "mig_profile": profile,
        # Additive: physical GPUs (or MIG instances) behind the resource, from GFD's count label.
        "physical_count": _label_int(labels, base + "count"),
    }


def describe_gpus(
    labels: Mapping[str, str],
    allocatable: Mapping[str, int],
    free: Mapping[str, int],
    extra_resources: Iterable[str] = (),
) -> list[dict]:
    """GPU entries of the resources contract for one node, sorted by resource name.

    `allocatable` and `free` are counts per resource name. Resources with no allocatable
    units are left out (a MIG-mode GPU advertises `nvidia.com/gpu: 0` next to its slices).
    """
    extra = tuple(extra_resources)
    gpus = []
    for resource in sorted(allocatable):
        count = int(allocatable[resource])
        if count <= 0:
            continue
        match = _NVIDIA_RESOURCE.fullmatch(resource)
        if match is not None:
            entry = _nvidia_gpu(resource, match, labels)
        elif resource in OTHER_GPU_RESOURCES or resource in extra:
            entry = {
                "resource": resource,
                "product": None,
                "memory_mib": None,
                "shared": False,
                "mig_profile": None,
                "physical_count": None,
            }
        else:
            continue
        entry["count"] = count
        entry["free"] = max(0, int(free.get(resource, count)))
        gpus.append(entry)
    return gpus
