"""A real JupyterHub on ``share/jupyterhub/kubernetes_config.py`` against the simulated API.

Two subprocesses: the simulated Kubernetes API (``python -m tests.fakes.kubernetes``) and
``jupyterhub -f test_config.py``, where the test config ``load_subconfig``s the shared
Kubernetes config exactly as an operator would and adds test-only settings (dummy login,
groups, ports, a database in the work folder). Used by the hub tests, the browser test and
``benchmarks/spawn_form.py``.
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import requests
import yaml

from tests.hub.local_hub import HubUser, free_hub_port
from tests.hub.spawn_fixtures import POLICY

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_CONFIG = REPO / "share" / "jupyterhub" / "kubernetes_config.py"
NAMESPACE = "default"
GROUPS = {"gpu-lab": {"users": ["alice"]}, "students": {"users": ["bob"]}}

__all__ = ["CatalogServer", "HubUser", "KubeHub", "SimulatedApiProcess"]


def _terminate(process: subprocess.Popen, timeout: float = 30) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class SimulatedApiProcess:
    """``python -m tests.fakes.kubernetes`` with a kubeconfig; talked to over plain HTTP."""

    def __init__(self, workdir: Path, cluster: str = "small", extra_args: tuple = ()) -> None:
        self.workdir = Path(workdir)
        self.kubeconfig = self.workdir / "kubeconfig"
        self.cluster = cluster
        self.extra_args = list(extra_args)
        self.url = ""
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> SimulatedApiProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakes.kubernetes",
                "--cluster",
                self.cluster,
                "--kubeconfig",
                str(self.kubeconfig),
                *self.extra_args,
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "sim.log", "ab"),  # noqa: SIM115 (lives with the process)
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        line = self.process.stdout.readline()
        if not line.startswith("READY ") or time.monotonic() > deadline:
            raise RuntimeError(f"the simulated API did not start: {line!r}")
        self.url = line.split()[1]
        return self

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process)
            self.process = None

    def pods(self, namespace: str = NAMESPACE) -> list[dict]:
        response = requests.get(f"{self.url}/api/v1/namespaces/{namespace}/pods", timeout=10)
        response.raise_for_status()
        return response.json()["items"]

    def pod(self, name: str, namespace: str = NAMESPACE) -> dict | None:
        response = requests.get(f"{self.url}/api/v1/namespaces/{namespace}/pods/{name}", timeout=10)
        return response.json() if response.status_code == 200 else None

    def create_pod(self, pod: dict) -> dict:
        namespace = pod["metadata"].get("namespace", NAMESPACE)
        response = requests.post(
            f"{self.url}/api/v1/namespaces/{namespace}/pods", json=pod, timeout=10
        )
        response.raise_for_status()
        return response.json()

    def delete_pod(self, name: str, namespace: str = NAMESPACE) -> None:
        requests.delete(f"{self.url}/api/v1/namespaces/{namespace}/pods/{name}", timeout=10)

    def wait_for_pod(self, name: str, timeout: float = 30, gone: bool = False) -> dict | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.pod(name)
            if (pod is None) == gone:
                return pod
            time.sleep(0.2)
        raise TimeoutError(f"pod {name} {'still there' if gone else 'not created'} in {timeout}s")


class CatalogServer:
    """The image catalog served over HTTP from this process; ``stop()`` takes it down."""

    def __init__(self, items: list[dict]) -> None:
        body = json.dumps(items).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1/images/jupyter"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class KubeHub:
    """``jupyterhub -f`` a config that loads the shared kubernetes_config.py."""

    def __init__(
        self,
        workdir: Path,
        sim: SimulatedApiProcess,
        *,
        catalog: str,
        policy: dict | None = None,
        extra_config: str = "",
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.sim = sim
        self.catalog = catalog
        self.port = free_hub_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.workdir / "hub.log"
        self.policy_path = self.workdir / "policy.yaml"
        self.write_policy(policy or POLICY)
        self.config_path = self.workdir / "test_config.py"
        self.config_path.write_text(
            "c = get_config()\n"
            f"load_subconfig({str(KUBERNETES_CONFIG)!r})\n"
            "# test-only settings\n"
            'c.JupyterHub.authenticator_class = "dummy"\n'
            "c.Authenticator.allow_all = True\n"
            f"c.JupyterHub.load_groups = {GROUPS!r}\n"
            f'c.JupyterHub.bind_url = "http://127.0.0.1:{self.port}/"\n'
            f'c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.port + 1}"\n'
            f"c.JupyterHub.hub_port = {self.port + 81}\n"
            f'c.JupyterHub.db_url = "sqlite:///{self.workdir / "jupyterhub.sqlite"}"\n'
            f'c.JupyterHub.cookie_secret_file = "{self.workdir / "cookie_secret"}"\n'
            f'c.ConfigurableHTTPProxy.pid_file = "{self.workdir / "proxy.pid"}"\n'
            "c.JupyterHub.cleanup_servers = True\n"
            "# Nothing answers inside the simulated pods: REST spawns answer 202 after 4 s\n"
            "# (a refusal comes well before), and the hub gives up on the pod after 8 s.\n"
            'c.JupyterHub.tornado_settings = {"slow_spawn_timeout": 4}\n'
            "c.KubeSpawner.http_timeout = 8\n"
            "c.KubeSpawner.start_timeout = 30\n"
            "c.ImageCatalog.ttl_seconds = 1\n"
            "c.ImageCatalog.retry_seconds = 1\n"
            "c.ImageCatalog.timeout_seconds = 2\n" + extra_config
        )
        self.process: subprocess.Popen | None = None

    def write_policy(self, policy: dict) -> None:
        temporary = self.policy_path.with_suffix(".tmp")
        temporary.write_text(yaml.safe_dump(policy))
        os.replace(temporary, self.policy_path)

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            KUBECONFIG=str(self.sim.kubeconfig),
            JUPYTER_TK_POLICY=str(self.policy_path),
            JUPYTER_TK_CATALOG=self.catalog,
            JUPYTER_TK_NAMESPACE=NAMESPACE,
        )
        return env

    def start(self, timeout: float = 90) -> KubeHub:
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config_path)],
            cwd=self.workdir,
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
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

    def stop(self) -> None:
        if self.process is not None:
            _terminate(self.process, timeout=60)
            self.process = None
            self._log.close()

    def tail(self, lines: int = 80) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def login(self, name: str) -> HubUser:
        return HubUser(self, name, "any-password")
