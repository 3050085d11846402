"""Checks on real NVIDIA GPUs (marker ``real_gpu``); skipped without a real NVML.

Run them with ``bash .ci/gpu-check`` (docs/gpu-checks.md). "Real" means the driver's
``libnvidia-ml.so.1``, not the fake one in tests/fakes, answers ``nvmlInit`` and shows at least
one GPU. The probe runs in a child process, so this pytest process never loads any NVML itself.
"""

from __future__ import annotations

import csv
import functools
import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from tests.fakes.nvml import BUILD_DIR
from tests.support.hub_process import ChildProcess, free_hub_port

REPO = Path(__file__).resolve().parents[2]
MIB = 1 << 20
# What the driver's library says about itself, from a child with no fake on its path.
PROBE = """
import json, pynvml
pynvml.nvmlInit()
count = pynvml.nvmlDeviceGetCount()
with open("/proc/self/maps") as maps:
    paths = {line.split()[-1] for line in maps if "libnvidia-ml" in line}
print(json.dumps({"count": count, "library": sorted(paths)}))
"""


def real_gpu_env(**extra: str) -> dict[str, str]:
    """This environment without anything that would load the fake NVML or hide GPUs."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("FAKE_NVML_CONFIG", "CUDA_VISIBLE_DEVICES")
    }
    fake = str(BUILD_DIR)
    folders = [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p and not p.startswith(fake)]
    if folders:
        env["LD_LIBRARY_PATH"] = ":".join(folders)
    else:
        env.pop("LD_LIBRARY_PATH", None)
    env.update(extra)
    return env


@functools.cache
def real_nvml() -> tuple[int, str | None]:
    """(number of GPUs, None) on a machine with a real driver, else (0, why not)."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=real_gpu_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        return 0, f"no real NVML here ({last})"
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    if any(path.startswith(str(BUILD_DIR)) for path in facts["library"]):
        return 0, "the fake NVML library is loaded, not a driver's"
    if facts["count"] == 0:
        return 0, "the NVIDIA driver shows no GPU"
    return facts["count"], None


def pytest_collection_modifyitems(config, items):
    """Skip the ``real_gpu`` tests before any of their fixtures starts a server."""
    marked = [item for item in items if item.get_closest_marker("real_gpu") is not None]
    if not marked:
        return
    _, reason = real_nvml()
    if reason is not None:
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=reason))


@functools.cache
def torch_available() -> bool:
    """Whether this Python can run CUDA through PyTorch (the kernels run this Python)."""
    probe = "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"
    result = subprocess.run(
        [sys.executable, "-c", probe], env=real_gpu_env(), capture_output=True, timeout=120
    )
    return result.returncode == 0


def nvidia_smi(query: str, fields: list[str]) -> list[dict[str, str | None]]:
    """Rows of ``nvidia-smi --query-<query>=<fields>``; "[N/A]"-like values become None."""
    command = shutil.which("nvidia-smi")
    if command is None:
        pytest.skip("nvidia-smi is not on PATH")
    output = subprocess.run(
        [command, f"--query-{query}={','.join(fields)}", "--format=csv,noheader,nounits"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = []
    for values in csv.reader(io.StringIO(output), skipinitialspace=True):
        if not values:
            continue
        row = {}
        for field, value in zip(fields, values, strict=True):
            value = value.strip()
            row[field] = None if value.startswith("[") or value in ("N/A", "") else value
        rows.append(row)
    return rows


class JupyterServer(ChildProcess):
    """``jupyter server`` with jupyter-tk, token auth and a base_url, on the machine's GPUs."""

    def __init__(self, workdir: Path, *, env: dict[str, str] | None = None):
        super().__init__(workdir, "server.log")
        self.port = free_hub_port()
        self.token = os.urandom(16).hex()
        self.base_url = "/user/gpu-check/"
        self.url = f"http://127.0.0.1:{self.port}{self.base_url}"
        self.runtime = self.workdir / "runtime"
        self._env = env or {}

    def start(self, timeout: float = 90) -> JupyterServer:
        root = self.workdir / "root"
        root.mkdir(exist_ok=True)
        env = real_gpu_env(
            JUPYTER_CONFIG_DIR=str(self.workdir / "config"),
            JUPYTER_DATA_DIR=str(self.workdir / "data"),
            JUPYTER_RUNTIME_DIR=str(self.runtime),
            **self._env,
        )
        command = [
            sys.executable,
            "-m",
            "jupyter_server",
            f"--port={self.port}",
            "--ip=127.0.0.1",
            "--no-browser",
            "--allow-root",
            f"--IdentityProvider.token={self.token}",
            f"--ServerApp.base_url={self.base_url}",
            "--ServerApp.allow_unauthenticated_access=False",
            '--ServerApp.jpserver_extensions={"jupyter_tk": True}',
            "--GpuSampler.interval=0.5",
            f"--ServerApp.root_dir={root}",
        ]
        process = self._spawn(command, cwd=self.workdir, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._give_up(RuntimeError, f"the server exited with {process.returncode}")
            try:
                if requests.get(f"{self.url}api/status", headers=self.headers, timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self._give_up(TimeoutError, f"the server did not answer within {timeout}s")

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.token}"}

    def api(self, path: str, method: str = "GET", body: dict | None = None) -> dict:
        response = requests.request(
            method, f"{self.url}{path}", headers=self.headers, json=body, timeout=60
        )
        response.raise_for_status()
        return response.json() if response.content else {}

    def gpus(self) -> dict:
        return self.api("jupyter-tk/api/gpus")
