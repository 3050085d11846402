"""Debian's real Prometheus and the fake dcgm-exporter (tests/fakes/dcgm_exporter.py) it scrapes.

    with DcgmExporterProcess(tmp, devices) as exporter:
        with PrometheusProcess(tmp, [exporter.target]) as prom:
            prom.wait_for_series("DCGM_FI_DEV_GPU_UTIL")

Prometheus scrapes every second here so that tests see changes quickly; `stop()` and `start()`
again simulate a Prometheus that goes away and comes back.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Self

import requests

from tests.support.hub_process import ChildProcess
from tests.support.lab_server import free_port

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
REPO = Path(__file__).resolve().parents[2]


class DcgmExporterProcess(ChildProcess):
    """`python -m tests.fakes.dcgm_exporter`, serving the devices of `devices` (rewritable)."""

    def __init__(self, workdir: Path, devices: list[dict]) -> None:
        super().__init__(workdir, "dcgm-exporter.log")
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.devices_path = self.workdir / "devices.json"
        self.set_devices(devices)

    def set_devices(self, devices: list[dict]) -> None:
        temporary = self.devices_path.with_suffix(".tmp")
        temporary.write_text(json.dumps(devices))
        temporary.replace(self.devices_path)

    def start(self) -> Self:
        command = [sys.executable, "-m", "tests.fakes.dcgm_exporter", "--port", str(self.port)]
        self._spawn([*command, "--devices", str(self.devices_path)], cwd=REPO)
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"http://{self.target}/metrics", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._give_up(RuntimeError, "the fake dcgm-exporter did not start")
            time.sleep(0.1)


class PrometheusProcess(ChildProcess):
    """Prometheus scraping `targets` every second, with its data in the work folder."""

    stop_timeout = 15.0

    def __init__(self, workdir: Path, targets: list[str]) -> None:
        super().__init__(workdir, "prometheus.log")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config_path = self.workdir / "prometheus.yml"
        self.config_path.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: dcgm\n    static_configs:\n"
            f"      - targets: {json.dumps(targets)}\n"
        )

    def start(self) -> Self:
        self._spawn(
            [
                PROMETHEUS,
                f"--config.file={self.config_path}",
                f"--storage.tsdb.path={self.workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
            ],
            cwd=self.workdir,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.url}/-/ready", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self._give_up(RuntimeError, "Prometheus did not start")
            time.sleep(0.2)

    def query(self, promql: str) -> list[dict]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=5)
        answer.raise_for_status()
        return answer.json()["data"]["result"]

    def wait_for_series(self, promql: str, count: int = 1, timeout: float = 60.0) -> list[dict]:
        """Wait until `promql` returns at least `count` series (the first scrapes)."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if len(result) >= count:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"Prometheus has {len(result)} series of {promql}")
            time.sleep(0.3)
