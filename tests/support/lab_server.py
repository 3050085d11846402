"""A real ``jupyter lab`` in a child process for browser tests, with auth on and its own dirs.

Each server gets a free port, a random token, ``allow_unauthenticated_access=False``, and
private config / settings / workspace / runtime folders, so nothing leaks between tests or from
the user's own JupyterLab set-up. The installed jupyter-tk extensions (server and prebuilt lab
extension) are what runs: nothing of ours is imported or patched here.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from jupyter_core.paths import jupyter_path

import jupyter_tk

START_TIMEOUT_SECONDS = 90
STOP_TIMEOUT_SECONDS = 15
# Lab extensions installed on this machine for other purposes; they would clutter screenshots.
UNRELATED_EXTENSIONS = ["jupyterlab-nvdashboard"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def require_built_labextension() -> None:
    """Fail with the fix when the prebuilt extension is missing or JupyterLab would load an older
    copy of it (an editable install copies the build into share/; a rebuild does not update it)."""
    built = Path(jupyter_tk.__file__).parent / "labextension" / "package.json"
    if not built.exists():
        raise RuntimeError(
            f"{built} is missing: build the JupyterLab extension first (`npm run build:lab` at the"
            " repository root, or `bash .ci/setup`)"
        )
    for folder in jupyter_path("labextensions"):
        installed = Path(folder) / "jupyter-tk" / "package.json"
        if installed.exists():  # JupyterLab loads the first one on its path
            entry = json.loads(installed.read_text())["jupyterlab"]["_build"]["load"]
            if entry != json.loads(built.read_text())["jupyterlab"]["_build"]["load"]:
                raise RuntimeError(
                    f"JupyterLab would load an older build of jupyter-tk from {installed.parent}:"
                    " run `jupyter labextension develop --overwrite .` (links the build) or"
                    " `pip install -e .` again"
                )
            return
    raise RuntimeError(
        "jupyter-tk is not installed as a JupyterLab extension: run `pip install -e .` or"
        " `jupyter labextension develop --overwrite .`"
    )


class LabServer:
    """``jupyter lab`` started in ``base`` (a fresh temporary folder) with extra args and env."""

    def __init__(
        self,
        base: Path,
        *,
        args: list[str] = (),
        env: dict[str, str] | None = None,
        user_settings: dict[str, dict] | None = None,
    ):
        self.base = base
        self.root = base / "root"
        self.port = free_port()
        self.token = secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = base / "jupyter-lab.log"
        self._args = list(args)
        self._env = env or {}
        self._user_settings = user_settings or {}
        self._process: subprocess.Popen | None = None
        self._log = None

    # ---- lifecycle ------------------------------------------------------------------------

    def start(self) -> LabServer:
        require_built_labextension()
        self.root.mkdir(parents=True, exist_ok=True)
        config_dir = self.base / "config"
        (config_dir / "labconfig").mkdir(parents=True, exist_ok=True)
        (config_dir / "labconfig" / "page_config.json").write_text(
            json.dumps({"disabledExtensions": {name: True for name in UNRELATED_EXTENSIONS}})
        )
        settings_dir = self.base / "settings"
        self._write_settings(settings_dir)

        env = {**os.environ, **self._env}
        env.pop("CUDA_VISIBLE_DEVICES", None)  # the fake GPUs must all be visible
        env.update(
            JUPYTER_CONFIG_DIR=str(config_dir),
            JUPYTER_RUNTIME_DIR=str(self.base / "runtime"),
            JUPYTER_PLATFORM_DIRS="1",
        )
        command = [
            sys.executable,
            "-m",
            "jupyterlab",
            "--no-browser",
            "--allow-root",
            "--ServerApp.ip=127.0.0.1",
            f"--ServerApp.port={self.port}",
            "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={self.token}",
            "--ServerApp.allow_unauthenticated_access=False",
            f"--ServerApp.root_dir={self.root}",
            f"--LabApp.user_settings_dir={settings_dir}",
            f"--LabApp.workspaces_dir={self.base / 'workspaces'}",
            # Lets tests wait for `app.restored` and switch themes like a user would.
            "--LabApp.expose_app_in_browser=True",
            *self._args,
        ]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self._process = subprocess.Popen(
            command, env=env, cwd=self.base, stdout=self._log, stderr=subprocess.STDOUT
        )
        self._wait_until_ready()
        return self

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LabServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # ---- HTTP helpers (token auth, like any API client) ----------------------------------

    def lab_url(self, path: str = "lab") -> str:
        return f"{self.url}/{path}?token={self.token}"

    def api(self, path: str, *, method: str = "GET", body: dict | None = None) -> dict:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"{self.url}/{path}",
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")

    # ---- internals ------------------------------------------------------------------------

    def _write_settings(self, settings_dir: Path) -> None:
        # JupyterLab asks once whether to fetch news; answer "no" so no toast covers the UI.
        settings = {
            "@jupyterlab/apputils-extension:notification": {
                "fetchNews": "false",
                "checkForUpdates": False,
            },
            **self._user_settings,
        }
        for plugin_id, values in settings.items():
            package, plugin = plugin_id.split(":", 1)
            path = settings_dir / package / f"{plugin}.jupyterlab-settings"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))

    def _wait_until_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"jupyter lab exited with {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                self.api("api/status")
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.25)
        self.stop()
        raise RuntimeError(
            f"jupyter lab did not answer within {START_TIMEOUT_SECONDS}s:\n{self.log_tail()}"
        )


def open_lab(page, server: LabServer) -> None:
    """Load JupyterLab in ``page`` (the token sets the auth cookie); wait until it is restored."""
    page.goto(server.lab_url(), wait_until="domcontentloaded")
    page.wait_for_function("() => window.jupyterapp !== undefined", timeout=60_000)
    page.evaluate("async () => { await window.jupyterapp.restored; }")


def open_sidebar_panel(page, panel_id: str):
    """Click the left-sidebar tab of a panel (unless already open) and return the panel locator."""
    panel = page.locator(f"#{panel_id}")
    if not panel.is_visible():
        page.locator(f'.jp-SideBar.jp-mod-left li[data-id="{panel_id}"]').click()
    panel.wait_for(state="visible")
    return panel


def widen_left_sidebar(page, width: int) -> None:
    """Drag the left sidebar's edge so it is ``width`` pixels wide (as a user would)."""
    stack = page.locator("#jp-left-stack")
    for _attempt in range(3):
        box = stack.bounding_box()
        if abs(box["width"] - width) < 4:
            # A drag that missed the handle selects text; do not leave it highlighted.
            page.evaluate("() => window.getSelection().removeAllRanges()")
            return
        handle = page.locator(
            "#jp-main-split-panel > .lm-SplitPanel-handle:not(.lm-mod-hidden)"
        ).first.bounding_box()
        x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + width - box["width"], y, steps=8)
        page.mouse.up()
        page.wait_for_timeout(200)
    raise AssertionError(f"could not resize the left sidebar to {width}px: {stack.bounding_box()}")
