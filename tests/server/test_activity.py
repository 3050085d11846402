"""What counts as work on a single-user server, and its activity API outside a hub."""

import json

import pytest

from jupyter_tk.server.activity import gpu_in_use


def gpu(utilization, processes=()):
    return {"utilization_gpu": utilization, "processes": list(processes)}


@pytest.mark.parametrize(
    ("devices", "in_use"),
    [
        ([], False),
        ([gpu(0)], False),
        ([gpu(4)], False),
        ([gpu(5)], True),
        ([gpu(0), gpu(80)], True),
        # A process holding memory on an idle GPU is not work: that GPU should be given back
        ([gpu(0, [{"pid": 42, "used_memory": 2 << 30}])], False),
        # MIG instances have no utilization: a compute process counts
        ([gpu(None)], False),
        ([gpu(None, [{"pid": 42, "used_memory": None}])], True),
    ],
)
def test_a_gpu_is_in_use_when_it_computes(devices, in_use):
    assert gpu_in_use(devices, busy_percent=5) is in_use


async def test_outside_a_hub_nothing_is_reported_and_lab_gets_no_deadline(jp_fetch):
    # pytest-jupyter's server has no JUPYTERHUB_* environment: no hub to report to
    response = await jp_fetch("jupyter-tk", "api", "activity")
    body = json.loads(response.body)
    assert body["reporting"] is False
    assert body["gpu_idle"] is None
    assert body["kernels_busy"] is False
