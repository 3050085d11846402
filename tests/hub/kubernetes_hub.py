"""A simulated Kubernetes API process and a real JupyterHub started from kubernetes_config.py.

Used by the endpoint tests and by `benchmarks/inventory.py`::

    cluster = SimulatedClusterProcess(workdir, cluster="small").start()
    hub = KubernetesHub(workdir, kubeconfig=cluster.kubeconfig).start()
    session = hub.login("alice")        # requests.Session: cookies + X-XSRFToken header
    session.get(hub.api_url("tk/resources"))
    hub.stop(); cluster.stop()

The hub config is a small test config that `load_subconfig`s the shared
`share/jupyterhub/kubernetes_config.py` exactly as an operator would, then adds test-only
settings (dummy authenticator, ports, state in `workdir`).
"""

from __future__ import annotations

import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
KUBERNETES_CONFIG = REPO / "share" / "jupyterhub" / "kubernetes_config.py"
_XSRF_IN_PAGE = re.compile(r'xsrf_token: "([^"]+)"')


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free a moment ago on 127.0.0.1."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _terminate(process: subprocess.Popen | None, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


class SimulatedClusterProcess:
    """`python -m tests.fakes.kubernetes` as a subprocess; restartable on the same port."""

    def __init__(self, workdir: Path, cluster: str = "small", **sizes: int) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster = cluster
        self.sizes = sizes
        self.kubeconfig = self.workdir / "kubeconfig"
        self.port = 0
        self.url = ""
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> SimulatedClusterProcess:
        command = [sys.executable, "-m", "tests.fakes.kubernetes", "--cluster", self.cluster]
        command += ["--port", str(self.port), "--kubeconfig", str(self.kubeconfig)]
        for name, value in self.sizes.items():
            command += [f"--{name}", str(value)]
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=open(self.workdir / "simulated-api.log", "ab"),  # noqa: SIM115
            text=True,
            start_new_session=True,
        )
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"simulated API did not start within {timeout}s: {line!r}")
        self.url = line.split()[1]
        self.port = int(self.url.rsplit(":", 1)[1])
        return self

    def stop(self) -> None:
        _terminate(self.process, 10)
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    def create_pod(self, pod: dict) -> dict:
        namespace = pod["metadata"].get("namespace", "default")
        response = requests.post(f"{self.url}/api/v1/namespaces/{namespace}/pods", json=pod)
        response.raise_for_status()
        return response.json()

    def delete_pod(self, namespace: str, name: str) -> None:
        requests.delete(f"{self.url}/api/v1/namespaces/{namespace}/pods/{name}").raise_for_status()

    def stats(self) -> dict:
        return requests.get(f"{self.url}/_sim/stats", timeout=10).json()


class KubernetesHub:
    """`jupyterhub -f test_config.py`, where the test config loads kubernetes_config.py."""

    def __init__(self, workdir: Path, *, kubeconfig: Path, extra_config: str = "") -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.kubeconfig = kubeconfig
        port, proxy_port, hub_port = free_ports(3)
        self.url = f"http://127.0.0.1:{port}"
        #: The hub's own HTTP server, behind the proxy (for measuring without the proxy hop).
        self.hub_url = f"http://127.0.0.1:{hub_port}"
        self.config_path = self.workdir / "test_config.py"
        self.config_path.write_text(
            "c = get_config()\n"
            f"load_subconfig({str(KUBERNETES_CONFIG)!r})\n"
            "# Test-only settings below.\n"
            "c.JupyterHub.authenticator_class = 'dummy'\n"
            "c.Authenticator.allow_all = True\n"
            f"c.JupyterHub.bind_url = 'http://127.0.0.1:{port}/'\n"
            f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{proxy_port}'\n"
            f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{hub_port}'\n"
            f"c.JupyterHub.db_url = 'sqlite:///{self.workdir / 'jupyterhub.sqlite'}'\n"
            f"c.JupyterHub.cookie_secret_file = '{self.workdir / 'cookie_secret'}'\n"
            f"c.ConfigurableHTTPProxy.pid_file = '{self.workdir / 'proxy.pid'}'\n"
            "c.KubeSpawner.namespace = 'jhub'\n" + extra_config
        )
        self.log_path = self.workdir / "hub.log"
        self.process: subprocess.Popen | None = None

    def api_url(self, path: str) -> str:
        return f"{self.url}/hub/api/{path}"

    def start(self, timeout: float = 90) -> KubernetesHub:
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config_path)],
            cwd=self.workdir,
            env=env,
            stdout=self._log,
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
            time.sleep(0.2)
        raise TimeoutError(f"the hub did not answer within {timeout}s:\n{self.tail()}")

    def stop(self) -> None:
        _terminate(self.process, 30)
        self.process = None
        if getattr(self, "_log", None):
            self._log.close()

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def login(self, username: str) -> requests.Session:
        """Log in through /hub/login (dummy authenticator); the session sends X-XSRFToken."""
        session = requests.Session()
        session.get(f"{self.url}/hub/login", timeout=10).raise_for_status()
        response = session.post(
            f"{self.url}/hub/login",
            data={"username": username, "password": "any", "_xsrf": session.cookies["_xsrf"]},
            allow_redirects=False,
            timeout=10,
        )
        if response.status_code != 302:
            raise RuntimeError(f"login failed: {response.status_code} {response.text[:300]}")
        # The XSRF token is bound to the session: read the one a logged-in page carries.
        page = session.get(f"{self.url}/hub/token", timeout=10)
        match = _XSRF_IN_PAGE.search(page.text)
        if match is None:
            raise RuntimeError("no xsrf token on the page")
        session.headers["X-XSRFToken"] = match[1]
        return session

    def new_token(self, session: requests.Session, username: str) -> str:
        """An API token of `username`, made through the REST API like a user would."""
        response = session.post(
            self.api_url(f"users/{username}/tokens"), json={"note": "test"}, timeout=10
        )
        response.raise_for_status()
        return response.json()["token"]
