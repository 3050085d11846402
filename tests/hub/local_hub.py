"""A real JupyterHub started from ``share/jupyterhub/local_config.py``, and a logged-in user of it.

Used by the local hub tests, the browser test and ``benchmarks/local_spawn.py``. The hub runs as
a subprocess with the fake NVML library on ``LD_LIBRARY_PATH``; spawned servers inherit it (and
``FAKE_NVML_CONFIG``, added to ``Spawner.env_keep`` by a config that loads local_config.py with
``load_subconfig`` exactly as an operator would).
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.fakes.nvml import fake_config, fake_gpu, fake_mig_gpu, nvml_env

REPO = Path(__file__).resolve().parents[2]
LOCAL_CONFIG = REPO / "share" / "jupyterhub" / "local_config.py"
PASSWORD = "local-hub-test-password"
_XSRF_IN_PAGE = re.compile(r'xsrf_token: "([^"]+)"')


def default_gpus() -> list[dict]:
    """Two whole A100s and one MIG-enabled A100 with two 1g.10gb instances."""
    return [fake_gpu(0), fake_gpu(1), fake_mig_gpu(2, instances=2)]


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_hub_port() -> int:
    """A port P with P, P+1 (proxy API) and P+81 (hub API) free, as local_config.py uses them."""
    for _ in range(200):
        port = random.randint(20000, 40000)
        if all(_port_free(p) for p in (port, port + 1, port + 81)):
            return port
    raise RuntimeError("no free port triple found")


class LocalHub:
    """Starts and stops `jupyterhub -f <config>` where the config loads local_config.py."""

    def __init__(
        self,
        workdir: Path,
        *,
        gpus: list[dict] | None = None,
        extra_config: str = "",
        port: int | None = None,
        load_local_config: bool = True,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_hub_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "hub.log"
        self.nvml_config_path = self.workdir / "nvml.json"
        self.nvml_env = nvml_env(fake_config(gpus or default_gpus()), self.nvml_config_path)
        self.config_path = self.workdir / "test_config.py"
        base = (
            f"load_subconfig({str(LOCAL_CONFIG)!r})\n"
            "# The fake NVML's config must reach the spawned servers too.\n"
            "c.Spawner.env_keep.append('FAKE_NVML_CONFIG')\n"
            "c.LocalInventory.refresh_interval = 1.0\n"
            if load_local_config
            else ""
        )
        self.config_path.write_text("c = get_config()\n" + base + extra_config)
        self.process: subprocess.Popen | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.nvml_env)
        env.pop("CUDA_VISIBLE_DEVICES", None)
        env.update(
            JUPYTER_TK_STATE_DIR=str(self.workdir / "state"),
            JUPYTER_TK_PORT=str(self.port),
            JUPYTER_TK_PASSWORD=PASSWORD,
            # Spawned servers write their runtime files here, not into the real home.
            HOME=str(self.workdir / "home"),
        )
        return env

    def start(self, timeout: float = 90) -> LocalHub:
        (self.workdir / "home").mkdir(exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config_path)],
            cwd=self.workdir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._log = log
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the hub exited with {self.process.returncode}:\n{self.tail()}")
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        raise TimeoutError(f"the hub did not answer within {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 60) -> None:
        """SIGTERM the hub (it stops its servers unless cleanup_servers is off) and wait."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self.process = None
        self._log.close()

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def login(self, name: str, password: str = PASSWORD) -> HubUser:
        return HubUser(self, name, password)


class HubUser:
    """A browser-like session of one user: cookies, XSRF token, the spawn form."""

    def __init__(self, hub: LocalHub, name: str, password: str) -> None:
        self.hub = hub
        self.name = name
        self.session = requests.Session()
        self.session.get(f"{hub.url}/hub/login", timeout=30)
        response = self.session.post(
            f"{hub.url}/hub/login",
            data={"username": name, "password": password, "_xsrf": self.session.cookies["_xsrf"]},
            allow_redirects=False,
            timeout=30,
        )
        if response.status_code != 302:
            raise RuntimeError(f"login of {name} failed: HTTP {response.status_code}")
        self.xsrf = self._xsrf_from(self.get("/hub/home"))

    @staticmethod
    def _xsrf_from(response: requests.Response) -> str:
        match = _XSRF_IN_PAGE.search(response.text)
        if match is None:
            raise RuntimeError(f"no XSRF token in {response.url}")
        return match.group(1)

    def get(self, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        return self.session.get(f"{self.hub.url}{path}", **kwargs)

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        headers = {"X-XSRFToken": self.xsrf, **kwargs.pop("headers", {})}
        return self.session.request(method, f"{self.hub.url}{path}", headers=headers, **kwargs)

    def resources(self) -> dict:
        response = self.api("GET", "/hub/api/tk/resources")
        response.raise_for_status()
        return response.json()

    def submit_form(self, fields: dict[str, str]) -> requests.Response:
        """POST the spawn form as the browser does; 302 to spawn-pending when accepted."""
        return self.post_form(self.open_form(), fields)

    def open_form(self) -> str:
        """GET the spawn form; returns the XSRF token its POST needs."""
        return self._xsrf_from(self.get("/hub/spawn"))

    def post_form(self, xsrf: str, fields: dict[str, str]) -> requests.Response:
        return self.session.post(
            f"{self.hub.url}/hub/spawn?_xsrf={xsrf}",
            data=fields,
            allow_redirects=False,
            timeout=60,
        )

    def server(self) -> dict | None:
        model = self.api("GET", "/hub/api/user").json()
        return model.get("servers", {}).get("")

    def wait_ready(self, timeout: float = 150, poll: float = 0.25) -> dict:
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            server = self.server()
            if server and server.get("ready"):
                return server
            if server is None and time.monotonic() - started > 5:
                # Neither pending nor running: the spawn failed; the hub log says why.
                raise RuntimeError(f"{self.name}'s server failed:\n{self.hub.tail()}")
            time.sleep(poll)
        raise TimeoutError(f"{self.name}'s server not ready in {timeout}s:\n{self.hub.tail()}")

    def open_lab(self) -> requests.Response:
        """Open JupyterLab (follows the OAuth redirects, so the server's cookie gets set)."""
        return self.get(f"/user/{self.name}/lab", timeout=60)

    def server_api(self, path: str) -> requests.Response:
        return self.get(f"/user/{self.name}/jupyter-tk/api/{path}")

    def stop_server(self, timeout: float = 90) -> None:
        response = self.api("DELETE", f"/hub/api/users/{self.name}/server", timeout=timeout)
        if response.status_code not in (202, 204):
            raise RuntimeError(f"stopping {self.name}'s server: HTTP {response.status_code}")
        deadline = time.monotonic() + timeout
        while self.server() is not None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}'s server did not stop in {timeout}s")
            time.sleep(0.25)


def custom_form(cpu: str, memory: str, gpu_resource: str = "", gpu_count: str = "0") -> dict:
    """The form fields of a free ("custom") choice on this machine."""
    return {
        "profile": "custom",
        "image": "tk-jupyter-ml-gpu",
        "custom_image": "",
        "node": "",
        "cpu": cpu,
        "memory": memory,
        "gpu_resource": gpu_resource,
        "gpu_count": gpu_count,
    }
