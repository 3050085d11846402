"""Activity that means work: a busy kernel or a GPU in use, reported to JupyterHub.

Behind JupyterHub (``JUPYTERHUB_API_URL`` and ``JUPYTERHUB_API_TOKEN`` set, as for every spawned
server) the :class:`ActivityReporter` looks every few seconds at the kernels and at the GPU
sampler's latest sample. When it sees work it posts activity to the hub's activity API (what
jupyterhub-singleuser does for browser traffic), so the idle culler keeps a training run nobody
watches. It also reports how long ago the last work was to the hub's GPU idle rule
(``/hub/api/tk/activity``, see :mod:`jupyter_tk.hub.culling`) and keeps the notice it gets back:
``GET jupyter-tk/api/activity`` serves it to JupyterLab, which warns before a stop.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from datetime import datetime, timezone
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError
from traitlets import Bool, Float
from traitlets.config import LoggingConfigurable

from jupyter_tk.background import cancel_and_wait

# How often to look before the hub has said how often it wants to hear (seconds).
_FIRST_REPORT_SECONDS = 60.0


def gpu_in_use(devices: list[dict], busy_percent: float) -> bool:
    """Whether any of ``devices`` (GPU sampler rows) is computing.

    Utilization at or above ``busy_percent`` counts; memory held by an idle process does not (a
    notebook with a model loaded and nothing running is exactly the GPU to give back). Where
    NVML has no utilization (MIG instances), a running compute process counts.
    """
    for device in devices:
        utilization = device.get("utilization_gpu")
        if utilization is not None:
            if utilization >= busy_percent:
                return True
        elif device.get("processes"):
            return True
    return False


class ActivityReporter(LoggingConfigurable):
    """Watches kernels and GPUs; tells the hub about work and remembers the GPU idle notice."""

    enabled = Bool(
        True,
        config=True,
        help="""Whether to report work to JupyterHub. Only acts behind a hub
        (JUPYTERHUB_API_URL set). Example: `c.ActivityReporter.enabled = False`.""",
    )

    gpu_busy_percent = Float(
        5.0,
        config=True,
        help="""GPU utilization (percent) from which a GPU counts as in use. Example:
        `c.ActivityReporter.gpu_busy_percent = 10`.""",
    )

    def __init__(self, *, sampler, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sampler = sampler
        self.kernel_manager = None
        self.api_url = os.environ.get("JUPYTERHUB_API_URL", "").rstrip("/")
        self.token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
        self.user = os.environ.get("JUPYTERHUB_USER", "")
        self.server_name = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
        self.activity_url = os.environ.get("JUPYTERHUB_ACTIVITY_URL", "")
        self.report_seconds = _FIRST_REPORT_SECONDS
        # Server start counts as work: a new server is not idle.
        self.last_work = time.monotonic()
        self.kernels_busy = False
        self.gpu_busy = False
        self.notice: dict | None = None
        self._notice_received = 0.0
        self._task: asyncio.Task | None = None

    @property
    def behind_hub(self) -> bool:
        return bool(self.api_url and self.token and self.user)

    def start(self, kernel_manager) -> None:
        self.kernel_manager = kernel_manager
        if self.enabled and self.behind_hub and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:
                self.log.exception("jupyter-tk activity check failed; trying again later")
            await asyncio.sleep(self.report_seconds)

    def _any_kernel_busy(self) -> bool:
        if self.kernel_manager is None:
            return False
        for kernel_id in list(self.kernel_manager.list_kernel_ids()):
            try:
                kernel = self.kernel_manager.get_kernel(kernel_id)
            except KeyError:  # shut down meanwhile
                continue
            if getattr(kernel, "execution_state", None) == "busy":
                return True
        return False

    async def _gpu_busy(self) -> bool:
        if self.sampler is None or not self.sampler.enabled:
            return False
        snapshot = await self.sampler.latest()
        return gpu_in_use(snapshot.data.get("devices", []), self.gpu_busy_percent)

    async def check(self) -> None:
        """Look once; post activity when there was work; report to the GPU idle rule."""
        self.kernels_busy = self._any_kernel_busy()
        self.gpu_busy = await self._gpu_busy()
        if self.kernels_busy or self.gpu_busy:
            self.last_work = time.monotonic()
            await self._post_hub_activity()
        await self._report_work()

    async def _fetch(self, url: str, body: dict) -> bytes:
        response = await AsyncHTTPClient().fetch(
            url,
            method="POST",
            headers={
                "Authorization": f"token {self.token}",
                "Content-Type": "application/json",
            },
            body=json.dumps(body),
            request_timeout=30,
        )
        return response.body

    async def _post_hub_activity(self) -> None:
        now = datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")
        body = {"last_activity": now, "servers": {self.server_name: {"last_activity": now}}}
        url = self.activity_url or f"{self.api_url}/users/{quote(self.user, safe='')}/activity"
        try:
            await self._fetch(url, body)
        except (HTTPClientError, OSError) as error:
            self.log.warning("Could not report activity to the hub: %s", error)

    async def _report_work(self) -> None:
        url = f"{self.api_url}/tk/activity/{quote(self.user, safe='')}"
        if self.server_name:
            url += f"/{quote(self.server_name, safe='')}"
        idle = max(0.0, time.monotonic() - self.last_work)
        try:
            notice = json.loads(await self._fetch(url, {"idle_seconds": idle}))
        except HTTPClientError as error:
            if error.code == 404:  # this hub has no GPU idle rule
                self.notice = None
                return
            self.log.warning("Could not report work to the hub: %s", error)
            return
        except (OSError, ValueError) as error:
            self.log.warning("Could not report work to the hub: %s", error)
            return
        self.report_seconds = float(notice.get("report_seconds") or _FIRST_REPORT_SECONDS)
        self.notice = notice.get("gpu_idle")
        self._notice_received = time.monotonic()

    def as_dict(self) -> dict:
        """The ``GET jupyter-tk/api/activity`` document; deadlines counted from now."""
        now = time.monotonic()
        gpu_idle = None
        if self.notice is not None:
            elapsed = now - self._notice_received
            stop_in = self.notice["stop_in_seconds"] - elapsed
            gpu_idle = {
                "timeout_seconds": self.notice["timeout_seconds"],
                "warning_seconds": self.notice["warning_seconds"],
                "idle_seconds": self.notice["idle_seconds"] + elapsed,
                "stop_in_seconds": stop_in,
                "warn": stop_in <= self.notice["warning_seconds"],
            }
        return {
            "reporting": self._task is not None,
            "kernels_busy": self.kernels_busy,
            "gpu_in_use": self.gpu_busy,
            "seconds_since_work": now - self.last_work,
            "poll_seconds": self.report_seconds,
            "gpu_idle": gpu_idle,
        }
