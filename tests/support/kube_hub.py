"""A real JupyterHub on ``share/jupyterhub/kubernetes_config.py`` against the simulated API.

Two subprocesses: the simulated Kubernetes API (``python -m tests.fakes.kubernetes``) and
``jupyterhub -f test_config.py``, where the test config ``load_subconfig``s the shared
Kubernetes config exactly as an operator would and adds test-only settings (dummy login,
groups, ports, a database in the work folder). Both build on `hub_process.py`. Used by the hub
tests, the browser test and ``benchmarks/inventory.py``.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import requests
import yaml

from tests.support.hub_process import ChildProcess, HubProcess
from tests.support.spawn_fixtures import CATALOG_ITEMS, POLICY

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_CONFIG = REPO / "share" / "jupyterhub" / "kubernetes_config.py"
NAMESPACE = "default"
GROUPS = {"gpu-lab": {"users": ["alice"]}, "students": {"users": ["bob"]}}

__all__ = ["CatalogServer", "KubeHub", "SimulatedApiProcess", "kube_hub_with_catalog"]


class SimulatedApiProcess(ChildProcess):
    """``python -m tests.fakes.kubernetes`` with a kubeconfig; talked to over plain HTTP."""

    def __init__(self, workdir: Path, cluster: str = "small", extra_args: tuple = ()) -> None:
        super().__init__(workdir, "sim.log")
        self.kubeconfig = self.workdir / "kubeconfig"
        self.cluster = cluster
        self.extra_args = list(extra_args)
        self.url = ""

    def start(self, timeout: float = 120) -> SimulatedApiProcess:
        """Start the API and return once it prints ``READY <url>`` (within `timeout` seconds)."""
        command = [sys.executable, "-m", "tests.fakes.kubernetes", "--cluster", self.cluster]
        command += ["--kubeconfig", str(self.kubeconfig), *self.extra_args]
        self._spawn(command, cwd=REPO, pipe_stdout=True)
        line = self._first_line(timeout)
        if line is None:
            self._give_up(TimeoutError, f"the simulated API did not print READY within {timeout}s")
        if not line.startswith("READY "):
            self._give_up(RuntimeError, f"the simulated API did not start: {line!r}")
        self.url = line.split()[1]
        return self

    def _first_line(self, timeout: float) -> str | None:
        """The child's first line on stdout (what it printed, if it exits first), or None after
        `timeout` seconds: a child that hangs fails the test instead of hanging it."""
        stdout = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        received = b""
        while b"\n" not in received:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            if not select.select([stdout], [], [], remaining)[0]:
                continue
            chunk = os.read(stdout, 4096)
            if not chunk:  # the child exited (or closed stdout) without a whole line
                break
            received += chunk
        return received.split(b"\n", 1)[0].decode(errors="replace")

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

    def __enter__(self) -> CatalogServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


class KubeHub(HubProcess):
    """``jupyterhub -f`` a config that loads the shared kubernetes_config.py."""

    # The dummy authenticator of the test config takes any password.
    password = "any-password"

    def __init__(
        self,
        workdir: Path,
        sim: SimulatedApiProcess,
        *,
        catalog: str,
        policy: dict | None = None,
        extra_config: str = "",
    ) -> None:
        super().__init__(workdir)
        self.sim = sim
        self.catalog = catalog
        self.policy_path = self.workdir / "policy.yaml"
        self.write_policy(policy or POLICY)
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

    def write_policy(self, policy: dict) -> None:
        temporary = self.policy_path.with_suffix(".tmp")
        temporary.write_text(yaml.safe_dump(policy))
        os.replace(temporary, self.policy_path)

    def env(self) -> dict[str, str]:
        env = super().env()
        env.update(
            KUBECONFIG=str(self.sim.kubeconfig),
            JUPYTER_TK_POLICY=str(self.policy_path),
            JUPYTER_TK_CATALOG=self.catalog,
            JUPYTER_TK_NAMESPACE=NAMESPACE,
        )
        return env


@contextlib.contextmanager
def kube_hub_with_catalog(
    workdir: Path, sim: SimulatedApiProcess, *, extra_config: str = ""
) -> Iterator[KubeHub]:
    """A started KubeHub whose image catalog (CATALOG_ITEMS) this process serves over HTTP;
    both stop when the block ends."""
    with (
        CatalogServer(CATALOG_ITEMS) as catalog,
        KubeHub(workdir, sim, catalog=catalog.url, extra_config=extra_config) as hub,
    ):
        yield hub
