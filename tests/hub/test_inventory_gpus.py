"""GPU descriptions from extended resources and GPU Feature Discovery labels."""

import pytest

from jupyter_tk.hub.kubernetes.gpus import describe_gpus, is_gpu_resource
from tests.fakes.clusters import gfd_labels


def _one(labels, allocatable, free=None, **kwargs):
    gpus = describe_gpus(labels, allocatable, free or allocatable, **kwargs)
    assert len(gpus) == 1
    return gpus[0]


def test_whole_gpus_from_gfd_labels():
    labels = gfd_labels("NVIDIA-A100-SXM4-80GB", 81920, 4)
    gpu = _one(labels, {"nvidia.com/gpu": 4, "cpu": 64000}, {"nvidia.com/gpu": 1})
    assert gpu == {
        "resource": "nvidia.com/gpu",
        "product": "NVIDIA-A100-SXM4-80GB",
        "memory_mib": 81920,
        "count": 4,
        "free": 1,
        "shared": False,
        "mig_profile": None,
        "physical_count": 4,
    }


def test_every_label_is_optional():
    gpu = _one({}, {"nvidia.com/gpu": 2})
    assert gpu["product"] is None
    assert gpu["memory_mib"] is None
    assert gpu["physical_count"] is None
    assert gpu["shared"] is False
    assert (gpu["count"], gpu["free"]) == (2, 2)


def test_mig_mixed_strategy_lists_each_profile_as_its_own_kind():
    labels = gfd_labels(
        "NVIDIA-A100-80GB-PCIe", 81920, 2, mig={"1g.10gb": (7, 9728), "3g.40gb": (2, 40192)}
    )
    allocatable = {"nvidia.com/gpu": 0, "nvidia.com/mig-1g.10gb": 7, "nvidia.com/mig-3g.40gb": 2}
    free = {"nvidia.com/mig-1g.10gb": 5, "nvidia.com/mig-3g.40gb": 2}
    gpus = describe_gpus(labels, allocatable, free)
    # A MIG-mode GPU advertises zero whole GPUs: not listed.
    assert [g["resource"] for g in gpus] == ["nvidia.com/mig-1g.10gb", "nvidia.com/mig-3g.40gb"]
    small, large = gpus
    assert small["mig_profile"] == "1g.10gb"
    assert small["product"] == "NVIDIA-A100-80GB-PCIe-MIG-1g.10gb"
    assert small["memory_mib"] == 9728
    assert (small["count"], small["free"]) == (7, 5)
    assert large["mig_profile"] == "3g.40gb"
    assert large["memory_mib"] == 40192
    assert not small["shared"]


def test_mig_without_profile_labels_names_the_parent_gpu():
    labels = {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    gpu = _one(labels, {"nvidia.com/mig-2g.20gb": 3})
    assert gpu["product"] == "NVIDIA-H100-80GB-HBM3"
    assert gpu["mig_profile"] == "2g.20gb"
    assert gpu["memory_mib"] is None


@pytest.mark.parametrize(
    ("labels", "resource"),
    [
        pytest.param(gfd_labels("Tesla-T4", 15360, 1, replicas=4), "nvidia.com/gpu", id="replicas"),
        pytest.param(
            {"nvidia.com/gpu.product": "Tesla-T4-SHARED"}, "nvidia.com/gpu", id="SHARED product"
        ),
        pytest.param(
            {"nvidia.com/gpu.sharing-strategy": "mps"}, "nvidia.com/gpu", id="mps strategy"
        ),
        pytest.param({}, "nvidia.com/gpu.shared", id="renamed resource"),
        pytest.param({}, "nvidia.com/mig-1g.10gb.shared", id="renamed MIG resource"),
        pytest.param(
            {"nvidia.com/mig-1g.10gb.replicas": "2"}, "nvidia.com/mig-1g.10gb", id="MIG replicas"
        ),
    ],
)
def test_time_sliced_and_mps_gpus_are_shared(labels, resource):
    gpu = _one(labels, {resource: 4})
    assert gpu["shared"] is True


def test_shared_product_loses_its_suffix():
    gpu = _one(gfd_labels("Tesla-T4", 15360, 1, replicas=4), {"nvidia.com/gpu": 4})
    assert gpu["product"] == "Tesla-T4"
    assert gpu["physical_count"] == 1


@pytest.mark.parametrize(
    "labels",
    [
        {"nvidia.com/gpu.replicas": "1"},
        {"nvidia.com/gpu.replicas": "lots"},
        {"nvidia.com/gpu.sharing-strategy": "none"},
    ],
)
def test_not_shared_when_labels_say_so_or_make_no_sense(labels):
    assert _one(labels, {"nvidia.com/gpu": 1})["shared"] is False


@pytest.mark.parametrize("value", ["lots", "-5", "1.5", ""])
def test_unreadable_memory_label_is_null(value):
    assert _one({"nvidia.com/gpu.memory": value}, {"nvidia.com/gpu": 1})["memory_mib"] is None


@pytest.mark.parametrize("resource", ["amd.com/gpu", "gpu.intel.com/i915", "gpu.intel.com/xe"])
def test_other_vendors_listed_by_resource_name(resource):
    gpu = _one({}, {resource: 2, "cpu": 8000}, {resource: 1})
    assert gpu["resource"] == resource
    assert (gpu["count"], gpu["free"], gpu["product"]) == (2, 1, None)


def test_extra_gpu_resources_are_configurable():
    assert describe_gpus({}, {"habana.ai/gaudi": 8}, {}) == []
    gpu = _one({}, {"habana.ai/gaudi": 8}, extra_resources=["habana.ai/gaudi"])
    assert gpu["count"] == 8


@pytest.mark.parametrize(
    ("resource", "is_gpu"),
    [
        ("nvidia.com/gpu", True),
        ("nvidia.com/mig-7g.80gb", True),
        ("nvidia.com/gpu.shared", True),
        ("nvidia.com/mig-1g.10gb.shared", True),
        ("amd.com/gpu", True),
        ("cpu", False),
        ("nvidia.com/gpudirect", False),
        ("nvidia.com/mig-1g", False),
        ("hugepages-2Mi", False),
    ],
)
def test_gpu_resource_names(resource, is_gpu):
    assert is_gpu_resource(resource) is is_gpu
