"""What the real-hub harnesses share: free ports, child processes, a hub, a logged-in user.

`tests/hub/local_hub.py` (a hub on ``share/jupyterhub/local_config.py``) and
`tests/hub/kube_hub.py` (a hub on ``share/jupyterhub/kubernetes_config.py`` plus the simulated
Kubernetes API) build on these, and so do the benchmarks that start a real hub. Every child runs
in its own session, so stopping one also ends what it started; a child that does not come up in
time is stopped, and the error carries the end of its log.
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
from typing import IO, NoReturn, Self

import requests

_XSRF_IN_PAGE = re.compile(r'xsrf_token: "([^"]+)"')


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_hub_port() -> int:
    """A port P with P, P+1 (proxy API) and P+81 (hub API) free, as the shared configs use them."""
    for _ in range(200):
        port = random.randint(20000, 40000)
        if all(_port_free(p) for p in (port, port + 1, port + 81)):
            return port
    raise RuntimeError("no free port triple found")


def terminate(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM `process` and wait `timeout` seconds; then SIGKILL its whole session."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)


class ChildProcess:
    """A test server run as a child process in its own session, logging into its work folder.

    Subclasses implement `start()` (spawn with `_spawn`, wait until it serves, return self).
    """

    #: Seconds `stop()` waits after SIGTERM before it kills the child's session.
    stop_timeout = 30.0

    def __init__(self, workdir: Path, log_name: str) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / log_name
        self.process: subprocess.Popen | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> Self:
        raise NotImplementedError

    def _spawn(
        self,
        command: list[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        pipe_stdout: bool = False,
    ) -> subprocess.Popen:
        """Start `command`; its output goes to the log (stderr only, with `pipe_stdout`)."""
        self._log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE if pipe_stdout else self._log,
            stderr=self._log if pipe_stdout else subprocess.STDOUT,
            start_new_session=True,
        )
        return self.process

    def stop(self, timeout: float | None = None) -> None:
        if self.process is not None:
            terminate(self.process, self.stop_timeout if timeout is None else timeout)
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def _give_up(self, error: type[Exception], reason: str) -> NoReturn:
        """Stop a child that did not come up (so nothing is left running) and raise `error`."""
        self.stop()
        raise error(f"{reason}:\n{self.tail()}")

    def tail(self, lines: int = 80) -> str:
        """The last `lines` lines of the child's log (for failure messages)."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()


class HubProcess(ChildProcess):
    """``jupyterhub -f <workdir>/test_config.py``; subclasses write that config and its env."""

    #: A hub stops its servers when it stops (unless cleanup_servers is off): give it time.
    stop_timeout = 60.0
    #: What the hub's authenticator accepts as the password of any user (see `login`).
    password = ""

    def __init__(self, workdir: Path, *, port: int | None = None) -> None:
        super().__init__(workdir, "hub.log")
        self.port = port or free_hub_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.workdir / "test_config.py"

    def env(self) -> dict[str, str]:
        """The hub's environment: this process's, plus what a subclass adds."""
        return dict(os.environ)

    def start(self, timeout: float = 90) -> Self:
        """Start the hub and return once ``/hub/health`` answers (within `timeout` seconds)."""
        process = self._spawn(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.config_path)],
            cwd=self.workdir,
            env=self.env(),
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self._give_up(RuntimeError, f"the hub exited with {process.returncode}")
            try:
                if requests.get(f"{self.url}/hub/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.3)
        self._give_up(TimeoutError, f"the hub did not answer within {timeout}s")

    def login(self, name: str, password: str | None = None) -> HubUser:
        return HubUser(self, name, self.password if password is None else password)


class HubUser:
    """A browser-like session of one user: cookies, XSRF token, the spawn form."""

    def __init__(self, hub: HubProcess, name: str, password: str) -> None:
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
