"""Idle culling that understands GPUs: a hub API for work reports, a service that stops servers.

Two rules, two services (both added by :func:`configure_culling`):

- ``idle-culler`` (the ``jupyterhub-idle-culler`` package): stops any server without activity for
  ``JUPYTER_TK_IDLE_TIMEOUT`` seconds (default one hour). The single-user extension
  (:mod:`jupyter_tk.server.activity`) counts a busy kernel and a GPU in use as activity, so a long
  training run nobody watches is kept.
- ``gpu-idle-culler`` (``python -m jupyter_tk.hub.culling``): stops a server *holding a GPU* that
  did no work (no busy kernel, no GPU in use) for ``JUPYTER_TK_GPU_IDLE_TIMEOUT`` seconds
  (default 30 minutes), even when someone keeps the browser open.

Servers report their work to ``POST /hub/api/tk/activity/<user>[/<server>]`` with their own token
(``{"idle_seconds": 12.5}``: seconds since they last did work) and get their deadline back, which
JupyterLab shows as a warning ``JUPYTER_TK_GPU_IDLE_WARNING`` seconds (default 5 minutes) before
the stop. Times travel as durations, never as timestamps, so clocks of hub and pods may differ.
The service asks ``GET /hub/api/tk/activity`` which servers are due and stops them through the
hub's REST API, so stopping frees resources exactly as a user's own stop does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

__all__ = ["GpuIdleRule", "configure_culling", "gpu_idle_handlers"]

ACTIVITY_ROUTE = r"/api/tk/activity"
DEFAULT_IDLE_TIMEOUT = 3600
DEFAULT_GPU_IDLE_TIMEOUT = 1800
DEFAULT_GPU_IDLE_WARNING = 300
# A server reports at most this often and at least this rarely (seconds); in between it reports
# four times per warning period, so a warning shows up on time.
_REPORT_SECONDS_MIN = 1.0
_REPORT_SECONDS_MAX = 60.0
# Roles may only name existing scopes; these are what both culler services need.
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


@dataclass(frozen=True)
class GpuIdleRule:
    """A server holding a GPU is stopped after ``timeout`` seconds without work, warned
    ``warning`` seconds before."""

    timeout: float = DEFAULT_GPU_IDLE_TIMEOUT
    warning: float = DEFAULT_GPU_IDLE_WARNING

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ValueError(f"the GPU idle timeout must be positive seconds, not {self.timeout}")
        if not 0 <= self.warning < self.timeout:
            raise ValueError(
                f"the GPU idle warning ({self.warning} s) must be shorter than the timeout "
                f"({self.timeout} s)"
            )

    @property
    def report_seconds(self) -> float:
        return min(_REPORT_SECONDS_MAX, max(_REPORT_SECONDS_MIN, (self.warning or 60) / 4))

    def deadline(self, idle_since: float, now: float) -> dict:
        """The notice for a server idle since ``idle_since`` (epoch seconds on the hub)."""
        stop_at = idle_since + self.timeout
        return {
            "idle_seconds": max(0.0, now - idle_since),
            "timeout_seconds": self.timeout,
            "warning_seconds": self.warning,
            "stop_in_seconds": stop_at - now,
            "warn_in_seconds": stop_at - self.warning - now,
            "due": now >= stop_at,
        }


# Last work of each server, as reported: (user, server name) -> hub epoch seconds. In memory:
# after a hub restart every server reports again within `report_seconds`, and until then the
# hub's own last_activity stands in (see `_idle_since`).
_last_work: dict[tuple[str, str], float] = {}


def _gpu_count(spawner) -> int:
    gpu = (spawner.user_options or {}).get("gpu") or {}
    try:
        return int(gpu.get("count") or 0)
    except (TypeError, ValueError, AttributeError):
        return 0


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    if moment.tzinfo is None:  # JupyterHub stores naive UTC
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _idle_since(user_name: str, spawner) -> float:
    started = _epoch(spawner.orm_spawner.started) or time.time()
    reported = _last_work.get((user_name, spawner.name))
    if reported is None:
        # No report yet (hub restarted, or an image without jupyter-tk): the hub's activity.
        reported = _epoch(spawner.orm_spawner.last_activity) or started
    return max(started, reported)


class _GpuIdleHandler(APIHandler):
    def initialize(self, rule: GpuIdleRule) -> None:
        self.rule = rule


class WorkReportHandler(_GpuIdleHandler):
    """POST /hub/api/tk/activity/<user>[/<server>]: a server reports its work, gets its notice."""

    @needs_scope("users:activity")
    async def post(self, user_name: str, server_name: str = "") -> None:
        try:
            body = json.loads(self.request.body or b"{}")
            idle_seconds = float(body["idle_seconds"])
        except (ValueError, KeyError, TypeError) as error:
            raise web.HTTPError(400, 'Expected {"idle_seconds": <seconds since last work>}') from (
                error
            )
        if not 0 <= idle_seconds < 10 * 365 * 86400:
            raise web.HTTPError(400, "idle_seconds must be between 0 and ten years")
        user = self.find_user(user_name)
        spawner = user.spawners.get(server_name) if user is not None else None
        if spawner is None or not spawner.active:
            raise web.HTTPError(404, f"No running server {server_name!r} for user {user_name!r}")
        now = time.time()
        _last_work[(user.name, server_name)] = now - idle_seconds
        notice = {"report_seconds": self.rule.report_seconds, "gpu_idle": None}
        if _gpu_count(spawner) > 0:
            notice["gpu_idle"] = self.rule.deadline(_idle_since(user.name, spawner), now)
        self.write(notice)


class GpuIdleListHandler(_GpuIdleHandler):
    """GET /hub/api/tk/activity: the notice of every running GPU server the caller may see."""

    @needs_scope("list:users", "read:servers")
    async def get(self) -> None:
        # Filtered scopes (a user's own) see only their own servers.
        may_list = self.get_scope_filter("list:users")
        may_read = self.get_scope_filter("read:servers")
        now = time.time()
        servers = []
        for user in list(self.users.values()):
            if not may_list(user.orm_user, kind="user"):
                continue
            for name, spawner in list(user.spawners.items()):
                if not spawner.ready or _gpu_count(spawner) == 0:
                    continue
                if not may_read(spawner.orm_spawner, kind="server"):
                    continue
                notice = self.rule.deadline(_idle_since(user.name, spawner), now)
                servers.append(
                    {"user": user.name, "server": name, "gpus": _gpu_count(spawner), **notice}
                )
        self.write({"servers": servers})


def gpu_idle_handlers(rule: GpuIdleRule) -> list[tuple]:
    """Routes for `add_hub_routes` (paths relative to the hub prefix)."""
    return [
        (ACTIVITY_ROUTE, GpuIdleListHandler, {"rule": rule}),
        (ACTIVITY_ROUTE + r"/([^/]+)/?([^/]*)", WorkReportHandler, {"rule": rule}),
    ]


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, not {text!r}") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative, got {text!r}")
    return value


def configure_culling(c, environ: Mapping[str, str] = os.environ) -> None:
    """Add both culler services, their role and the activity API to a hub config ``c``.

    ``JUPYTER_TK_IDLE_TIMEOUT`` (seconds, default 3600; 0 turns that culler off),
    ``JUPYTER_TK_GPU_IDLE_TIMEOUT`` (default 1800; 0 turns the GPU rule off),
    ``JUPYTER_TK_GPU_IDLE_WARNING`` (default 300) and ``JUPYTER_TK_CULL_EVERY`` (seconds between
    checks of both services, default 60). Bad values raise ValueError naming the variable.
    """
    from jupyter_tk.hub.setup import add_hub_routes  # the hub's routes: not for the service

    idle = _seconds(environ, "JUPYTER_TK_IDLE_TIMEOUT", DEFAULT_IDLE_TIMEOUT)
    gpu_idle = _seconds(environ, "JUPYTER_TK_GPU_IDLE_TIMEOUT", DEFAULT_GPU_IDLE_TIMEOUT)
    warning = _seconds(environ, "JUPYTER_TK_GPU_IDLE_WARNING", DEFAULT_GPU_IDLE_WARNING)
    every = _seconds(environ, "JUPYTER_TK_CULL_EVERY", 60)
    if every < 1:
        raise ValueError(f"JUPYTER_TK_CULL_EVERY must be 1 second or more, got {every}")
    services = []
    if idle:
        services.append(
            {
                "name": "idle-culler",
                "command": [
                    sys.executable,
                    "-m",
                    "jupyterhub_idle_culler",
                    f"--timeout={round(idle)}",
                    f"--cull-every={round(every)}",
                ],
            }
        )
    if gpu_idle:
        rule = GpuIdleRule(timeout=gpu_idle, warning=warning)
        add_hub_routes(c, gpu_idle_handlers(rule))
        services.append(
            {
                "name": "gpu-idle-culler",
                "command": [sys.executable, "-m", "jupyter_tk.hub.culling", f"--every={every}"],
            }
        )
    if services:
        c.JupyterHub.services.extend(services)
        c.JupyterHub.load_roles.append(
            {
                "name": "jupyter-tk-cullers",
                "scopes": CULLER_SCOPES,
                "services": [service["name"] for service in services],
            }
        )


# -- the gpu-idle-culler service ------------------------------------------------------------------


async def cull_once(api_url: str, token: str, log=print) -> list[str]:
    """Stop every GPU server the hub says is due; returns "user/server" of those stopped."""
    from tornado.httpclient import AsyncHTTPClient, HTTPClientError

    client = AsyncHTTPClient()
    headers = {"Authorization": f"token {token}"}
    response = await client.fetch(f"{api_url}/tk/activity", headers=headers)
    stopped = []
    for server in json.loads(response.body)["servers"]:
        if not server["due"]:
            continue
        user, name = server["user"], server["server"]
        path = f"/users/{quote(user, safe='')}/server"
        if name:
            path = f"/users/{quote(user, safe='')}/servers/{quote(name, safe='')}"
        log(
            f"Stopping {user}/{name}: holds {server['gpus']} GPU(s) and did no work for "
            f"{server['idle_seconds']:.0f} s (limit {server['timeout_seconds']:.0f} s)"
        )
        try:
            await client.fetch(f"{api_url}{path}", method="DELETE", headers=headers)
        except HTTPClientError as error:
            if error.code != 404:  # already gone
                log(f"Stopping {user}/{name} failed: {error}")
                continue
        stopped.append(f"{user}/{name}")
    return stopped


async def _serve(every: float) -> None:
    api_url = os.environ["JUPYTERHUB_API_URL"].rstrip("/")
    token = os.environ["JUPYTERHUB_API_TOKEN"]

    def log(message: str) -> None:
        print(f"[gpu-idle-culler] {message}", file=sys.stderr, flush=True)

    while True:
        try:
            await cull_once(api_url, token, log)
        except Exception as error:  # the hub restarting, a network hiccup: try next round
            log(f"check failed: {error}")
        await asyncio.sleep(every)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m jupyter_tk.hub.culling",
        description="JupyterHub service: stop servers that hold a GPU and do no work.",
    )
    parser.add_argument("--every", type=float, default=60, help="seconds between checks")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.every))


if __name__ == "__main__":
    main()
