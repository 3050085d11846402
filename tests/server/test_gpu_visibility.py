"""CUDA_VISIBLE_DEVICES is read the way CUDA reads it (pure logic, no NVML)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jupyter_tk.nvml.visibility import (
    MigInstance,
    PhysicalGpu,
    parse_visible_devices,
    select_visible,
)

GPU0 = "GPU-aaaa1111-0000-0000-0000-000000000000"
GPU1 = "GPU-bbbb2222-0000-0000-0000-000000000000"
GPU2 = "GPU-aaaa3333-0000-0000-0000-000000000000"  # shares the prefix "GPU-aaaa" with GPU0
MIG_A = "MIG-cccc0000-0000-0000-0000-000000000000"
MIG_B = "MIG-dddd0000-0000-0000-0000-000000000000"


def machine():
    """Three GPUs; GPU 1 has MIG enabled with two instances."""
    return [
        PhysicalGpu(0, GPU0, "A"),
        PhysicalGpu(
            1, GPU1, "B", mig=[MigInstance(MIG_A, "B 1g", 0), MigInstance(MIG_B, "B 1g", 1)]
        ),
        PhysicalGpu(2, GPU2, "C"),
    ]


def visible(spec):
    """(index, [visible MIG uuids]) for each GPU a process with ``spec`` would see."""
    return [
        (gpu.index, [mig.uuid for mig in gpu.visible_mig])
        for gpu in select_visible(machine(), spec)
    ]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (None, [(0, []), (1, [MIG_A, MIG_B]), (2, [])]),
        ("", []),
        ("  ", []),
        ("2", [(2, [])]),
        ("2,0", [(2, []), (0, [])]),
        (" 0 , 2 ", [(0, []), (2, [])]),
        ("0,0", [(0, [])]),
        ("1", [(1, [MIG_A, MIG_B])]),
        (GPU1, [(1, [MIG_A, MIG_B])]),
        (GPU2.lower(), [(2, [])]),
        ("GPU-bbbb", [(1, [MIG_A, MIG_B])]),
        (MIG_B, [(1, [MIG_B])]),
        ("MIG-cccc", [(1, [MIG_A])]),
        (f"{MIG_B},{MIG_A}", [(1, [MIG_B, MIG_A])]),
        # The list stops at the first entry naming no device, as CUDA does.
        ("NoDevFiles", []),
        ("-1", []),
        ("0,-1,2", [(0, [])]),
        ("0,7,2", [(0, [])]),
        ("GPU-aaaa,0", []),  # ambiguous prefix: GPU0 and GPU2
        ("0,GPU-ffff", [(0, [])]),
        ("2,MIG-ffff,0", [(2, [])]),
        ("0,nvidia1", [(0, [])]),
    ],
)
def test_cuda_visible_devices_rules(spec, expected):
    assert visible(spec) == expected


def test_parse_keeps_unset_apart_from_empty():
    assert parse_visible_devices(None) is None
    assert parse_visible_devices("") == []
    assert parse_visible_devices("0,,1") == ["0", "1"]


@given(st.lists(st.sampled_from(["0", "1", "2", "3", "-1", GPU0, MIG_A, "x"]), max_size=6))
def test_selection_is_a_prefix_of_the_named_devices(entries):
    """Whatever the list, the result only holds devices named before the first invalid entry."""
    spec = ",".join(entries)
    chosen = [index for index, _mig in visible(spec)]
    valid_prefix = []
    for entry in entries:
        if entry in ("0", GPU0):
            valid_prefix.append(0)
        elif entry in ("1", MIG_A):
            valid_prefix.append(1)
        elif entry == "2":
            valid_prefix.append(2)
        else:
            break
    assert chosen == list(dict.fromkeys(valid_prefix))
