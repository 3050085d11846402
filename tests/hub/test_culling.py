"""Idle culling that understands GPUs, on a real hub from share/jupyterhub/local_config.py.

Timeouts in seconds: a server holding a GPU is stopped after 10 s without work and warned 6 s
before. Real single-user servers (with the fake NVML library) report their work; the
gpu-idle-culler service stops through the hub's REST API, and the local spawner gives the GPU back.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import psutil
import pytest
import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from tests.fakes.nvml import fake_config, fake_gpu, write_nvml_config
from tests.support.local_hub import LocalHub, custom_form
from tests.support.polling import wait_for

GPU = "nvidia.com/gpu"
GPU_IDLE_TIMEOUT = 10
GPU_IDLE_WARNING = 6


def idle_gpus(busy: dict[int, int] | None = None) -> list[dict]:
    """Two whole GPUs, computing nothing unless `busy` gives an index a utilization (percent)."""
    busy = busy or {}
    return [fake_gpu(index, utilization_gpu=busy.get(index, 0)) for index in (0, 1)]


class CullingHub(LocalHub):
    """The local hub with the GPU idle rule in seconds, checked every second."""

    def __init__(self, workdir, *, timeout=GPU_IDLE_TIMEOUT, warning=GPU_IDLE_WARNING, **kwargs):
        super().__init__(workdir, **kwargs)
        self.gpu_idle_timeout, self.gpu_idle_warning = timeout, warning

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            JUPYTER_TK_GPU_IDLE_TIMEOUT=str(self.gpu_idle_timeout),
            JUPYTER_TK_GPU_IDLE_WARNING=str(self.gpu_idle_warning),
            JUPYTER_TK_CULL_EVERY="1",
        )
        return env


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    with CullingHub(
        tmp_path_factory.mktemp("culling-hub"),
        gpus=idle_gpus(),
        extra_config="c.Spawner.poll_interval = 2\n",
    ) as hub:
        yield hub


def gpu_holders(user) -> dict[str, list[str]]:
    node = user.resources()["nodes"][0]
    kind = next(g for g in node["gpus"] if g["resource"] == GPU)
    return {device["uuid"]: device["taken_by"] for device in kind["devices"]}


def start_gpu_server(hub, name: str):
    user = hub.login(name)
    response = user.submit_form(custom_form("0.5", "1Gi", GPU, "1"))
    assert response.status_code == 302, response.text[-2000:]
    user.wait_ready()
    # Lab's cookie for the server's own API (see NOTES: one HTML page first).
    assert user.open_lab().status_code == 200
    return user


def activity(user) -> dict:
    response = user.server_api("activity")
    response.raise_for_status()
    return response.json()


def test_an_idle_gpu_server_is_warned_then_stopped_and_gives_its_gpu_back(hub):
    # Given alice's server holding a GPU that computes nothing
    alice = start_gpu_server(hub, "alice")
    held = [uuid for uuid, users in gpu_holders(alice).items() if users == ["alice"]]
    assert len(held) == 1
    server_pid = next(
        p.pid
        for p in psutil.Process(hub.process.pid).children()
        if "alice" in p.environ().get("JUPYTERHUB_USER", "")
    )

    # Then Lab's endpoint first shows the deadline, without a warning yet
    first = activity(alice)
    assert first["reporting"] is True and first["gpu_in_use"] is False
    assert first["gpu_idle"]["timeout_seconds"] == GPU_IDLE_TIMEOUT

    # Then, in the last GPU_IDLE_WARNING seconds, a warning with the time left
    warned = wait_for(
        lambda: (a := activity(alice))["gpu_idle"]["warn"] and a,
        GPU_IDLE_TIMEOUT + 5,
        "no warning",
    )
    assert 0 < warned["gpu_idle"]["stop_in_seconds"] <= GPU_IDLE_WARNING
    assert alice.server() is not None

    # Then the server is stopped, its process ends and its GPU is free again
    wait_for(lambda: alice.server() is None, GPU_IDLE_TIMEOUT + 15, "alice's server not stopped")
    wait_for(lambda: not psutil.pid_exists(server_pid), 30, "alice's server process still runs")
    assert gpu_holders(alice)[held[0]] == []
    requested = alice.resources()["nodes"][0]["requested"]
    assert requested.get("cpu", 0) == 0 and requested.get("memory", 0) == 0, requested
    log = hub.log_path.read_text()
    assert "[gpu-idle-culler] Stopping alice/: holds 1 GPU(s) and did no work" in log


def execute_in_new_kernel(user, token: str, code: str) -> str:
    """Start a kernel on `user`'s server and run `code` without waiting for it; the kernel id."""
    base = f"{user.hub.url}/user/{user.name}"
    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(
        f"{base}/api/kernels", json={"name": "python3"}, headers=headers, timeout=60
    )
    kernel.raise_for_status()
    kernel_id = kernel.json()["id"]

    async def run() -> None:
        url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
        connection = await websocket_connect(HTTPRequest(url, headers=headers))
        session = uuid.uuid4().hex
        message = {
            "header": {
                "msg_id": uuid.uuid4().hex,
                "username": user.name,
                "session": session,
                "msg_type": "execute_request",
                "version": "5.3",
            },
            "parent_header": {},
            "metadata": {},
            "content": {
                "code": code,
                "silent": False,
                "store_history": False,
                "user_expressions": {},
                "allow_stdin": False,
                "stop_on_error": True,
            },
            "channel": "shell",
            "buffers": [],
        }
        connection.write_message(json.dumps(message))
        # Once the kernel says it is busy the code runs; leaving does not interrupt it.
        while True:
            reply = json.loads(await asyncio.wait_for(connection.read_message(), 60))
            if reply["msg_type"] == "status" and reply["content"]["execution_state"] == "busy":
                break
        connection.close()

    asyncio.run(run())
    return kernel_id


def test_servers_that_compute_are_kept_on_the_kernel_or_on_the_gpu(hub):
    # Given bob's kernel computing on the CPU and carol's GPU computing
    bob = start_gpu_server(hub, "bob")
    carol = start_gpu_server(hub, "carol")
    token = bob.api(
        "POST", "/hub/api/users/bob/tokens", json={"scopes": ["access:servers!user=bob"]}
    ).json()["token"]
    execute_in_new_kernel(bob, token, "import time\ntime.sleep(120)")
    holders = gpu_holders(carol)
    carol_gpu = next(uuid for uuid, users in holders.items() if users == ["carol"])
    busy = {i: 90 for i, gpu in enumerate(idle_gpus()) if gpu["uuid"] == carol_gpu}
    write_nvml_config(fake_config(idle_gpus(busy)), hub.nvml_config_path)

    # When more than the GPU idle timeout passes
    time.sleep(GPU_IDLE_TIMEOUT + 4)

    # Then both still run, say why, and are not warned
    bob_activity, carol_activity = activity(bob), activity(carol)
    assert bob_activity["kernels_busy"] is True
    assert carol_activity["gpu_in_use"] is True and carol_activity["kernels_busy"] is False
    for user, seen in ((bob, bob_activity), (carol, carol_activity)):
        assert user.server() is not None
        assert seen["gpu_idle"]["warn"] is False
        assert seen["seconds_since_work"] < 5
    # And users may not list everyone's deadlines (the culler service may)
    assert bob.api("GET", "/hub/api/tk/activity").status_code == 403

    # And the work counts as activity for the hub's idle culler too
    model = bob.api("GET", "/hub/api/users/bob").json()
    last = model["servers"][""]["last_activity"]
    assert time.time() - _epoch(last) < 10

    # When carol's GPU goes idle, her server is stopped; bob's computing server stays
    write_nvml_config(fake_config(idle_gpus()), hub.nvml_config_path)
    wait_for(lambda: carol.server() is None, GPU_IDLE_TIMEOUT + 15, "carol's server not stopped")
    assert bob.server() is not None
    bob.stop_server()


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_report_for_someone_elses_server_or_a_bad_report_is_refused(hub):
    erin = hub.login("erin")
    token = erin.api("POST", "/hub/api/users/erin/tokens", json={}).json()["token"]
    headers = {"Authorization": f"token {token}"}

    def report(user: str, **kwargs) -> requests.Response:
        url = f"{hub.url}/hub/api/tk/activity/{user}"
        return requests.post(url, headers=headers, timeout=10, **kwargs)

    # Another user's server: as if it did not exist
    assert report("alice", json={"idle_seconds": 0}).status_code == 404
    # Bad bodies: 400 with what is expected, before anything is looked up
    for body in (b"nonsense", b"{}", b'{"idle_seconds": -1}', b'{"idle_seconds": "soon"}'):
        response = report("erin", data=body)
        assert response.status_code == 400, body
        assert "idle_seconds" in response.json()["message"]
    # Her own server that is not running: 404, nothing recorded
    assert report("erin", json={"idle_seconds": 0}).status_code == 404
