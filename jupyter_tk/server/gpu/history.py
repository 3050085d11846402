"""A short per-device history of GPU samples, so a panel opened late can still draw a chart."""

from __future__ import annotations

import threading
from collections import deque

# Enough room for the longest history at the fastest interval the sampler allows.
MIN_INTERVAL_SECONDS = 0.2


class GpuHistory:
    """Ring buffers of (timestamp, utilization, memory used) per device UUID.

    Written by the sampler thread, read by request handlers; a lock keeps readers consistent.
    Entries older than ``seconds`` are dropped on every append; devices not seen for that long
    are forgotten.
    """

    def __init__(self, seconds: float):
        self.seconds = seconds
        self._lock = threading.Lock()
        self._series: dict[str, deque] = {}

    def append(self, timestamp: float, devices: list[dict]) -> None:
        cutoff = timestamp - self.seconds
        capacity = int(self.seconds / MIN_INTERVAL_SECONDS) + 1
        with self._lock:
            for device in devices:
                series = self._series.get(device["uuid"])
                if series is None or series.maxlen != capacity:
                    series = deque(series or (), maxlen=capacity)
                    self._series[device["uuid"]] = series
                series.append((timestamp, device["utilization_gpu"], device["memory_used"]))
            for uuid in list(self._series):
                series = self._series[uuid]
                while series and series[0][0] < cutoff:
                    series.popleft()
                if not series:
                    del self._series[uuid]

    def as_dict(self, interval: float) -> dict:
        """The ``GET jupyter-tk/api/gpus/history`` document."""
        with self._lock:
            copies = {uuid: list(series) for uuid, series in self._series.items()}
        return {
            "interval": interval,
            "seconds": self.seconds,
            "devices": {
                uuid: {
                    "timestamps": [entry[0] for entry in entries],
                    "utilization_gpu": [entry[1] for entry in entries],
                    "memory_used": [entry[2] for entry in entries],
                }
                for uuid, entries in copies.items()
            },
        }
