"""Live per-GPU use from Prometheus, as NVIDIA's dcgm-exporter reports it (optional).

GPU clusters run dcgm-exporter (part of the GPU Operator), scraped by Prometheus. When
``GpuMetrics.prometheus_url`` is set, one background task asks Prometheus every
``interval_seconds`` for the utilization and framebuffer use of every GPU, in one instant query,
and keeps the answer as a ready-made JSON block for ``/hub/api/tk/resources``. Page views never
wait for Prometheus: a slow or dead Prometheus only makes the block stale, then unavailable, and
the picker works as it does without it.

dcgm-exporter labels each series with the node (``Hostname``), the GPU (``gpu`` index, ``UUID``,
``modelName``), for a MIG instance ``GPU_I_PROFILE`` / ``GPU_I_ID``, and, for a GPU a pod holds,
that pod's ``pod`` and ``namespace``. Framebuffer figures are in MiB.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Float, Unicode, default
from traitlets.config import LoggingConfigurable

from jupyter_tk.background import cancel_and_wait
from jupyter_tk.hub.quantities import format_bytes

__all__ = ["METRICS", "GpuMetrics", "parse_dcgm_vector"]

UTILIZATION = "DCGM_FI_DEV_GPU_UTIL"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
METRICS = (UTILIZATION, FB_USED, FB_FREE)
# One query for all three: one request per interval, whatever the cluster's size.
QUERY = "{__name__=~%r}" % "|".join(METRICS)  # noqa: UP031 (PromQL wants the quotes)
_MIB = 2**20


class GpuMetrics(LoggingConfigurable):
    """Reads live GPU figures from Prometheus in the background (off the request path)."""

    prometheus_url = Unicode(
        config=True,
        help="""Base URL of the Prometheus that scrapes dcgm-exporter; empty turns the source off.

        Defaults to ``$JUPYTER_TK_PROMETHEUS_URL``. Example:
        "http://prometheus-operated.monitoring.svc:9090"
        """,
    )

    @default("prometheus_url")
    def _default_url(self) -> str:
        return os.environ.get("JUPYTER_TK_PROMETHEUS_URL", "")

    interval_seconds = Float(
        15.0,
        min=1.0,
        config=True,
        help="""Seconds between two queries (one query each time, for every GPU). Example: 30""",
    )

    timeout_seconds = Float(
        3.0,
        min=0.1,
        config=True,
        help="""Seconds one query may take before it counts as failed. Example: 5""",
    )

    stale_after_seconds = Float(
        60.0,
        config=True,
        help="""Age in seconds after which the last figures are marked stale. Example: 120""",
    )

    idle_utilization_percent = Float(
        5.0,
        config=True,
        help="""A GPU a pod holds counts as idle at or below this utilization (percent).

        The form marks such GPUs "idle though allocated". Example: 1
        """,
    )

    def __init__(self, on_change: Callable[[], None] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Called whenever `block()` changes (new figures, an error, staleness), so an inventory
        # can fold the block into its version and ETag.
        self._on_change = on_change
        self._block_json = b"null"
        self._nodes: dict[str, dict] = {}
        self._as_of: float | None = None
        self._error: str | None = None
        self._task: asyncio.Task | None = None
        self._block_key: tuple | None = None
        self._block: dict | None = None
        #: Queries sent since start (for benchmarks and tests).
        self.queries_sent = 0

    @property
    def enabled(self) -> bool:
        return bool(self.prometheus_url)

    # -- background task -------------------------------------------------------------------

    def start(self) -> None:
        """Start querying (in the running event loop); does nothing when no URL is set."""
        if self.enabled and self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            await self.refresh()
            await asyncio.sleep(self.interval_seconds)

    async def refresh(self) -> None:
        """Ask Prometheus once; keep the last good figures when it fails."""
        url = f"{self.prometheus_url.rstrip('/')}/api/v1/query?{urlencode({'query': QUERY})}"
        request = HTTPRequest(
            url, connect_timeout=self.timeout_seconds, request_timeout=self.timeout_seconds
        )
        self.queries_sent += 1
        try:
            response = await AsyncHTTPClient().fetch(request)
            body = json.loads(response.body)
            if body.get("status") != "success":
                raise ValueError(body.get("error") or "the query failed")
            nodes = parse_dcgm_vector(body["data"]["result"], self.idle_utilization_percent)
        except (HTTPClientError, OSError, ValueError, KeyError, TypeError) as error:
            reason = _describe(error)
            if reason != self._error:
                self.log.warning("Live GPU figures from %s: %s", self.prometheus_url, reason)
            self._error = reason
            return
        if self._error is not None:
            self.log.info("Live GPU figures from %s are back", self.prometheus_url)
        self._error = None
        self._nodes = nodes
        self._as_of = time.time()

    # -- read side -------------------------------------------------------------------------

    def block(self) -> dict | None:
        """The ``gpu_metrics`` block of the resources snapshot, or None when turned off.

        Rebuilt only when the figures, their state or their staleness changed, so the
        resources endpoint can fold it into its ETag and memoize it.
        """
        if not self.enabled:
            return None
        now = time.time()
        age = None if self._as_of is None else max(0.0, now - self._as_of)
        stale = age is None or age >= self.stale_after_seconds
        key = (self._as_of, self._error, stale)
        if key != self._block_key:
            if self._as_of is None:
                message = "Live GPU figures are unavailable" + (
                    f": {self._error}" if self._error else " yet."
                )
            elif stale:
                message = "Live GPU figures are out of date" + (
                    f": {self._error}" if self._error else "."
                )
            else:
                message = None
            self._block_key = key
            self._block = {
                "source": "prometheus",
                "available": self._as_of is not None,
                "stale": stale,
                "as_of": self._as_of,
                "message": message,
                "nodes": self._nodes,
            }
            self._block_json = json.dumps(self._block, separators=(",", ":")).encode()
            if self._on_change is not None:
                self._on_change()
        return self._block

    def block_json(self) -> bytes:
        """`block()` encoded as JSON (encoded once per change, not per request)."""
        self.block()
        return self._block_json


def parse_dcgm_vector(result: list[dict], idle_percent: float) -> dict[str, dict]:
    """Prometheus instant-vector samples of the dcgm metrics → per node its GPUs and the texts
    the form shows (``summary`` for the node list, ``text`` per GPU), computed here once so the
    server-rendered form and the browser show the same words.

    One GPU (or MIG instance) per (``Hostname``, ``UUID``, ``GPU_I_ID``); the series of its
    three metrics are joined. Series without a ``Hostname`` cannot be placed and are dropped.
    """
    devices: dict[tuple, dict] = {}
    for sample in result:
        labels = sample.get("metric") or {}
        host = labels.get("Hostname")
        uuid = labels.get("UUID")
        if not host or not uuid:
            continue
        value = _number(sample.get("value"))
        instance = labels.get("GPU_I_ID") or None
        key = (host, uuid, instance)
        device = devices.get(key)
        if device is None:
            device = devices[key] = {
                "uuid": uuid,
                "index": _int(labels.get("gpu")),
                "model": labels.get("modelName") or None,
                "mig_profile": labels.get("GPU_I_PROFILE") or None,
                "utilization_gpu": None,
                "memory_used": None,
                "memory_total": None,
                "pod": None,
                "namespace": None,
                "_free": None,
                "_host": host,
            }
        if labels.get("pod"):
            device["pod"] = labels["pod"]
            device["namespace"] = labels.get("namespace") or None
        name = labels.get("__name__")
        if name == UTILIZATION:
            device["utilization_gpu"] = value
        elif name == FB_USED:
            device["memory_used"] = None if value is None else int(value * _MIB)
        elif name == FB_FREE:
            device["_free"] = None if value is None else int(value * _MIB)
    gpus_by_node: dict[str, list[dict]] = {}
    for device in devices.values():
        free = device.pop("_free")
        host = device.pop("_host")
        if device["memory_used"] is not None and free is not None:
            device["memory_total"] = device["memory_used"] + free
        utilization = device["utilization_gpu"]
        device["idle_allocated"] = bool(
            device["pod"] and utilization is not None and utilization <= idle_percent
        )
        gpus_by_node.setdefault(host, []).append(device)
    nodes = {}
    for host, gpus in sorted(gpus_by_node.items()):
        gpus.sort(key=lambda d: (d["index"] if d["index"] is not None else 1 << 30, d["uuid"]))
        for device in gpus:
            device["text"] = _device_text(device)
        nodes[host] = {
            "summary": _summary(gpus),
            "text": "; ".join(d["text"] for d in gpus),
            "idle_allocated": sum(d["idle_allocated"] for d in gpus),
            "gpus": gpus,
        }
    return nodes


def _device_text(device: dict) -> str:
    """ "GPU 0: 73% busy, 10 GiB of 40 GiB used, held by ml/train" (words say idle and free)."""
    name = f"GPU {device['index'] if device['index'] is not None else '?'}"
    if device["mig_profile"]:
        name += f" {device['mig_profile']}"
    utilization = device["utilization_gpu"]
    parts = ["busy: not reported" if utilization is None else f"{utilization:g}% busy"]
    if device["memory_used"] is not None and device["memory_total"]:
        used, total = format_bytes(device["memory_used"]), format_bytes(device["memory_total"])
        parts.append(f"{used} of {total} used")
    if device["pod"]:
        holder = f"{device['namespace']}/{device['pod']}" if device["namespace"] else device["pod"]
        parts.append(f"held by {holder}" + (", idle" if device["idle_allocated"] else ""))
    else:
        parts.append("not held by a pod")
    return f"{name}: {', '.join(parts)}"


def _summary(gpus: list[dict]) -> str:
    """ "GPUs 37% busy · 1 idle though allocated" for the node list."""
    busy = [d["utilization_gpu"] for d in gpus if d["utilization_gpu"] is not None]
    parts = [f"GPUs {sum(busy) / len(busy):.0f}% busy" if busy else "GPU use not reported"]
    idle = sum(d["idle_allocated"] for d in gpus)
    if idle:
        parts.append(f"{idle} idle though allocated")
    return " · ".join(parts)


def _number(value: Any) -> float | None:
    # An instant-vector sample is [timestamp, "value"]; NaN and ±Inf arrive as strings.
    try:
        number = float(value[1])
    except (TypeError, ValueError, IndexError):
        return None
    return number if math.isfinite(number) else None


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def _describe(error: Exception) -> str:
    if isinstance(error, HTTPClientError):
        if error.code == 599:
            return f"Prometheus did not answer ({error.message})"
        return f"Prometheus answered HTTP {error.code}"
    if isinstance(error, OSError):
        return f"Prometheus cannot be reached ({error.strerror or error})"
    return f"Prometheus sent an answer that is not a dcgm-exporter vector ({error})"
