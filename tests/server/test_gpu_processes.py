"""GPU scenarios that need a fresh process: no library, a library lacking functions, the
environment's CUDA_VISIBLE_DEVICES, and a real ``jupyter server`` child process.

pynvml loads its library once per process, so each scenario runs in a child whose
``LD_LIBRARY_PATH`` decides which libnvidia-ml.so.1 (if any) it finds.
"""

import ctypes.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.fakes.nvml import (
    GIB,
    build_fake_nvml,
    fake_config,
    fake_gpu,
    fake_mig_gpu,
    fake_uuid,
    nvml_env,
    write_nvml_config,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE_IN_CHILD = """
import asyncio, json, sys
from jupyter_tk.server.gpu.sampler import GpuSampler

async def main():
    sampler = GpuSampler(**json.loads(sys.argv[1]))
    try:
        print(json.dumps((await sampler.latest()).data))
    finally:
        await sampler.close()

asyncio.run(main())
"""
# Variables of this test process that would leak a GPU setup into a child.
GPU_ENV = ("FAKE_NVML_CONFIG", "CUDA_VISIBLE_DEVICES", "LD_LIBRARY_PATH")


def child_env(**extra):
    env = {key: value for key, value in os.environ.items() if key not in GPU_ENV}
    env.update(extra)
    return env


def sample_in_child(env, **traits):
    result = subprocess.run(
        [sys.executable, "-c", SAMPLE_IN_CHILD, json.dumps(traits)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    ctypes.util.find_library("nvidia-ml") is not None,
    reason="a real NVIDIA driver library is installed: 'no library' cannot be simulated here",
)
def test_without_the_library_the_answer_is_unavailable_with_a_reason(tmp_path):
    empty = tmp_path / "no-nvml"
    empty.mkdir()
    data = sample_in_child(child_env(LD_LIBRARY_PATH=str(empty)))
    assert data["available"] is False
    assert "libnvidia-ml.so.1" in data["reason"]
    assert data["devices"] == []
    assert data["driver_version"] is None


def test_functions_the_driver_lacks_become_null_or_use_the_older_call(tmp_path):
    omitted = [
        "nvmlDeviceGetPowerUsage",  # no other way: null
        "nvmlDeviceGetTemperatureV",  # falls back to nvmlDeviceGetTemperature
        "nvmlDeviceGetMemoryInfo_v2",  # falls back to v1 (which counts reserved memory as used)
        "nvmlDeviceGetGraphicsRunningProcesses_v3",  # compute processes still listed
    ]
    folder = build_fake_nvml(omit=omitted)
    config = fake_config(
        [
            fake_gpu(
                0,
                memory_used=2 * GIB,
                memory_reserved=GIB,
                temperature=66,
                processes=[{"pid": 31337, "used_memory": GIB}],
            )
        ]
    )
    path = write_nvml_config(config, tmp_path / "nvml.json")
    data = sample_in_child(child_env(LD_LIBRARY_PATH=str(folder), FAKE_NVML_CONFIG=str(path)))

    (device,) = data["devices"]
    assert data["available"] is True
    assert device["error"] is None
    assert device["power_usage"] is None
    assert device["power_limit"] == 400.0
    assert device["temperature"] == 66
    assert device["memory_used"] == 3 * GIB
    assert device["processes"] == [{"pid": 31337, "used_memory": GIB, "kernel_id": None}]


@pytest.mark.parametrize(
    ("cuda_visible_devices", "expected"),
    [
        (f"{fake_uuid(2)},0", [fake_uuid(2), fake_uuid(0)]),
        (fake_uuid(1, 1), [fake_uuid(1, 1)]),
        ("1", [fake_uuid(1, 0), fake_uuid(1, 1)]),
        ("0,NoDevFiles,2", [fake_uuid(0)]),
    ],
)
def test_cuda_visible_devices_of_the_environment_limits_the_devices(
    tmp_path, cuda_visible_devices, expected
):
    config = fake_config([fake_gpu(0), fake_mig_gpu(1, instances=2), fake_gpu(2)])
    env = child_env(CUDA_VISIBLE_DEVICES=cuda_visible_devices)
    env.update(nvml_env(config, tmp_path / "nvml.json"))
    data = sample_in_child(env)
    assert [device["uuid"] for device in data["devices"]] == expected


def test_empty_cuda_visible_devices_means_no_gpu(tmp_path):
    env = child_env(CUDA_VISIBLE_DEVICES="")
    env.update(nvml_env(fake_config([fake_gpu(0)]), tmp_path / "nvml.json"))
    data = sample_in_child(env)
    assert data["available"] is False
    assert "CUDA_VISIBLE_DEVICES=''" in data["reason"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_real_server_process_serves_its_own_gpus(tmp_path):
    """A `jupyter server` child with the fake NVML, a base_url and CUDA_VISIBLE_DEVICES."""
    config = fake_config([fake_gpu(0), fake_gpu(1, name="NVIDIA L4"), fake_gpu(2)])
    env = child_env(
        CUDA_VISIBLE_DEVICES="1",
        JUPYTER_CONFIG_DIR=str(tmp_path / "config"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
    )
    env.update(nvml_env(config, tmp_path / "nvml.json"))
    port, token = free_port(), "gpu-test-token"
    root = tmp_path / "root"
    root.mkdir()
    command = [
        sys.executable,
        "-m",
        "jupyter_server",
        f"--port={port}",
        "--ip=127.0.0.1",
        "--no-browser",
        "--allow-root",
        f"--IdentityProvider.token={token}",
        "--ServerApp.base_url=/user/bob/",
        "--ServerApp.allow_unauthenticated_access=False",
        '--ServerApp.jpserver_extensions={"jupyter_tk": True}',
        "--GpuSampler.interval=0.5",
        f"--ServerApp.root_dir={root}",
    ]
    log = (tmp_path / "server.log").open("w")
    server = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/user/bob/jupyter-tk/api/gpus"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
                with urllib.request.urlopen(request, timeout=5) as response:
                    data = json.loads(response.read())
                break
            except (urllib.error.URLError, ConnectionError):
                assert server.poll() is None, (tmp_path / "server.log").read_text()
                assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
                time.sleep(0.25)
        assert data["available"] is True
        assert [(d["index"], d["name"]) for d in data["devices"]] == [(1, "NVIDIA L4")]

        with pytest.raises(urllib.error.HTTPError) as failure:
            urllib.request.urlopen(url, timeout=5)
        assert failure.value.code == 403
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
