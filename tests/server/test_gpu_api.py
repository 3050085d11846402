"""``GET jupyter-tk/api/gpus`` and ``.../history`` on a real jupyter_server with auth on.

The fake libnvidia-ml.so.1 is loaded into this process once (pynvml loads a library once per
process); each test writes its own GPU scenario before the server's sampler starts.
"""

import asyncio
import json
import os
import signal
import threading

import pytest
from tornado.httpclient import HTTPClientError

from tests.fakes.nvml import GIB, fake_gpu, fake_mig_gpu, fake_uuid
from tests.support.contract import GPU_DEVICE_KEYS, GPU_RESPONSE_KEYS, DenyJupyterTk
from tests.support.polling import wait_until


@pytest.fixture
def fake_nvml_devices():
    return [fake_gpu(0), fake_mig_gpu(1, instances=2)]


@pytest.fixture
def jp_server_config(jp_server_config, fake_nvml):
    return {**jp_server_config, "GpuSampler": {"interval": 0.2, "retry_interval": 30.0}}


async def get_json(jp_fetch, *path):
    response = await jp_fetch("jupyter-tk", "api", *path)
    assert response.code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.body)


async def test_gpus_follow_the_contract(server, jp_fetch, fake_nvml):
    data = await get_json(jp_fetch, "gpus")
    assert set(data) >= GPU_RESPONSE_KEYS
    assert data["available"] is True and data["reason"] is None
    assert data["driver_version"] == "550.54.15"
    assert data["cuda_driver_version"] == "12.4"
    assert isinstance(data["timestamp"], float)
    assert [d["uuid"] for d in data["devices"]] == [fake_uuid(0), fake_uuid(1, 0), fake_uuid(1, 1)]
    for device in data["devices"]:
        assert set(device) == GPU_DEVICE_KEYS
    # The server's IOLoop runs on this thread: NVML was called from the sampler thread only.
    assert fake_nvml.threads() and threading.get_native_id() not in fake_nvml.threads()
    gpu, mig, _ = data["devices"]
    assert (gpu["memory_total"], gpu["utilization_gpu"], gpu["power_limit"]) == (80 * GIB, 7, 400.0)
    assert (mig["mig"], mig["parent_uuid"], mig["utilization_gpu"]) == (True, fake_uuid(1), None)


async def test_history_lists_recent_samples_per_device(server, jp_fetch):
    await get_json(jp_fetch, "gpus")

    async def enough_history():
        history = await get_json(jp_fetch, "gpus", "history")
        series = history["devices"].get(fake_uuid(0), {"timestamps": []})
        return history if len(series["timestamps"]) >= 3 else None

    history = await wait_until(enough_history, timeout=15)
    series = history["devices"][fake_uuid(0)]
    assert history["interval"] == 0.2
    assert set(history["devices"]) == {fake_uuid(0), fake_uuid(1, 0), fake_uuid(1, 1)}
    assert set(series["utilization_gpu"]) == {7}
    assert set(series["memory_used"]) == {GIB}


@pytest.mark.parametrize("authorization", ["", "token not-the-token"])
@pytest.mark.parametrize("path", [("gpus",), ("gpus", "history")])
async def test_requests_without_a_valid_token_are_forbidden(
    server, jp_fetch, fake_nvml, authorization, path
):
    sampler = server.web_app.settings["jupyter_tk_gpu"]
    # The start-up sample, then a pause: nobody has asked yet.
    await wait_until(lambda: sampler.snapshot is not None and sampler.paused, timeout=15)
    calls = fake_nvml.calls()
    with pytest.raises(HTTPClientError) as failure:
        await jp_fetch("jupyter-tk", "api", *path, headers={"Authorization": authorization})
    assert failure.value.code == 403
    await asyncio.sleep(0.5)
    assert sampler.paused and fake_nvml.calls() == calls, "strangers do not wake the sampler"


class TestAuthorization:
    @pytest.fixture
    def jp_server_config(self, jp_server_config):
        server_app = {**jp_server_config["ServerApp"], "authorizer_class": DenyJupyterTk}
        return {**jp_server_config, "ServerApp": server_app}

    async def test_users_not_authorized_for_jupyter_tk_are_forbidden(self, server, jp_fetch):
        assert (await jp_fetch("api", "status")).code == 200
        for path in (("gpus",), ("gpus", "history")):
            with pytest.raises(HTTPClientError) as failure:
                await jp_fetch("jupyter-tk", "api", *path)
            assert failure.value.code == 403


class TestBaseUrl:
    @pytest.fixture
    def jp_base_url(self):
        return "/user/alice/"

    async def test_routes_live_under_the_base_url(self, server, jp_fetch, http_server_client):
        data = await get_json(jp_fetch, "gpus")
        assert data["available"] is True
        token = server.identity_provider.token
        outside = await http_server_client.fetch(
            "/jupyter-tk/api/gpus", headers={"Authorization": f"token {token}"}, raise_error=False
        )
        assert outside.code == 404


async def test_unavailable_nvml_answers_200_with_a_reason(fake_nvml, jp_fetch):
    # Without the start hook, the first request starts the sampler (after this config is set).
    fake_nvml.set([fake_gpu(0)], fail_init="no_permission")
    data = await get_json(jp_fetch, "gpus")
    assert data["available"] is False
    assert data["reason"] == "No permission to use the NVIDIA driver on this machine"
    assert data["devices"] == []
    history = await get_json(jp_fetch, "gpus", "history")
    assert history["devices"] == {}


async def test_processes_of_this_servers_kernels_carry_the_kernel_id(fake_nvml, server, jp_fetch):
    response = await jp_fetch("api", "kernels", method="POST", body=json.dumps({"name": "python3"}))
    kernel_id = json.loads(response.body)["id"]
    kernel = server.kernel_manager.get_kernel(kernel_id)
    kernel_pid = kernel.provisioner.pid
    client = kernel.client()
    client.start_channels()
    child_pid = None
    try:
        await client.wait_for_ready(timeout=60)
        reply = await client.execute(
            "import subprocess; child = subprocess.Popen(['sleep', '120'])",
            user_expressions={"pid": "child.pid"},
            reply=True,
            timeout=60,
        )
        child_pid = int(reply["content"]["user_expressions"]["pid"]["data"]["text/plain"])
        other_pid = os.getpid()  # this test process: not one of the server's kernels

        fake_nvml.set(
            [
                fake_gpu(
                    0,
                    processes=[
                        {"pid": kernel_pid, "used_memory": 2 * GIB},
                        {"pid": child_pid, "used_memory": GIB},
                        {"pid": other_pid, "used_memory": 5 * GIB},
                    ],
                )
            ]
        )

        async def processes_listed():
            data = await get_json(jp_fetch, "gpus")
            processes = {p["pid"]: p for p in data["devices"][0]["processes"]}
            return processes if kernel_pid in processes else None

        processes = await wait_until(processes_listed, timeout=15)
        assert processes[kernel_pid] == {
            "pid": kernel_pid,
            "used_memory": 2 * GIB,
            "kernel_id": kernel_id,
        }
        assert processes[child_pid]["kernel_id"] == kernel_id
        assert processes[other_pid]["kernel_id"] is None
    finally:
        client.stop_channels()
        if child_pid:
            os.kill(child_pid, signal.SIGTERM)
        await jp_fetch("api", "kernels", kernel_id, method="DELETE")
