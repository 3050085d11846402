"""The GPU sampler against the fake libnvidia-ml.so.1, loaded into this process.

pynvml loads its library once per process, so every test here drives the same fake library
through its config file (re-read when it changes); each test gets its own sampler, NVML
initialisation and call counter.
"""

import asyncio
import json
import logging
import os
import threading
import time

import pytest

from jupyter_tk.server.gpu.sampler import THREAD_NAME, GpuSampler
from tests.fakes.nvml import GIB, fake_gpu, fake_mig_gpu, fake_uuid
from tests.support.contract import GPU_DEVICE_KEYS
from tests.support.polling import wait_until


@pytest.fixture
async def make_sampler():
    samplers = []

    def make(**traits):
        traits = {"interval": 0.2, "idle_timeout": 30.0, "retry_interval": 30.0, **traits}
        sampler = GpuSampler(**traits)
        samplers.append(sampler)
        return sampler

    yield make
    for sampler in samplers:
        await sampler.close()


async def devices_when(sampler, predicate):
    """The devices of the first snapshot for which ``predicate(devices)`` holds."""

    async def check():
        devices = (await sampler.latest()).data["devices"]
        return devices if predicate(devices) else None

    return await wait_until(check)


async def test_several_gpus_report_every_field(fake_nvml, make_sampler):
    fake_nvml.set(
        [
            # This test process: a process of this PID namespace that is no kernel.
            fake_gpu(0, processes=[{"pid": os.getpid(), "used_memory": 3 * GIB}]),
            fake_gpu(1, name="NVIDIA H100 80GB HBM3", utilization_gpu=93, temperature=71),
            fake_gpu(2, memory_used=0, power_usage=123.456, power_limit=350),
        ],
        driver_version="560.35.03",
        cuda_version=12060,
    )
    snapshot = await make_sampler().latest()
    data = snapshot.data

    assert data["available"] is True
    assert data["reason"] is None
    assert data["driver_version"] == "560.35.03"
    assert data["cuda_driver_version"] == "12.6"
    assert abs(data["timestamp"] - time.time()) < 60
    assert json.loads(snapshot.body) == data
    assert [device["uuid"] for device in data["devices"]] == [fake_uuid(i) for i in range(3)]
    for device in data["devices"]:
        assert set(device) == GPU_DEVICE_KEYS
    first, second, third = data["devices"]
    assert first == {
        "index": 0,
        "uuid": fake_uuid(0),
        "name": "NVIDIA A100-SXM4-80GB",
        "mig": False,
        "parent_uuid": None,
        "utilization_gpu": 7,
        "utilization_memory": 3,
        "memory_used": 1 * GIB,
        "memory_total": 80 * GIB,
        "temperature": 35,
        "power_usage": 60.0,
        "power_limit": 400.0,
        "processes": [{"pid": os.getpid(), "used_memory": 3 * GIB, "kernel_id": None}],
        "attribution": "pid",
        "kernels": [],
        "error": None,
    }
    assert (second["name"], second["utilization_gpu"], second["temperature"]) == (
        "NVIDIA H100 80GB HBM3",
        93,
        71,
    )
    assert (third["memory_used"], third["power_usage"], third["power_limit"]) == (0, 123.456, 350.0)


async def test_processes_merge_compute_and_graphics_and_keep_unknown_memory(
    fake_nvml, make_sampler
):
    fake_nvml.set(
        [
            fake_gpu(
                0,
                processes=[{"pid": 10, "used_memory": GIB}, {"pid": 11, "used_memory": None}],
                graphics_processes=[{"pid": 10, "used_memory": GIB}, {"pid": 12, "used_memory": 5}],
            )
        ]
    )
    (device,) = (await make_sampler().latest()).data["devices"]
    assert sorted(device["processes"], key=lambda p: p["pid"]) == [
        {"pid": 10, "used_memory": GIB, "kernel_id": None},
        {"pid": 11, "used_memory": None, "kernel_id": None},
        {"pid": 12, "used_memory": 5, "kernel_id": None},
    ]


async def test_mig_gpu_is_reported_as_its_instances(fake_nvml, make_sampler):
    mig_gpu = fake_mig_gpu(1, instances=3)
    mig_gpu["mig"][2]["processes"] = [{"pid": 777, "used_memory": 2 * GIB}]
    mig_gpu["mig"][2]["memory_used"] = 2 * GIB + 512
    fake_nvml.set([fake_gpu(0), mig_gpu])

    devices = (await make_sampler().latest()).data["devices"]

    assert [d["uuid"] for d in devices] == [fake_uuid(0)] + [fake_uuid(1, s) for s in range(3)]
    assert devices[0]["mig"] is False
    for instance in devices[1:]:
        assert instance["mig"] is True
        assert instance["parent_uuid"] == fake_uuid(1)
        assert instance["index"] == 1
        assert instance["name"] == "NVIDIA A100-SXM4-80GB MIG 1g.10gb"
        assert instance["memory_total"] == 10 * GIB
        # NVML does not report utilization, temperature or power per MIG instance.
        for field in ("utilization_gpu", "utilization_memory", "temperature", "power_usage"):
            assert instance[field] is None
        assert instance["power_limit"] is None
        assert instance["error"] is None
    assert devices[3]["memory_used"] == 2 * GIB + 512
    assert devices[3]["processes"] == [{"pid": 777, "used_memory": 2 * GIB, "kernel_id": None}]
    assert devices[1]["processes"] == []


async def test_unsupported_fields_become_null_one_by_one(fake_nvml, make_sampler):
    fake_nvml.set(
        [
            fake_gpu(0, unsupported=["temperature"]),
            fake_gpu(1, unsupported=["power_usage", "power_limit"]),
            fake_gpu(2, unsupported=["utilization", "memory"]),
            fake_gpu(3, unsupported=["processes", "graphics_processes"]),
        ]
    )
    sampler = make_sampler()
    d0, d1, d2, d3 = (await sampler.latest()).data["devices"]

    assert d0["temperature"] is None and d0["power_usage"] == 60.0
    assert d1["power_usage"] is None and d1["power_limit"] is None and d1["temperature"] == 36
    assert d2["utilization_gpu"] is None and d2["utilization_memory"] is None
    assert d2["memory_used"] is None and d2["memory_total"] is None
    assert d2["temperature"] == 37
    assert d3["processes"] == [] and d3["utilization_gpu"] == 37
    assert all(d["error"] is None for d in (d0, d1, d2, d3))

    # An unsupported field is not asked again: after the first sample, 3 temperature calls each.
    await wait_until(lambda: sampler.snapshot.sequence >= 3)
    await sampler.close()
    samples = sampler.snapshot.sequence
    assert fake_nvml.calls("nvmlDeviceGetTemperatureV") == 4 + 3 * (samples - 1)
    assert fake_nvml.calls("nvmlDeviceGetTemperature") == 0


async def test_lost_gpu_keeps_its_row_and_never_breaks_the_others(fake_nvml, make_sampler):
    fake_nvml.set([fake_gpu(0), fake_gpu(1), fake_gpu(2)])
    sampler = make_sampler(retry_interval=0.5)
    assert all(d["error"] is None for d in (await sampler.latest()).data["devices"])

    # GPU 1 falls off the bus while the server runs.
    fake_nvml.set([fake_gpu(0, utilization_gpu=55), fake_gpu(1, lost=True), fake_gpu(2)])
    d0, d1, d2 = await devices_when(sampler, lambda devices: devices[1]["error"])

    assert "GPU is lost" in d1["error"]
    assert (d1["uuid"], d1["name"], d1["index"]) == (fake_uuid(1), "NVIDIA A100-SXM4-80GB", 1)
    assert all(d1[k] is None for k in ("utilization_gpu", "memory_used", "temperature"))
    assert d0["error"] is None and d0["utilization_gpu"] == 55
    assert d2["error"] is None and d2["memory_used"] == 3 * GIB

    # Checked again only after retry_interval; when it answers again, the row recovers.
    fake_nvml.set([fake_gpu(0), fake_gpu(1), fake_gpu(2)])
    d0, d1, d2 = await devices_when(sampler, lambda devices: devices[1]["error"] is None)
    assert d1["utilization_gpu"] == 17


async def test_gpu_lost_before_start_is_a_row_with_an_error(fake_nvml, make_sampler):
    fake_nvml.set([fake_gpu(0), fake_gpu(1, handle_lost=True), fake_gpu(2, lost=True)])
    d0, d1, d2 = (await make_sampler().latest()).data["devices"]
    assert d0["error"] is None and d0["memory_total"] == 80 * GIB
    for lost, index in ((d1, 1), (d2, 2)):
        assert lost["index"] == index
        assert lost["uuid"] == f"GPU-unavailable-{index}"
        assert "GPU is lost" in lost["error"]
        assert lost["memory_total"] is None


async def test_nvml_is_initialised_once_and_called_only_from_the_sampler_thread(
    fake_nvml, make_sampler
):
    sampler = make_sampler()
    results = await asyncio.gather(*(sampler.latest() for _ in range(50)))
    # Every concurrent client got the same shared sample.
    assert len({snapshot.sequence for snapshot in results}) == 1
    first = results[0].sequence
    await wait_until(lambda: sampler.snapshot.sequence >= first + 3)
    for _ in range(20):
        await sampler.latest()

    assert fake_nvml.calls("nvmlInitWithFlags") == 1
    assert fake_nvml.calls("nvmlDeviceGetHandleByIndex_v2") == 2
    sampler_threads = {t.native_id for t in threading.enumerate() if t.name == THREAD_NAME}
    assert fake_nvml.threads() <= sampler_threads
    assert threading.get_native_id() not in fake_nvml.threads()

    await sampler.close()
    assert fake_nvml.calls("nvmlShutdown") == 1
    assert not any(t.name == THREAD_NAME and t.is_alive() for t in threading.enumerate())


async def test_sampling_pauses_when_idle_and_resumes_with_a_fresh_sample(fake_nvml, make_sampler):
    sampler = make_sampler(idle_timeout=0.4)
    before = await sampler.latest()
    await wait_until(lambda: sampler.paused)
    calls = fake_nvml.calls()
    await asyncio.sleep(1.0)
    assert fake_nvml.calls() == calls, "no NVML calls while nobody asks"

    fake_nvml.set([fake_gpu(0, utilization_gpu=99), fake_gpu(1)])
    after = await sampler.latest()
    assert after.sequence > before.sequence
    assert after.data["devices"][0]["utilization_gpu"] == 99
    assert after.data["timestamp"] > before.data["timestamp"]
    assert fake_nvml.calls() > calls


async def test_waiting_for_a_fresh_sample_is_bounded(fake_nvml, make_sampler):
    sampler = make_sampler(idle_timeout=0.3, fresh_sample_timeout=0.2)
    await sampler.latest()
    await wait_until(lambda: sampler.paused)
    before = sampler.snapshot
    fake_nvml.set([fake_gpu(0), fake_gpu(1)], call_delay_us=400_000)
    try:
        after = await sampler.latest()
        # Sampling 2 GPUs at 0.4 s per call takes seconds: the request got the last sample.
        assert after.sequence == before.sequence
    finally:
        fake_nvml.set([fake_gpu(0), fake_gpu(1)])


async def test_init_failure_is_reported_and_retried_at_the_slow_rate(fake_nvml, make_sampler):
    fake_nvml.set([fake_gpu(0)], fail_init="driver_not_loaded")
    sampler = make_sampler(retry_interval=1.5)
    data = (await sampler.latest()).data
    assert data["available"] is False
    assert data["reason"] == "The NVIDIA driver is not loaded on this machine"
    assert data["devices"] == []

    for _ in range(10):
        assert (await sampler.latest()).data["available"] is False
        await asyncio.sleep(0.05)
    assert fake_nvml.calls("nvmlInitWithFlags") == 1

    fake_nvml.set([fake_gpu(0)])
    data = await wait_until(lambda: _available(sampler))
    assert data["devices"][0]["uuid"] == fake_uuid(0)
    assert fake_nvml.calls("nvmlInitWithFlags") == 2


async def _available(sampler):
    data = (await sampler.latest()).data
    return data if data["available"] else None


@pytest.mark.parametrize(
    ("devices", "visible", "reason"),
    [
        ([], None, "No NVIDIA GPU is visible here"),
        (
            [fake_gpu(0), fake_gpu(1)],
            "",
            "None of the 2 GPU(s) of this machine is assigned to this server "
            "(CUDA_VISIBLE_DEVICES='')",
        ),
        ([fake_gpu(0)], "NoDevFiles", "None of the 1 GPU(s)"),
    ],
)
async def test_no_visible_device_is_unavailable_with_a_reason(
    fake_nvml, make_sampler, devices, visible, reason
):
    fake_nvml.set(devices)
    data = (await make_sampler(visible_devices=visible).latest()).data
    assert data["available"] is False
    assert data["reason"].startswith(reason)
    assert fake_nvml.calls("nvmlShutdown") == 1, "NVML is released until the next retry"


async def test_visible_devices_selects_gpus_and_mig_instances(fake_nvml, make_sampler):
    fake_nvml.set([fake_gpu(0), fake_mig_gpu(1, instances=2), fake_gpu(2)])
    picked = f"2,{fake_uuid(1, 1)}"
    devices = (await make_sampler(visible_devices=picked).latest()).data["devices"]
    assert [d["uuid"] for d in devices] == [fake_uuid(2), fake_uuid(1, 1)]


def test_visible_devices_defaults_to_cuda_visible_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-1234,3")
    assert GpuSampler().visible_devices == "GPU-1234,3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert GpuSampler().visible_devices is None


def test_interval_below_the_floor_is_raised_with_a_warning():
    log = logging.getLogger("test-gpu-interval")
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    log.addHandler(handler)
    try:
        sampler = GpuSampler(interval=0.05, log=log)
    finally:
        log.removeHandler(handler)
    assert sampler.interval == 0.2
    assert any("below the minimum" in record.getMessage() for record in records)
    sampler.interval = 3
    assert sampler.interval == 3.0


async def test_disabled_sampler_never_touches_nvml(fake_nvml, make_sampler):
    sampler = make_sampler(enabled=False)
    data = (await sampler.latest()).data
    assert data["available"] is False
    assert "disabled" in data["reason"]
    assert fake_nvml.calls() == 0
    assert not any(t.name == THREAD_NAME for t in threading.enumerate())


async def test_history_keeps_recent_samples_per_device(fake_nvml, make_sampler):
    fake_nvml.set([fake_gpu(0, utilization_gpu=10), fake_mig_gpu(1, instances=1)])
    sampler = make_sampler(history_seconds=1.0)
    await sampler.latest()
    await wait_until(lambda: sampler.snapshot.sequence >= 4)
    fake_nvml.set([fake_gpu(0, utilization_gpu=80), fake_mig_gpu(1, instances=1)])
    await devices_when(sampler, lambda devices: devices[0]["utilization_gpu"] == 80)

    history = json.loads(sampler.history_body())
    assert history["interval"] == 0.2
    assert set(history["devices"]) == {fake_uuid(0), fake_uuid(1, 0)}
    gpu = history["devices"][fake_uuid(0)]
    assert len(gpu["timestamps"]) == len(gpu["utilization_gpu"]) == len(gpu["memory_used"]) >= 2
    assert gpu["timestamps"] == sorted(gpu["timestamps"])
    assert gpu["utilization_gpu"][-1] == 80
    assert set(gpu["memory_used"]) == {GIB}
    mig = history["devices"][fake_uuid(1, 0)]
    assert set(mig["utilization_gpu"]) == {None}

    # Only the last history_seconds are kept.
    await asyncio.sleep(1.5)
    history = json.loads(sampler.history_body())
    timestamps = history["devices"][fake_uuid(0)]["timestamps"]
    assert timestamps[-1] - timestamps[0] <= 1.0
    assert len(timestamps) <= 1.0 / 0.2 + 1
