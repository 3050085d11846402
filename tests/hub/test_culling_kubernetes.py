"""GPU idle culling on share/jupyterhub/kubernetes_config.py against the simulated Kubernetes API.

The simulated API binds pods (podIP 127.0.0.1) but runs nothing in them; here a small "kubelet"
runs each bound pod's container command, `jupyterhub-singleuser`, as a local process with the
pod's environment (the fake NVML library standing in for the pod's GPU) and ends it when the pod
is deleted. So a real server reports to the hub, the gpu-idle-culler stops it through the hub's
REST API, KubeSpawner deletes the pod and the picker shows the GPU free again.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.fakes.nvml import fake_config, fake_gpu, nvml_env
from tests.support.hub_process import free_hub_port, terminate
from tests.support.kube_hub import CatalogServer, KubeHub, SimulatedApiProcess
from tests.support.polling import wait_for
from tests.support.spawn_fixtures import CATALOG_ITEMS, GPU

TIMEOUT, WARNING = 12, 6
POD = "jupyter-alice"


class Kubelet:
    """Runs the container of every bound pod of the simulated API as a local process."""

    def __init__(self, sim: SimulatedApiProcess, workdir: Path, extra_env: dict[str, str]):
        self.sim, self.workdir, self.extra_env = sim, workdir, extra_env
        self.processes: dict[str, subprocess.Popen] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Kubelet:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(10)
        for process in self.processes.values():
            terminate(process, 10)

    def _run(self) -> None:
        while not self._stop.wait(0.3):
            try:
                pods = {pod["metadata"]["name"]: pod for pod in self.sim.pods()}
            except Exception:  # the API is stopping with the test
                continue
            for name, pod in pods.items():
                if name not in self.processes and pod["status"].get("podIP"):
                    try:
                        self.processes[name] = self._start(pod)
                    except Exception as error:  # shown by the test, not lost in this thread
                        self.errors.append(f"{name}: {error!r} {json.dumps(pod['spec'])}")
                        self.processes[name] = subprocess.Popen(["true"])
            for name in [name for name in self.processes if name not in pods]:
                terminate(self.processes.pop(name), 10)

    def _start(self, pod: dict) -> subprocess.Popen:
        (container,) = pod["spec"]["containers"]
        home = self.workdir / pod["metadata"]["name"]
        home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            **{item["name"]: item.get("value", "") for item in container.get("env", [])},
            **self.extra_env,
        }
        # No command: the image's own (Jupyter Docker Stacks start the single-user server).
        command = [*container.get("command", []), *container.get("args", [])]
        command = command or ["jupyterhub-singleuser"]
        command[0] = shutil.which(command[0], path=env["PATH"]) or command[0]
        log = open(home / "server.log", "ab")  # noqa: SIM115 (the process keeps it)
        return subprocess.Popen(
            [*command, "--allow-root"], cwd=home, env=env, stdout=log, stderr=subprocess.STDOUT
        )


class CullingKubeHub(KubeHub):
    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            JUPYTER_TK_GPU_IDLE_TIMEOUT=str(TIMEOUT),
            JUPYTER_TK_GPU_IDLE_WARNING=str(WARNING),
            JUPYTER_TK_CULL_EVERY="1",
        )
        return env


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("culling-kube")
    server_port = free_hub_port()
    nvml = nvml_env(fake_config([fake_gpu(0, utilization_gpu=0)]), workdir / "nvml.json")
    with (
        SimulatedApiProcess(workdir / "sim") as sim,
        CatalogServer(CATALOG_ITEMS) as catalog,
        CullingKubeHub(
            workdir / "hub",
            sim,
            catalog=catalog.url,
            extra_config=(
                f"c.KubeSpawner.port = {server_port}\n"
                # A real server needs longer than the harness's 8 s to answer the first time.
                "c.KubeSpawner.http_timeout = 60\n"
                "c.KubeSpawner.start_timeout = 60\n"
            ),
        ) as hub,
        Kubelet(sim, workdir / "pods", nvml) as kubelet,
    ):
        yield hub, sim
        assert kubelet.errors == []


def gpu_free(user, node: str = "gpu-1") -> int:
    (found,) = [n for n in user.resources()["nodes"] if n["name"] == node]
    return next(g for g in found["gpus"] if g["resource"] == GPU)["free"]


def test_an_idle_gpu_pod_is_deleted_and_the_picker_shows_its_gpu_free(cluster):
    hub, sim = cluster
    alice = hub.login("alice")
    free_before = gpu_free(alice)

    # Given alice's server on a GPU node, its pod running a real single-user server
    response = alice.submit_form(
        {
            "profile": "gpu-1",
            "image": "tk-jupyter-ml-gpu",
            "custom_image": "",
            "node": "gpu-1",
            "cpu": "4",
            "memory": "16Gi",
            "gpu_resource": GPU,
            "gpu_count": "1",
        }
    )
    assert response.status_code == 302, response.text[-2000:]
    alice.wait_ready(timeout=150)
    assert sim.pod(POD) is not None
    wait_for(lambda: gpu_free(alice) == free_before - 1, 30, "the picker did not count the GPU")

    # Then the server reports, gets its deadline, and is warned in the last seconds
    assert alice.open_lab().status_code == 200
    notice = wait_for(
        lambda: (
            (a := alice.server_api("activity").json())["gpu_idle"] and a["gpu_idle"]["warn"] and a
        ),
        TIMEOUT + 10,
        "no warning",
    )
    assert notice["gpu_idle"]["timeout_seconds"] == TIMEOUT

    # Then the hub stops it: the pod is deleted and the GPU is free in the picker again
    started = time.monotonic()
    wait_for(lambda: alice.server() is None, TIMEOUT + 30, "alice's server not stopped")
    sim.wait_for_pod(POD, gone=True, timeout=30)
    wait_for(lambda: gpu_free(alice) == free_before, 30, "the picker still counts the GPU")
    assert time.monotonic() - started < TIMEOUT + 30
    log = hub.log_path.read_text()
    assert "[gpu-idle-culler] Stopping alice/" in log
    # The general idle culler runs beside it, with the role that lets it list servers
    assert "200 GET /hub/api/users?state=[secret] (idle-culler@127.0.0.1)" in log
