"""One NVML sampler per server process, shared by every client of ``jupyter-tk/api/gpus``.

A single background thread owns NVML (see :mod:`.stats`): it samples every ``interval``
seconds while someone is asking, pauses after ``idle_timeout`` seconds without a request, and
publishes each snapshot (already serialised to JSON) for handlers to return without blocking the
IOLoop. When NVML is unavailable it answers ``available: false`` with a reason and tries again
only every ``retry_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import threading
import time
from dataclasses import dataclass, field

from traitlets import Bool, Float, Unicode, default, observe, validate
from traitlets.config import LoggingConfigurable

from jupyter_tk.server.gpu.history import MIN_INTERVAL_SECONDS, GpuHistory
from jupyter_tk.server.gpu.kernels import KernelAttribution
from jupyter_tk.server.gpu.stats import GpuStatsReader, NvmlUnavailable

THREAD_NAME = "jupyter-tk-gpu-sampler"
# How long close() waits for the thread to finish a sample in progress.
CLOSE_JOIN_SECONDS = 10.0


@dataclass(frozen=True)
class GpuSnapshot:
    """One published sample: the ``GET jupyter-tk/api/gpus`` document and its JSON body."""

    data: dict
    sequence: int
    body: bytes = field(repr=False)

    @classmethod
    def build(cls, data: dict, sequence: int) -> GpuSnapshot:
        return cls(data=data, sequence=sequence, body=json.dumps(data).encode())


class GpuSampler(LoggingConfigurable):
    """Samples the GPUs this server may see, once for all clients, off the IOLoop."""

    enabled = Bool(
        True,
        config=True,
        help="""Whether to read GPU state at all. When False, NVML is never loaded and the API
        answers `available: false`. Example: `c.GpuSampler.enabled = False` on CPU-only images.""",
    )

    interval = Float(
        1.0,
        config=True,
        help=f"""Seconds between two samples while someone is watching (minimum
        {MIN_INTERVAL_SECONDS}; smaller values are raised to it with a warning). Every client
        shares the same samples. Example: `c.GpuSampler.interval = 2.0`.""",
    )

    idle_timeout = Float(
        60.0,
        config=True,
        help="""Seconds without any request after which sampling pauses (no NVML calls at all).
        The next request resumes it and waits for a fresh sample (up to `fresh_sample_timeout`).
        Example: `c.GpuSampler.idle_timeout = 300`.""",
    )

    fresh_sample_timeout = Float(
        2.0,
        config=True,
        help="""Seconds a request waits for a fresh sample when sampling was paused or has not
        produced its first sample yet; after that it gets the last sample (or
        `available: false` while NVML is still starting). Example:
        `c.GpuSampler.fresh_sample_timeout = 5.0`.""",
    )

    retry_interval = Float(
        60.0,
        config=True,
        help="""Seconds between attempts to start NVML while it is unavailable (no library, no
        driver, no device), and between re-checks of a GPU that was lost. Requests in between
        get the last answer without touching NVML. Example: `c.GpuSampler.retry_interval = 300`.""",
    )

    history_seconds = Float(
        600.0,
        config=True,
        help="""Seconds of per-device history (GPU utilization, memory used) kept in memory for
        `GET jupyter-tk/api/gpus/history`, so a panel opened late still draws a chart. Samples
        are only taken while someone watches, so the history has gaps when nobody did. Example:
        `c.GpuSampler.history_seconds = 1800`.""",
    )

    visible_devices = Unicode(
        None,
        allow_none=True,
        config=True,
        help="""Which GPUs this server reports, in `CUDA_VISIBLE_DEVICES` syntax: NVML indices,
        GPU UUIDs (`GPU-...`) and MIG UUIDs (`MIG-...`), comma-separated, or a unique UUID
        prefix; an empty string means none; the list stops at the first entry naming no
        device (e.g. `NoDevFiles`, `-1`), as in CUDA. None (unset) reports every GPU. Default:
        the `CUDA_VISIBLE_DEVICES` environment variable. Example:
        `c.GpuSampler.visible_devices = "0,2"`.""",
    )

    device_directory = Unicode(
        "/dev",
        config=True,
        help="""Folder holding the GPUs' device files (`nvidia<minor>`, the minor number as NVML
        reports it). When NVML's process ids are not this server's (older drivers in
        containers report the host's), a GPU's processes are attributed to the kernels that hold
        its device file open (see docs/gpu-attribution.md). Example:
        `c.GpuSampler.device_directory = "/dev"`.""",
    )

    @observe("device_directory")
    def _move_device_directory(self, change):
        attribution = self.__dict__.get("_attribution")  # absent while __init__ applies config
        if attribution is not None:
            attribution.device_directory = change["new"]

    @default("visible_devices")
    def _visible_devices_from_env(self):
        return os.environ.get("CUDA_VISIBLE_DEVICES")

    @validate("interval")
    def _clamp_interval(self, proposal):
        value = proposal["value"]
        if value < MIN_INTERVAL_SECONDS:
            self.log.warning(
                "GpuSampler.interval=%s is below the minimum; using %s s",
                value,
                MIN_INTERVAL_SECONDS,
            )
            return MIN_INTERVAL_SECONDS
        return value

    @observe("history_seconds")
    def _resize_history(self, change):
        history = self.__dict__.get("_history")  # absent while __init__ applies config
        if history is not None:
            history.seconds = change["new"]

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._paused = True
        self._last_request = float("-inf")
        self._snapshot: GpuSnapshot | None = None
        self._sequence = 0
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._attribution = KernelAttribution(device_directory=self.device_directory)
        self._history = GpuHistory(self.history_seconds)
        self._history_body: tuple[int, bytes] | None = None

    # -- API for the server and handlers (IOLoop thread) -------------------------------------

    def attach_kernel_manager(self, kernel_manager) -> None:
        """Map GPU processes to this server's kernels; also starts NVML early (warm-up)."""
        self._attribution.kernel_manager = kernel_manager
        self._ensure_thread()

    async def latest(self) -> GpuSnapshot:
        """The newest snapshot; fresh when sampling had paused (waits at most a bounded time)."""
        if not self.enabled:
            return self._unavailable("GPU statistics are disabled by configuration")
        self._ensure_thread()
        loop = asyncio.get_running_loop()
        waiter = None
        with self._cond:
            self._last_request = time.monotonic()
            sampling = self._thread is not None and self._thread.is_alive()
            if sampling and (self._snapshot is None or self._paused):
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
                self._cond.notify_all()
        if waiter is not None:
            try:
                await asyncio.wait_for(waiter, self.fresh_sample_timeout)
            except asyncio.TimeoutError:
                self.log.debug("No fresh GPU sample within %ss", self.fresh_sample_timeout)
        snapshot = self._snapshot
        if snapshot is None:
            return self._unavailable("Reading the GPUs (NVML is still starting); try again shortly")
        return snapshot

    def history_body(self) -> bytes:
        """The ``GET jupyter-tk/api/gpus/history`` JSON body; counts as a request (resumes)."""
        if self.enabled:
            self._ensure_thread()
            with self._cond:
                self._last_request = time.monotonic()
                if self._paused:
                    self._cond.notify_all()
        sequence = self._sequence
        cached = self._history_body
        if cached is None or cached[0] != sequence:
            body = json.dumps(self._history.as_dict(self.interval)).encode()
            cached = self._history_body = (sequence, body)
        return cached[1]

    @property
    def snapshot(self) -> GpuSnapshot | None:
        """The last published snapshot, without counting as a request (None before the first)."""
        return self._snapshot

    @property
    def paused(self) -> bool:
        """True while the thread waits for a request (or has not started)."""
        return self._paused

    async def close(self) -> None:
        """Stop the thread (it shuts NVML down) without blocking the IOLoop."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        thread = self._thread
        if thread is None:
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, thread.join, CLOSE_JOIN_SECONDS)
        if thread.is_alive():
            self.log.warning("GPU sampler thread still busy in NVML after %ss", CLOSE_JOIN_SECONDS)

    # -- the sampler thread ---------------------------------------------------------------------

    def _ensure_thread(self) -> None:
        with self._cond:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)
            self._thread.start()

    def _wanted(self) -> bool:
        idle_for = time.monotonic() - self._last_request
        return self._snapshot is None or bool(self._waiters) or idle_for <= self.idle_timeout

    def _run(self) -> None:
        reader = GpuStatsReader(self.visible_devices, self.retry_interval, self.log)
        next_open = 0.0
        reason = None
        try:
            while True:
                with self._cond:
                    while not self._stopping and not self._wanted():
                        self._paused = True
                        self._cond.wait()
                    if self._stopping:
                        return
                    self._paused = False
                started = time.monotonic()
                if not reader.is_open and started >= next_open:
                    try:
                        reader.open()
                        reason = None
                        self.log.info(
                            "GPU sampler: %d device(s), driver %s",
                            len(reader.rows),
                            reader.driver_version,
                        )
                    except NvmlUnavailable as error:
                        if error.reason != reason:
                            self.log.info("GPU statistics unavailable: %s", error.reason)
                        reason = error.reason
                        next_open = started + self.retry_interval
                self._publish(self._sample(reader, reason))
                with self._cond:
                    remaining = self.interval - (time.monotonic() - started)
                    if remaining > 0 and not self._stopping:
                        self._cond.wait(remaining)
        except Exception:
            self.log.exception("GPU sampler thread failed; GPU statistics stop here")
            self._publish(self._document(False, "The GPU sampler failed (see the server log)"))
        finally:
            reader.close()
            with self._cond:
                self._paused = True
            self._wake_waiters()  # nobody waits for a sample that will not come

    def _sample(self, reader: GpuStatsReader, reason: str | None) -> dict:
        if not reader.is_open:
            return self._document(False, reason)
        devices = reader.read(self._attribution)
        document = self._document(True, None, devices)
        document["driver_version"] = reader.driver_version
        document["cuda_driver_version"] = reader.cuda_driver_version
        self._history.append(document["timestamp"], devices)
        return document

    def _document(self, available: bool, reason: str | None, devices=()) -> dict:
        return {
            "available": available,
            "reason": reason,
            "driver_version": None,
            "cuda_driver_version": None,
            "timestamp": time.time(),
            "interval": self.interval,
            "devices": list(devices),
        }

    def _publish(self, document: dict) -> None:
        body = json.dumps(document).encode()  # outside the lock the IOLoop also takes
        with self._cond:
            self._sequence += 1
            self._snapshot = GpuSnapshot(document, self._sequence, body)
        self._wake_waiters()

    def _wake_waiters(self) -> None:
        with self._cond:
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            # RuntimeError: that loop has closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, waiter)

    def _unavailable(self, reason: str) -> GpuSnapshot:
        return GpuSnapshot.build(self._document(False, reason), self._sequence)


def _wake(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_result(None)
