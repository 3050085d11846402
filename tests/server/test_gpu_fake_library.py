"""The fake libnvidia-ml.so.1 itself: config parsing and re-reading (used by every GPU test)."""

import pynvml
import pytest

from tests.fakes.nvml import fake_gpu


@pytest.fixture
def fake_nvml_devices():
    return [fake_gpu(0)]


@pytest.fixture
def nvml(fake_nvml):
    pynvml.nvmlInit()
    yield fake_nvml
    pynvml.nvmlShutdown()


def names():
    return [
        pynvml.nvmlDeviceGetName(pynvml.nvmlDeviceGetHandleByIndex(index))
        for index in range(pynvml.nvmlDeviceGetCount())
    ]


def test_json_strings_with_escapes_and_unicode(nvml):
    nvml.set([fake_gpu(0, name='Tesla "T4" \\ Ω\tGPU'), fake_gpu(1, name="NVIDIA L4")])
    assert names() == ['Tesla "T4" \\ Ω\tGPU', "NVIDIA L4"]


def test_a_broken_config_keeps_the_last_good_one(nvml, capfd):
    nvml.set([fake_gpu(0, name="first"), fake_gpu(1, name="second")])
    assert names() == ["first", "second"]
    nvml.config_path.write_text('{"devices": [{"name": "oops"')
    assert names() == ["first", "second"]
    assert "bad config" in capfd.readouterr().err


def test_changes_are_seen_while_the_library_runs(nvml):
    handle = pynvml.nvmlDeviceGetHandleByIndex(0)
    nvml.set([fake_gpu(0, utilization_gpu=12)])
    assert pynvml.nvmlDeviceGetUtilizationRates(handle).gpu == 12
    nvml.set([fake_gpu(0, utilization_gpu=88)])
    assert pynvml.nvmlDeviceGetUtilizationRates(handle).gpu == 88
    nvml.set([])
    with pytest.raises(pynvml.NVMLError_GpuIsLost):
        pynvml.nvmlDeviceGetUtilizationRates(handle)


def test_calls_are_counted_per_function(nvml):
    before = nvml.calls("nvmlDeviceGetCount_v2")
    for _ in range(3):
        pynvml.nvmlDeviceGetCount()
    assert nvml.calls("nvmlDeviceGetCount_v2") == before + 3
