"""A fake ``libnvidia-ml.so.1`` (C source in ``tests/fakes/nvml/``) and helpers to use it.

The real pynvml loads the fake by its soname, so code under test runs exactly as on a GPU machine.
Child processes find it through ``LD_LIBRARY_PATH`` (see :func:`nvml_env`); an already running
process loads it first with :func:`load_fake_nvml_in_process`.

Config (JSON, file named by ``$FAKE_NVML_CONFIG``; re-read whenever the file changes, so tests can
change GPU state while a process runs; write it with :func:`write_nvml_config`)::

    {
      "driver_version": "550.54.15",        # nvmlSystemGetDriverVersion
      "cuda_version": 12040,                 # nvmlSystemGetCudaDriverVersion (12040 = CUDA 12.4)
      "fail_init": null,                     # "driver_not_loaded" | "no_permission" | "unknown"
                                             #   | an NVML error code: nvmlInit* fails with it
      "call_delay_us": 0,                    # every call takes this long (µs), like a driver ioctl
      "call_delay_mode": "sleep",            # "sleep" (nanosleep) or "spin" (burns CPU)
      "counter_path": null,                  # file counting calls per function (read_call_counts)
      "devices": [                           # NVML index order
        {
          "name": "NVIDIA A100-SXM4-80GB",
          "uuid": "GPU-...",
          "memory_total": 85899345920,       # bytes
          "memory_used": 1073741824,         # bytes (nvmlDeviceGetMemoryInfo_v2 "used")
          "memory_reserved": 0,              # bytes (v1 reports used + reserved)
          "utilization_gpu": 10,             # percent
          "utilization_memory": 5,           # percent
          "temperature": 40,                 # °C
          "power_usage": 60.0,               # watts (NVML answers milliwatts)
          "power_limit": 300.0,              # watts (enforced and management limit)
          "processes": [{"pid": 123, "used_memory": 1048576}],   # compute; used_memory may be null
                                             #   (pids need not exist here: see foreign_pid)
          "graphics_processes": [],
          "lost": false,                     # every query answers NVML_ERROR_GPU_IS_LOST
          "handle_lost": false,              # even nvmlDeviceGetHandleByIndex fails (GPU_IS_LOST)
          "minor_number": 0,                 # N of /dev/nvidiaN (default: the NVML index)
          "unsupported": [],                 # NVML_ERROR_NOT_SUPPORTED for any of: "utilization",
                                             #   "memory", "temperature", "power_usage",
                                             #   "power_limit", "processes", "graphics_processes",
                                             #   "mig_mode", "pcie", "minor_number"
          "mig": [                           # present (even empty) = MIG mode enabled
            {"uuid": "MIG-...", "name": "...", "memory_total": 10737418240,
             "memory_used": 0, "processes": []}
          ]
        }
      ]
    }

A MIG instance answers NOT_SUPPORTED for utilization, temperature, power and its minor number,
like the real library; a MIG-enabled GPU answers NOT_SUPPORTED for utilization. To make pynvml raise
``NVMLError_FunctionNotFound`` build a variant without some functions:
``build_fake_nvml(omit=["nvmlDeviceGetPowerUsage"])``.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import struct
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path

from filelock import FileLock

SOURCE_DIR = Path(__file__).resolve().parent / "nvml"
SOURCE = SOURCE_DIR / "fake_nvml.c"
BUILD_DIR = Path(__file__).resolve().parent / "build"
LIBRARY_NAME = "libnvidia-ml.so.1"

GIB = 1 << 30
COUNTER_SLOT_BYTES = 64
COUNTER_NAME_BYTES = 56
COUNTER_TID_FIRST = 112
COUNTER_SLOTS = 128

_loaded_in_process: ctypes.CDLL | None = None


def build_fake_nvml(omit: Iterable[str] = ()) -> Path:
    """Compile the fake library (only when a source is newer) and return the folder holding it.

    ``omit`` names NVML functions to leave out of this build; each set of omissions gets its own
    folder under ``tests/fakes/build/``.
    """
    omit = sorted(set(omit))
    folder = BUILD_DIR
    if omit:
        digest = hashlib.sha256(",".join(omit).encode()).hexdigest()[:12]
        folder = BUILD_DIR / f"omit-{digest}"
    library = folder / LIBRARY_NAME
    sources = [SOURCE, *SOURCE_DIR.glob("*.h")]
    newest_source = max(path.stat().st_mtime for path in sources)
    if library.exists() and library.stat().st_mtime >= newest_source:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    # Several test sessions may share this tree: build once, under a lock, then rename atomically.
    with FileLock(str(folder / ".build.lock")):
        if library.exists() and library.stat().st_mtime >= newest_source:
            return folder
        partial = folder / f".{LIBRARY_NAME}.{os.getpid()}.tmp"
        command = [
            "gcc",
            "-shared",
            "-fPIC",
            "-O2",
            "-Wall",
            "-fvisibility=hidden",
            f"-Wl,-soname,{LIBRARY_NAME}",
            *(f"-DOMIT_{name}" for name in omit),
            "-o",
            str(partial),
            str(SOURCE),
            "-lpthread",
        ]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise RuntimeError(f"building the fake NVML failed:\n{result.stderr}")
        partial.replace(library)
    return folder


def write_nvml_config(config: dict, config_path: os.PathLike | str) -> Path:
    """(Re)write the config atomically; a running fake library picks it up on its next call."""
    path = Path(config_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as stream:
        json.dump(config, stream, indent=1)
    # A rename gives the file a new inode, which the library notices even within one mtime tick.
    os.replace(temporary, path)
    return path


def nvml_env(config: dict, config_path: os.PathLike | str) -> dict[str, str]:
    """Write the config and return the env vars a child process needs to load the fake."""
    path = write_nvml_config(config, config_path)
    folder = build_fake_nvml()
    library_path = os.environ.get("LD_LIBRARY_PATH", "")
    return {
        "LD_LIBRARY_PATH": f"{folder}:{library_path}" if library_path else str(folder),
        "FAKE_NVML_CONFIG": str(path),
    }


def load_fake_nvml_in_process() -> ctypes.CDLL:
    """Load the fake into this process so pynvml's ``CDLL("libnvidia-ml.so.1")`` resolves to it.

    Call it before anything in this process initialises NVML; set ``FAKE_NVML_CONFIG`` in
    ``os.environ`` (the library reads it on every call).
    """
    global _loaded_in_process
    if _loaded_in_process is None:
        library = build_fake_nvml() / LIBRARY_NAME
        _loaded_in_process = ctypes.CDLL(str(library), mode=ctypes.RTLD_GLOBAL)
    return _loaded_in_process


def read_call_counts(counter_path: os.PathLike | str) -> dict[str, int]:
    """NVML calls counted in ``counter_path``: ``{"*total*": n, "nvmlInitWithFlags": n, ...}``."""
    try:
        data = Path(counter_path).read_bytes()
    except FileNotFoundError:
        return {}
    counts = {}
    for slot in range(min(COUNTER_TID_FIRST, len(data) // COUNTER_SLOT_BYTES)):
        entry = data[slot * COUNTER_SLOT_BYTES : (slot + 1) * COUNTER_SLOT_BYTES]
        name = entry[:COUNTER_NAME_BYTES].split(b"\0", 1)[0].decode()
        if name:
            counts[name] = struct.unpack_from("<Q", entry, COUNTER_NAME_BYTES)[0]
    return counts


def read_calling_threads(counter_path: os.PathLike | str) -> set[int]:
    """Linux thread ids (``threading.get_native_id()``) that called the library."""
    try:
        data = Path(counter_path).read_bytes()
    except FileNotFoundError:
        return set()
    threads = set()
    for slot in range(COUNTER_TID_FIRST, min(COUNTER_SLOTS, len(data) // COUNTER_SLOT_BYTES)):
        (tid,) = struct.unpack_from("<Q", data, slot * COUNTER_SLOT_BYTES)
        if tid:
            threads.add(tid)
    return threads


def foreign_pid(offset: int = 0) -> int:
    """A process id that cannot exist in this PID namespace (above the kernel's ``pid_max``), as
    NVML reports host pids to a container on older drivers."""
    limit = int(Path("/proc/sys/kernel/pid_max").read_text())
    return limit + 1 + offset


def fake_uuid(index: int, mig: int | None = None) -> str:
    """A well-formed, stable UUID for fake GPU ``index`` (or its MIG instance ``mig``)."""
    if mig is None:
        return f"GPU-{index:08x}-1111-2222-3333-{index:012x}"
    return f"MIG-{index:08x}-{mig:04x}-2222-3333-{index:012x}"


def fake_gpu(index: int, **fields) -> dict:
    """A realistic device entry for the config, overridden by ``fields``."""
    device = {
        "name": "NVIDIA A100-SXM4-80GB",
        "uuid": fake_uuid(index),
        "memory_total": 80 * GIB,
        "memory_used": (index + 1) * GIB,
        "utilization_gpu": (10 * index + 7) % 101,
        "utilization_memory": (5 * index + 3) % 101,
        "temperature": 35 + index,
        "power_usage": 60.0 + index,
        "power_limit": 400.0,
        "processes": [],
    }
    device.update(fields)
    return device


def fake_mig_gpu(index: int, instances: int = 2, **fields) -> dict:
    """A MIG-enabled GPU with ``instances`` 1g.10gb instances."""
    mig = [
        {
            "uuid": fake_uuid(index, slot),
            "name": "NVIDIA A100-SXM4-80GB MIG 1g.10gb",
            "memory_total": 10 * GIB,
            "memory_used": (slot + 1) * GIB // 4,
            "processes": [],
        }
        for slot in range(instances)
    ]
    return fake_gpu(index, mig=mig, **fields)


def fake_config(devices: list[dict], **options) -> dict:
    """A config with the given devices and top-level options (driver, delays, counter...)."""
    config = {"driver_version": "550.54.15", "cuda_version": 12040, "devices": devices}
    config.update(options)
    return config


class FakeNvml:
    """The in-process fake library driven through one config file (and a call counter).

    ``set()`` rewrites the config; the library picks it up on its next call. Counters and calling
    threads accumulate in ``counter_path`` for as long as the config names it.
    """

    def __init__(self, folder: os.PathLike | str):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.config_path = self.folder / "nvml.json"
        self.counter_path = self.folder / "nvml-calls.bin"
        self.config: dict = {}

    def set(self, devices: list[dict], **options) -> dict:
        options.setdefault("counter_path", str(self.counter_path))
        self.config = fake_config(devices, **options)
        write_nvml_config(self.config, self.config_path)
        return self.config

    def calls(self, name: str = "*total*") -> int:
        return read_call_counts(self.counter_path).get(name, 0)

    def threads(self) -> set[int]:
        return read_calling_threads(self.counter_path)

    def env(self) -> dict[str, str]:
        """Env vars for a child process that should see the same GPUs."""
        return nvml_env(self.config, self.config_path)
