"""Inputs shared by the form, validation and spawner tests: a policy, a catalog, clusters.

Snapshots here are written in the `/hub/api/tk/resources` contract shape (what the inventory
serves); the spawner and hub tests get theirs from the real inventory over the simulated API.
"""

from __future__ import annotations

from jupyter_tk.hub.catalog import CatalogImage, CatalogState
from jupyter_tk.hub.policy_document import parse_policy
from jupyter_tk.hub.validation import SpawnLimits, ValidationContext

GIB = 1024**3
GPU = "nvidia.com/gpu"
MIG = "nvidia.com/mig-1g.10gb"
GPU_TOLERATION = {"key": GPU, "operator": "Exists", "effect": "NoSchedule"}

POLICY = {
    "presets": [
        {"slug": "cpu-basic", "display_name": "CPU basic", "cpu": 2, "memory": "4Gi"},
        {
            "slug": "gpu-1",
            "display_name": "1 GPU",
            "description": "One full GPU",
            "cpu": 4,
            "memory": "16Gi",
            "gpu": {"resource": GPU, "count": 1},
        },
        {
            "slug": "gpu-2",
            "display_name": "2 GPUs",
            "cpu": 8,
            "memory": "32Gi",
            "gpu": {"resource": GPU, "count": 2},
        },
        {
            "slug": "mig-small",
            "display_name": "MIG 1g.10gb",
            "cpu": 2,
            "memory": "8Gi",
            "gpu": {"resource": MIG, "count": 1},
        },
    ],
    "rules": [
        {
            "groups": ["gpu-lab"],
            "max": {"cpu": 16, "memory": "64Gi", "gpus": 2},
            "images": ["*"],
            "custom_images": {"allowed": True, "registries": ["nvcr.io"]},
            "nodes": ["*"],
        },
        {
            "groups": ["students"],
            "max": {"cpu": 4, "memory": "8Gi", "gpus": 1},
            "images": ["tk-jupyter-*"],
            "nodes": ["cpu-*", "mig-*"],
            "presets": ["cpu-basic", "mig-small"],
        },
        {
            "groups": ["*"],
            "max": {"cpu": 2, "memory": "4Gi", "gpus": 0},
            "images": ["tk-jupyter-scipy"],
        },
    ],
}

CATALOG_ITEMS = [
    {
        "name": "tk-jupyter-scipy",
        "image": "quay.io/jupyter/scipy-notebook:2024-05-27",
        "display_name": "SciPy",
        "description": "NumPy, pandas & <friends>",
        "default": True,
    },
    {
        "name": "tk-jupyter-ml-gpu",
        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
        "display_name": "Machine learning (GPU)",
        "description": "PyTorch with CUDA",
        "metadata": {"gpu_required": True},
    },
    {
        "name": "other-team-image",
        "image": "registry.example.com/other:1",
        "display_name": "Not for students",
    },
]

CATALOG = CatalogState(
    images=tuple(
        CatalogImage(
            name=item["name"],
            image=item["image"],
            display_name=item["display_name"],
            description=item.get("description", ""),
            default=item.get("default", False),
            gpu_required=item.get("metadata", {}).get("gpu_required", False),
        )
        for item in CATALOG_ITEMS
    ),
    fetched_at=0.0,
)


def gpu(
    resource=GPU,
    *,
    count=4,
    free=4,
    product="NVIDIA-A100-SXM4-80GB",
    memory_mib=81920,
    mig_profile=None,
    shared=False,
):
    return {
        "resource": resource,
        "product": product,
        "memory_mib": memory_mib,
        "count": count,
        "free": free,
        "shared": shared,
        "mig_profile": mig_profile,
    }


def node(name, cpu, memory_gib, *, gpus=(), ready=True, unschedulable=False, taints=()):
    free = {"cpu": cpu, "memory": memory_gib * GIB}
    for entry in gpus:
        free[entry["resource"]] = entry["free"]
    return {
        "name": name,
        "ready": ready,
        "schedulable": ready and not unschedulable,
        "unschedulable": unschedulable,
        "allocatable": dict(free),
        "requested": {},
        "free": free,
        "gpus": list(gpus),
        "taints": list(taints),
    }


GPU_TAINT = {"key": GPU, "value": "present", "effect": "NoSchedule"}


def lab_snapshot() -> dict:
    """cpu-1 (8 CPU), gpu-1 (1 of 4 A100 free, tainted), mig-1 (7 slices), old (NotReady),
    off (cordoned)."""
    nodes = [
        node("cpu-1", 8, 32),
        node("gpu-1", 16, 64, gpus=[gpu(free=1)], taints=[GPU_TAINT]),
        node(
            "mig-1",
            32,
            128,
            gpus=[gpu(MIG, count=7, free=7, memory_mib=9728, mig_profile="1g.10gb")],
            taints=[GPU_TAINT],
        ),
        node("old", 8, 32, ready=False),
        node("off", 8, 32, unschedulable=True),
    ]
    return {
        "source": "kubernetes",
        "generated_at": 0.0,
        "age_seconds": 0.0,
        "stale": False,
        "nodes": nodes,
    }


def tolerations(wants_gpu: bool) -> list[dict]:
    return [GPU_TOLERATION] if wants_gpu else []


def context(group="gpu-lab", snapshot=None, catalog=CATALOG, ratio=1.0) -> ValidationContext:
    rule = parse_policy(POLICY).rules[{"gpu-lab": 0, "students": 1}.get(group, 2)]
    return ValidationContext(
        rule=rule,
        catalog=catalog,
        snapshot=snapshot if snapshot is not None else lab_snapshot(),
        limits=SpawnLimits(guarantee_ratio=ratio),
        tolerations=tolerations,
    )
