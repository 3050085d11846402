"""Which kernel uses a GPU when NVML's process ids are not this server's (host pids in a pod).

Real kernels (ipykernel, started by a real jupyter_server) open files named like the GPUs' device
files in a folder of their own (``GpuSampler.device_directory``); the fake NVML lists processes
whose ids cannot exist here, as older drivers do inside containers.
"""

import json
import os
import signal

import pytest

from tests.fakes.nvml import GIB, fake_gpu, fake_mig_gpu, fake_uuid, foreign_pid
from tests.support.polling import wait_until


@pytest.fixture
def device_directory(tmp_path):
    folder = tmp_path / "dev"
    folder.mkdir()
    for minor in range(2):
        (folder / f"nvidia{minor}").write_bytes(b"")
    return folder


@pytest.fixture
def jp_server_config(jp_server_config, fake_nvml, device_directory):
    return {
        **jp_server_config,
        "GpuSampler": {
            "interval": 0.2,
            "retry_interval": 30.0,
            "device_directory": str(device_directory),
        },
    }


class Kernel:
    """A kernel of the server under test, and a way to run code in it."""

    def __init__(self, server, jp_fetch):
        self.server = server
        self.jp_fetch = jp_fetch
        self.id = None
        self.client = None

    async def start(self):
        response = await self.jp_fetch(
            "api", "kernels", method="POST", body=json.dumps({"name": "python3"})
        )
        self.id = json.loads(response.body)["id"]
        kernel = self.server.kernel_manager.get_kernel(self.id)
        self.pid = kernel.provisioner.pid
        self.client = kernel.client()
        self.client.start_channels()
        await self.client.wait_for_ready(timeout=60)
        return self

    async def run(self, code, **expressions):
        reply = await self.client.execute(
            code, user_expressions=expressions, reply=True, timeout=60
        )
        assert reply["content"]["status"] == "ok", reply["content"]
        values = reply["content"]["user_expressions"]
        return {name: values[name]["data"]["text/plain"] for name in expressions}

    async def stop(self):
        if self.client is not None:
            self.client.stop_channels()
        if self.id is not None:
            await self.jp_fetch("api", "kernels", self.id, method="DELETE")


@pytest.fixture
async def kernels(server, jp_fetch):
    started = []

    async def start():
        kernel = await Kernel(server, jp_fetch).start()
        started.append(kernel)
        return kernel

    yield start
    for kernel in started:
        await kernel.stop()


async def devices_when(jp_fetch, predicate):
    """The devices of the first ``GET jupyter-tk/api/gpus`` for which ``predicate`` holds."""

    async def check():
        response = await jp_fetch("jupyter-tk", "api", "gpus")
        devices = json.loads(response.body)["devices"]
        return devices if predicate(devices) else None

    return await wait_until(check, timeout=20)


def processes_are(*pids):
    def predicate(devices):
        return [[p["pid"] for p in device["processes"]] for device in devices] == list(pids)

    return predicate


async def test_host_pids_go_to_the_one_kernel_holding_the_gpus_device_file(
    fake_nvml, kernels, jp_fetch, device_directory
):
    kernel = await kernels()
    # The kernel holds GPU 0's device file, and so does a child it forked with the descriptor.
    child = await kernel.run(
        f"import subprocess; gpu = open({str(device_directory / 'nvidia0')!r}, 'rb'); "
        "child = subprocess.Popen(['sleep', '120'], pass_fds=[gpu.fileno()])",
        pid="child.pid",
    )
    child_pid = int(child["pid"])
    try:
        on_gpu0, on_gpu1 = foreign_pid(0), foreign_pid(1)
        fake_nvml.set(
            [
                fake_gpu(0, processes=[{"pid": on_gpu0, "used_memory": 2 * GIB}]),
                fake_gpu(1, processes=[{"pid": on_gpu1, "used_memory": GIB}]),
            ]
        )
        gpu0, gpu1 = await devices_when(jp_fetch, processes_are([on_gpu0], [on_gpu1]))

        assert gpu0["attribution"] == "device-file"
        assert gpu0["processes"] == [
            {"pid": on_gpu0, "used_memory": 2 * GIB, "kernel_id": kernel.id}
        ]
        assert gpu0["kernels"] == [
            {
                "kernel_id": kernel.id,
                "pids": sorted([kernel.pid, child_pid]),
                "used_memory": 2 * GIB,
            }
        ]
        # Nobody here holds GPU 1's file: its process is nobody's here, never GPU 0's kernel.
        assert gpu1["attribution"] == "device-file"
        assert gpu1["processes"] == [{"pid": on_gpu1, "used_memory": GIB, "kernel_id": None}]
        assert gpu1["kernels"] == []
    finally:
        os.kill(child_pid, signal.SIGTERM)


async def test_when_several_could_own_them_the_kernels_are_listed_and_nobody_gets_a_guess(
    fake_nvml, kernels, jp_fetch, device_directory
):
    first, second = await kernels(), await kernels()
    for kernel in (first, second):
        await kernel.run(f"gpu = open({str(device_directory / 'nvidia0')!r}, 'rb')")
    fake_nvml.set(
        [fake_gpu(0, processes=[{"pid": foreign_pid(0), "used_memory": 3 * GIB}]), fake_gpu(1)]
    )
    gpu0, _ = await devices_when(jp_fetch, processes_are([foreign_pid(0)], []))
    assert gpu0["attribution"] == "device-file"
    assert gpu0["processes"][0]["kernel_id"] is None
    assert sorted(gpu0["kernels"], key=lambda k: k["pids"]) == sorted(
        [
            {"kernel_id": first.id, "pids": [first.pid], "used_memory": None},
            {"kernel_id": second.id, "pids": [second.pid], "used_memory": None},
        ],
        key=lambda k: k["pids"],
    )

    # One holder but two NVML processes (another pod's may be one of them): still no guess.
    await second.run("gpu.close()")
    fake_nvml.set(
        [
            fake_gpu(
                0,
                processes=[
                    {"pid": foreign_pid(0), "used_memory": 3 * GIB},
                    {"pid": foreign_pid(1), "used_memory": GIB},
                ],
            ),
            fake_gpu(1),
        ]
    )
    gpu0, _ = await devices_when(
        jp_fetch,
        lambda devices: len(devices[0]["processes"]) == 2 and len(devices[0]["kernels"]) == 1,
    )
    assert [p["kernel_id"] for p in gpu0["processes"]] == [None, None]
    assert gpu0["kernels"] == [{"kernel_id": first.id, "pids": [first.pid], "used_memory": None}]


async def test_pids_of_this_namespace_are_matched_exactly(fake_nvml, kernels, jp_fetch):
    kernel = await kernels()
    other = os.getpid()  # this test process: here, but no kernel
    fake_nvml.set(
        [
            fake_gpu(
                0,
                processes=[
                    {"pid": kernel.pid, "used_memory": 2 * GIB},
                    {"pid": other, "used_memory": GIB},
                ],
            ),
            fake_gpu(1),
        ]
    )
    gpu0, gpu1 = await devices_when(jp_fetch, processes_are([kernel.pid, other], []))
    assert gpu0["attribution"] == "pid" and gpu1["attribution"] == "pid"
    assert [p["kernel_id"] for p in gpu0["processes"]] == [kernel.id, None]
    assert gpu0["kernels"] == [
        {"kernel_id": kernel.id, "pids": [kernel.pid], "used_memory": 2 * GIB}
    ]


class TestMig:
    @pytest.fixture
    def fake_nvml_devices(self):
        return [fake_mig_gpu(0, instances=2)]

    async def test_mig_instances_sharing_their_gpus_device_file_are_not_guessed(
        self, fake_nvml, kernels, jp_fetch, device_directory
    ):
        kernel = await kernels()
        await kernel.run(f"gpu = open({str(device_directory / 'nvidia0')!r}, 'rb')")
        gpu = fake_mig_gpu(0, instances=2)
        gpu["mig"][1]["processes"] = [{"pid": foreign_pid(0), "used_memory": GIB}]
        fake_nvml.set([gpu])
        _, second = await devices_when(jp_fetch, processes_are([], [foreign_pid(0)]))
        assert second["uuid"] == fake_uuid(0, 1)
        # Both instances are shown and both live behind /dev/nvidia0: it cannot tell them apart.
        assert second["attribution"] is None
        assert second["processes"][0]["kernel_id"] is None and second["kernels"] == []


class TestOneMigInstance:
    @pytest.fixture
    def fake_nvml_devices(self):
        return [fake_mig_gpu(0, instances=2)]

    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        sampler = {**jp_server_config["GpuSampler"], "visible_devices": fake_uuid(0, 1)}
        return {**jp_server_config, "GpuSampler": sampler}

    async def test_the_only_instance_shown_is_told_apart_by_its_gpus_device_file(
        self, fake_nvml, kernels, jp_fetch, device_directory
    ):
        kernel = await kernels()
        await kernel.run(f"gpu = open({str(device_directory / 'nvidia0')!r}, 'rb')")
        gpu = fake_mig_gpu(0, instances=2)
        gpu["mig"][1]["processes"] = [{"pid": foreign_pid(0), "used_memory": GIB}]
        fake_nvml.set([gpu])
        (instance,) = await devices_when(jp_fetch, processes_are([foreign_pid(0)]))
        assert instance["uuid"] == fake_uuid(0, 1)
        assert instance["attribution"] == "device-file"
        assert instance["processes"][0]["kernel_id"] == kernel.id
