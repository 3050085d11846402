"""The GPU panel and status bar in a real JupyterLab + Chromium, fed by the fake NVML library.

Given a server whose pynvml loads the fake ``libnvidia-ml.so.1`` with a busy A100 (one process
is a kernel of this server, one is not), an H100 whose load keeps changing, a MIG-enabled A100
with two instances and a lost GPU, the panel must show every figure, a live sparkline, the MIG
group and the error row; the status bar must show the busiest GPU and follow live changes.
A server without any NVML library shows the empty state with the server's reason. A server in
a pod whose driver reports host pids names its kernels by the GPU device files they hold open.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time

import psutil
import pytest
from jupyter_client import BlockingKernelClient
from playwright.sync_api import expect

from tests.e2e.conftest import SCREENSHOTS
from tests.fakes.nvml import (
    GIB,
    fake_config,
    fake_gpu,
    fake_uuid,
    foreign_pid,
    nvml_env,
    write_nvml_config,
)
from tests.support.lab_server import LabServer, open_lab, open_sidebar_panel, widen_left_sidebar

PANEL = "jp-tk-gpu-panel"
# Processes of this machine that are no kernel of the server (NVML's pids are this namespace's).
OTHER_PID = os.getpid()
OTHER_PID_ON_H100 = os.getppid()
# Wide enough for a GPU name on one line, as users size the panel.
SIDEBAR_WIDTH = 380
NOTEBOOK = "train-resnet.ipynb"
# Sampling and polling fast enough that a sparkline gets a shape within seconds.
INTERVAL_SECONDS = 0.5
# An SVG path that draws at least one segment: a move, then a line.
LINE_WITH_SEGMENT = re.compile(r"^M[\d.]+,[\d.]+L")


class FakeGpus:
    """The fake library's config for this module, rewritten twice a second: the H100's load
    follows a wave (so its sparkline has a shape) and tests may change the A100's load."""

    def __init__(self, path):
        self.path = path
        self.kernel_pid: int | None = None
        self.busy_utilization = 73
        self._started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def config(self) -> dict:
        processes = [{"pid": OTHER_PID, "used_memory": 2 * GIB}]
        if self.kernel_pid is not None:
            processes.insert(0, {"pid": self.kernel_pid, "used_memory": 12 * GIB})
        phase = (time.monotonic() - self._started) / 2.5
        wave = round(40 + 25 * math.sin(phase) + 8 * math.sin(3.1 * phase))
        return fake_config(
            [
                fake_gpu(
                    0,
                    utilization_gpu=self.busy_utilization,
                    memory_used=20 * GIB,
                    memory_total=80 * GIB,
                    temperature=54,
                    power_usage=231.4,
                    power_limit=400.0,
                    processes=processes,
                ),
                fake_gpu(
                    1,
                    name="NVIDIA H100 80GB HBM3",
                    utilization_gpu=wave,
                    memory_used=31 * GIB,
                    power_usage=180 + 3 * wave,
                    power_limit=700.0,
                    processes=[{"pid": OTHER_PID_ON_H100, "used_memory": 30 * GIB}],
                ),
                fake_gpu(
                    2,
                    name="NVIDIA A100-SXM4-40GB",
                    mig=[
                        {
                            "uuid": fake_uuid(2, slot),
                            "name": "NVIDIA A100-SXM4-40GB MIG 2g.10gb",
                            "memory_total": 10 * GIB,
                            "memory_used": used * GIB,
                            "processes": [],
                        }
                        for slot, used in enumerate([2, 5])
                    ],
                ),
                fake_gpu(3, lost=True),
            ]
        )

    def write(self) -> None:
        write_nvml_config(self.config(), self.path)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL_SECONDS):
            self.write()


def kernel_pid(server: LabServer, kernel_id: str) -> int:
    """The pid of a kernel process of ``server`` (its command line names its connection file)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        for child in psutil.Process(server.pid).children(recursive=True):
            try:
                if any(kernel_id in part for part in child.cmdline()):
                    return child.pid
            except psutil.NoSuchProcess:
                continue
        time.sleep(0.2)
    raise AssertionError(f"no process for kernel {kernel_id}")


def wait_for_api(server: LabServer, predicate, what: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        body = server.api("jupyter-tk/api/gpus")
        if predicate(body):
            return body
        time.sleep(0.3)
    raise AssertionError(f"server never reported {what}; last answer: {body}")


@pytest.fixture(scope="module")
def gpus(tmp_path_factory):
    fake = FakeGpus(tmp_path_factory.mktemp("nvml") / "nvml.json")
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def gpu_lab(tmp_path_factory, gpus):
    base = tmp_path_factory.mktemp("lab-gpu")
    server = LabServer(
        base,
        env=nvml_env(gpus.config(), gpus.path),
        args=[f"--GpuSampler.interval={INTERVAL_SECONDS}"],
        user_settings={"jupyter-tk:gpu": {"refreshInterval": INTERVAL_SECONDS}},
    )
    with server:
        gpus.start()
        # A notebook whose kernel uses GPU 0: the fake lists the kernel's real pid.
        session = server.api(
            "api/sessions",
            method="POST",
            body={
                "path": NOTEBOOK,
                "name": NOTEBOOK,
                "type": "notebook",
                "kernel": {"name": "python3"},
            },
        )
        server.kernel_id = session["kernel"]["id"]
        gpus.kernel_pid = kernel_pid(server, server.kernel_id)
        wait_for_api(
            server,
            lambda body: any(
                p["kernel_id"] == server.kernel_id for p in body["devices"][0]["processes"]
            ),
            "the kernel's GPU process",
        )
        yield server


@pytest.fixture(scope="module")
def no_gpu_lab(tmp_path_factory):
    # No fake on LD_LIBRARY_PATH and no real driver on this machine: pynvml finds no library.
    with LabServer(tmp_path_factory.mktemp("lab-no-gpu")) as server:
        yield server


def card(panel, uuid: str):
    return panel.locator(f'.jp-tk-gpu-card[data-uuid="{uuid}"]')


def test_panel_shows_every_gpu_with_figures_mig_group_and_error_row(gpu_lab, page, screenshot):
    snapshot = gpu_lab.api("jupyter-tk/api/gpus")
    open_lab(page, gpu_lab)

    panel = open_sidebar_panel(page, PANEL)

    busy = card(panel, fake_uuid(0))
    expect(busy.locator(".jp-tk-gpu-name")).to_have_text("NVIDIA A100-SXM4-80GB")
    expect(busy.locator(".jp-tk-meter").nth(0)).to_contain_text("Utilization73%")
    expect(busy.locator(".jp-tk-meter").nth(1)).to_contain_text("Memory20/80 GiB")
    expect(busy.get_by_role("meter", name="Utilization")).to_have_attribute("aria-valuenow", "73")
    expect(busy.locator(".jp-tk-gpu-temperature")).to_have_text("54 °C")
    expect(busy.locator(".jp-tk-gpu-facts")).to_contain_text("231 / 400 W")
    mine = busy.locator('tr[data-kernel="this-server"]')
    expect(mine).to_contain_text(f"this notebook: {NOTEBOOK}")
    expect(mine).to_contain_text("12 GiB")
    other = busy.locator('tr[data-kernel="other"]')
    expect(other).to_contain_text(str(OTHER_PID))
    expect(other).to_contain_text("other process")

    group = panel.locator(f'.jp-tk-gpu-mig-group[data-parent-uuid="{fake_uuid(2)}"]')
    expect(group.locator(".jp-tk-gpu-mig-heading")).to_contain_text("MIG on GPU-00000002")
    expect(group.locator(".jp-tk-gpu-mig-heading")).to_contain_text("2 instances")
    expect(group.locator(".jp-tk-gpu-card")).to_have_count(2)
    expect(card(group, fake_uuid(2, 0))).to_contain_text("MIG 2g.10gb")
    expect(card(group, fake_uuid(2, 0))).to_contain_text("2/10 GiB")
    expect(card(group, fake_uuid(2, 1))).to_contain_text("5/10 GiB")
    # NVML reports no utilization for MIG instances: no utilization bar, never "null".
    expect(group.get_by_role("meter", name="Utilization")).to_have_count(0)
    expect(group).not_to_contain_text("null")

    # A lost GPU cannot even say its UUID: the server names it by index, with the error.
    lost = next(d for d in snapshot["devices"] if d["index"] == 3)
    assert lost["error"], "the fake's lost GPU must come back as an error row"
    expect(card(panel, lost["uuid"]).get_by_role("alert")).to_have_text(lost["error"])

    footer = panel.locator(".jp-tk-panel-footer")
    expect(footer).to_contain_text(f"Driver {snapshot['driver_version']}")
    expect(footer).to_contain_text(f"CUDA {snapshot['cuda_driver_version']}")

    # History (loaded once) plus live samples draw a line, not just a dot, and it grows.
    expect(busy.locator(".jp-tk-sparkline-line")).to_have_attribute("d", LINE_WITH_SEGMENT)
    wave = card(panel, fake_uuid(1)).locator(".jp-tk-sparkline-line")
    segments = wave.evaluate("e => e.getAttribute('d').split('L').length")
    # ...and keeps growing: wait for ~15 s of samples, which also gives the screenshot a shape.
    wanted = max(segments + 4, 30)
    expect(wave).to_have_attribute("d", re.compile(rf"(L[^L]+){{{wanted}}}"), timeout=30_000)
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    screenshot(page, "lab-gpu-panel")


def test_status_bar_shows_busiest_gpu_follows_changes_and_opens_panel(gpu_lab, gpus, page):
    open_lab(page, gpu_lab)
    item = page.locator(".jp-tk-gpu-status-text")
    expect(item).to_have_text("GPU max 73% · 20/80 GiB")
    _save_statusbar(page)

    gpus.busy_utilization = 99
    try:
        expect(item).to_have_text("GPU max 99% · 20/80 GiB", timeout=15_000)
    finally:
        gpus.busy_utilization = 73

    page.locator(".jp-tk-gpu-status-button").click()
    expect(page.locator(f"#{PANEL}")).to_be_visible()


def _save_statusbar(page):
    bar = page.locator("#jp-main-statusbar")
    box = bar.bounding_box()
    # The left half holds the item; a narrow strip keeps the picture readable.
    page.screenshot(
        path=str(SCREENSHOTS / "lab-statusbar.png"),
        clip={
            "x": box["x"],
            "y": box["y"] - 2,
            "width": min(700, box["width"]),
            "height": box["height"] + 4,
        },
    )


def test_panel_is_readable_in_the_dark_theme(gpu_lab, page, screenshot):
    open_lab(page, gpu_lab)
    panel = open_sidebar_panel(page, PANEL)
    busy = card(panel, fake_uuid(0))
    expect(busy).to_be_visible()
    light_text = busy.locator(".jp-tk-gpu-name").evaluate("e => getComputedStyle(e).color")

    page.evaluate(
        "() => window.jupyterapp.commands.execute("
        "'apputils:change-theme', {theme: 'JupyterLab Dark'})"
    )
    expect(page.locator("body")).to_have_attribute("data-jp-theme-light", "false")

    def luminance(css_color: str) -> float:
        r, g, b = (float(v) for v in re.findall(r"[\d.]+", css_color)[:3])
        return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255

    dark_text = busy.locator(".jp-tk-gpu-name").evaluate("e => getComputedStyle(e).color")
    dark_background = panel.evaluate("e => getComputedStyle(e).backgroundColor")
    assert luminance(light_text) < 0.5, light_text
    assert luminance(dark_text) > 0.5, f"text must turn light on the dark theme: {dark_text}"
    assert luminance(dark_background) < 0.5, dark_background
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    screenshot(page, "lab-gpu-panel-dark")


def test_without_nvml_the_panel_says_why_and_the_status_bar_stays_hidden(
    no_gpu_lab, page, screenshot
):
    snapshot = no_gpu_lab.api("jupyter-tk/api/gpus")
    assert snapshot["available"] is False and snapshot["reason"]
    open_lab(page, no_gpu_lab)

    panel = open_sidebar_panel(page, PANEL)

    empty = panel.locator(".jp-tk-empty")
    expect(empty.get_by_role("heading")).to_have_text("No GPU visible to this server")
    expect(empty.locator(".jp-tk-empty-reason")).to_have_text(snapshot["reason"])
    expect(panel.locator(".jp-tk-gpu-card")).to_have_count(0)
    expect(page.locator(".jp-tk-gpu-status-text")).to_have_count(0)
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    screenshot(page, "lab-gpu-empty")


def test_status_bar_item_can_be_turned_off_in_the_settings(gpu_lab, page):
    settings = "lab/api/settings/jupyter-tk:gpu"
    gpu_lab.api(settings, method="PUT", body={"raw": '{"showStatusBar": false}'})
    try:
        open_lab(page, gpu_lab)
        panel = open_sidebar_panel(page, PANEL)
        expect(card(panel, fake_uuid(0))).to_be_visible()
        expect(page.locator(".jp-tk-gpu-status")).to_be_hidden()
    finally:
        gpu_lab.api(settings, method="PUT", body={"raw": "{}"})


# -- in a pod whose driver reports host pids -----------------------------------------------------

POD_NOTEBOOKS = (("train-resnet.ipynb", 0), ("eval.ipynb", 1), ("sweep.ipynb", 1))


def run_in_kernel(server: LabServer, kernel_id: str, code: str) -> None:
    client = BlockingKernelClient(
        connection_file=str(server.base / "runtime" / f"kernel-{kernel_id}.json")
    )
    client.load_connection_file()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive(code, timeout=60)
        assert reply["content"]["status"] == "ok", reply["content"]
    finally:
        client.stop_channels()


@pytest.fixture(scope="module")
def pod_lab(tmp_path_factory):
    """Three notebooks: one holds GPU 0's device file, two hold GPU 1's; NVML lists host pids."""
    base = tmp_path_factory.mktemp("lab-pod")
    devices = base / "dev"
    devices.mkdir()
    for minor in (0, 1):
        (devices / f"nvidia{minor}").write_bytes(b"")
    config = fake_config(
        [
            fake_gpu(
                0,
                utilization_gpu=64,
                memory_used=13 * GIB,
                processes=[{"pid": foreign_pid(0), "used_memory": 12 * GIB}],
            ),
            fake_gpu(
                1,
                name="NVIDIA H100 80GB HBM3",
                utilization_gpu=88,
                memory_used=15 * GIB,
                power_limit=700.0,
                processes=[
                    {"pid": foreign_pid(1), "used_memory": 8 * GIB},
                    {"pid": foreign_pid(2), "used_memory": 6 * GIB},
                ],
            ),
        ]
    )
    server = LabServer(
        base,
        env=nvml_env(config, base / "nvml.json"),
        args=[
            f"--GpuSampler.interval={INTERVAL_SECONDS}",
            f"--GpuSampler.device_directory={devices}",
        ],
        user_settings={"jupyter-tk:gpu": {"refreshInterval": INTERVAL_SECONDS}},
    )
    with server:
        server.kernel_ids = {}
        for notebook, minor in POD_NOTEBOOKS:
            session = server.api(
                "api/sessions",
                method="POST",
                body={
                    "path": notebook,
                    "name": notebook,
                    "type": "notebook",
                    "kernel": {"name": "python3"},
                },
            )
            kernel_id = session["kernel"]["id"]
            server.kernel_ids[notebook] = kernel_id
            run_in_kernel(
                server, kernel_id, f"gpu = open({str(devices / f'nvidia{minor}')!r}, 'rb')"
            )
        wait_for_api(
            server,
            lambda body: (
                body["devices"][0]["processes"][0]["kernel_id"] is not None
                and len(body["devices"][1]["kernels"]) == 2
            ),
            "the kernels holding the device files",
        )
        yield server


def test_in_a_pod_with_host_pids_the_panel_names_kernels_by_device_file(pod_lab, page, screenshot):
    snapshot = pod_lab.api("jupyter-tk/api/gpus")
    assert [d["attribution"] for d in snapshot["devices"]] == ["device-file", "device-file"]
    open_lab(page, pod_lab)
    panel = open_sidebar_panel(page, PANEL)

    single = card(panel, fake_uuid(0))
    mine = single.locator('tr[data-kernel="this-server"]')
    expect(mine).to_contain_text(str(foreign_pid(0)))
    expect(mine).to_contain_text("this notebook: train-resnet.ipynb")
    expect(mine).to_contain_text("12 GiB")
    expect(single.locator('.jp-tk-gpu-attribution[data-attribution="device-file"]')).to_have_text(
        "NVML reports process ids from outside this server: "
        "processes are matched to kernels by the GPU's device file they hold open."
    )

    shared = card(panel, fake_uuid(1))
    expect(shared.locator('tr[data-kernel="other"]')).to_have_count(2)
    expect(shared.locator('tr[data-kernel="other"]').first).to_contain_text("not identified")
    expect(shared.locator(".jp-tk-gpu-attribution")).to_have_text(
        re.compile(
            r"^Holding this GPU's device file: (eval|sweep)\.ipynb, (eval|sweep)\.ipynb\. "
            r"Its 2 processes \(14 GiB\) cannot be matched to them one by one"
        )
    )
    expect(shared).not_to_contain_text("other process")
    widen_left_sidebar(page, SIDEBAR_WIDTH)
    screenshot(page, "lab-gpu-panel-pod")
