"""Which of this server's kernels use each GPU: by NVML's process ids, or by open device files.

Called from the sampler thread: it only reads the kernel manager (a snapshot of its kernel ids,
then each kernel's provisioner pid) and /proc. A process belongs to a kernel when it is the
kernel's process or one of its descendants (a DataLoader worker, a subprocess).

NVML reports process ids in the PID namespace the driver chooses. On recent drivers that is the
caller's, even in a container, and the ids match this server's kernels exactly (``"pid"``). Older
drivers and some container runtimes report the host's ids, which do not exist here; then every
process would look like someone else's. For such a device the fallback is its device file
(``/dev/nvidia<minor>``): the local processes that hold it open are the ones that can own NVML's
processes (``"device-file"``). When exactly one local owner (a kernel with its descendants, or one
other process) holds it and NVML lists exactly one process that is not here, that process is the
owner's; otherwise the device lists the kernels holding the file, and nobody gets a guess. A
device file names one GPU only, so nothing is ever matched across GPUs.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable

import psutil

PROC = "/proc"
# Reading every process's descriptors costs milliseconds: the holders found are reused while
# NVML lists the same processes and the same kernels run, for at most this long (seconds).
HOLDERS_MAX_AGE_SECONDS = 10.0


def exists_here(pid: int) -> bool:
    """Whether ``pid`` is a process of this PID namespace (NVML may report the host's)."""
    return pid > 0 and os.path.exists(f"{PROC}/{pid}")


def processes_holding(paths: Iterable[str], skip: int | None = None) -> dict[str, set[int]]:
    """For each path, the processes of this namespace with an open file descriptor on it.

    Processes whose descriptors this user may not read (other users', without root) are left out.
    """
    found: dict[str, set[int]] = {path: set() for path in paths}
    if not found:
        return found
    for entry in os.scandir(PROC):
        if not entry.name.isdigit() or int(entry.name) == skip:
            continue
        fd_dir = f"{PROC}/{entry.name}/fd"
        try:
            descriptors = os.listdir(fd_dir)
        except OSError:
            continue  # gone, or not ours to see
        for descriptor in descriptors:
            try:
                target = os.readlink(f"{fd_dir}/{descriptor}")
            except OSError:
                continue  # closed since the listing
            holders = found.get(target)
            if holders is not None:
                holders.add(int(entry.name))
    return found


class KernelAttribution:
    """Fills ``kernel_id`` of each GPU process and ``attribution`` / ``kernels`` of each device."""

    def __init__(self, kernel_manager=None, device_directory: str = "/dev"):
        self.kernel_manager = kernel_manager
        self.device_directory = device_directory
        self._holders: tuple[tuple, float, dict[str, set[int]]] | None = None

    def kernel_pids(self) -> dict[int, str]:
        """Process id -> kernel id for every running kernel with a local process."""
        manager = self.kernel_manager
        if manager is None:
            return {}
        owners = {}
        for kernel_id in list(manager.list_kernel_ids()):
            try:
                kernel = manager.get_kernel(kernel_id)
            except KeyError:
                continue  # shut down since the list was taken
            pid = getattr(getattr(kernel, "provisioner", None), "pid", None)
            if isinstance(pid, int) and pid > 0:
                owners[pid] = kernel_id
        return owners

    def __call__(self, devices: list[dict], device_files: list[Callable[[], str | None]]) -> None:
        """Attribute the processes of ``devices`` (dicts of ``GET jupyter-tk/api/gpus``).

        ``device_files[i]()`` is the bare name of device ``i``'s device file (``nvidia0``), or
        None when no file tells it apart from other devices; asked only when needed.
        """
        owner_of = _Owners(self.kernel_pids())
        fallback = []
        for device, device_file in zip(devices, device_files, strict=True):
            foreign = []
            for process in device["processes"]:
                if exists_here(process["pid"]):
                    process["kernel_id"] = owner_of.kernel(process["pid"])
                else:
                    foreign.append(process)
            if foreign:
                fallback.append((device, device_file(), foreign))
            else:
                device["attribution"] = "pid"
                device["kernels"] = _kernels_by_pid(device["processes"])
        if not fallback:
            return
        paths = {
            name: os.path.realpath(os.path.join(self.device_directory, name))
            for _, name, _ in fallback
            if name is not None
        }
        holders = self._processes_holding(
            set(paths.values()),
            (
                frozenset(owner_of.kernels),
                frozenset(p["pid"] for _, _, foreign in fallback for p in foreign),
            ),
        )
        for device, name, foreign in fallback:
            if name is None:
                # NVML's ids are not ours and no file tells this device apart: no guess.
                device["attribution"] = None
                device["kernels"] = _kernels_by_pid(device["processes"])
                continue
            device["attribution"] = "device-file"
            # Processes NVML listed with ids of this namespace are accounted for already.
            listed = {process["pid"] for process in device["processes"]}
            local = sorted(holders[paths[name]] - listed)
            groups: dict[tuple, list[int]] = {}
            for pid in local:
                kernel_id = owner_of.kernel(pid)
                key = ("kernel", kernel_id) if kernel_id else ("process", pid)
                groups.setdefault(key, []).append(pid)
            exact = len(groups) == 1 and len(foreign) == 1
            if exact:
                ((kind, owner),) = groups
                foreign[0]["kernel_id"] = owner if kind == "kernel" else None
            unlisted = {id(process) for process in foreign}
            kernels = {
                entry["kernel_id"]: entry
                for entry in _kernels_by_pid(
                    [p for p in device["processes"] if id(p) not in unlisted]
                )
            }
            for (kind, owner), pids in groups.items():
                if kind != "kernel":
                    continue
                used = foreign[0]["used_memory"] if exact else None
                entry = kernels.get(owner)
                if entry is None:
                    kernels[owner] = {"kernel_id": owner, "pids": pids, "used_memory": used}
                else:
                    # Also matched by its own id here: the unmatched processes may be its too,
                    # so its total memory is unknown.
                    entry["pids"] = sorted({*entry["pids"], *pids})
                    entry["used_memory"] = None
            device["kernels"] = list(kernels.values())

    def _processes_holding(self, paths: set[str], situation: tuple) -> dict[str, set[int]]:
        """:func:`processes_holding`, reused while the ``situation`` stays the same."""
        key = (frozenset(paths), situation)
        now = time.monotonic()
        cached = self._holders
        if cached is not None and cached[0] == key and now - cached[1] < HOLDERS_MAX_AGE_SECONDS:
            return cached[2]
        # This server holds every device file open itself (NVML does): it owns no GPU process.
        holders = processes_holding(paths, skip=os.getpid())
        self._holders = (key, now, holders)
        return holders


class _Owners:
    """Kernel ids of processes (a kernel or a descendant), looked up once per sample."""

    def __init__(self, kernels: dict[int, str]):
        self.kernels = kernels
        self._cache: dict[int, str | None] = {}

    def kernel(self, pid: int) -> str | None:
        if not self.kernels:
            return None
        if pid not in self._cache:
            self._cache[pid] = self._lookup(pid)
        return self._cache[pid]

    def _lookup(self, pid: int) -> str | None:
        if pid in self.kernels:
            return self.kernels[pid]
        try:
            ancestors = psutil.Process(pid).parents()
        except (psutil.Error, ValueError):
            return None  # gone, not ours to see, or not a valid pid
        for ancestor in ancestors:
            if ancestor.pid in self.kernels:
                return self.kernels[ancestor.pid]
        return None


def _kernels_by_pid(processes: list[dict]) -> list[dict]:
    """The ``kernels`` entries of processes matched by their own ids, in order of appearance."""
    kernels: dict[str, dict] = {}
    for process in processes:
        kernel_id = process["kernel_id"]
        if kernel_id is None:
            continue
        entry = kernels.setdefault(
            kernel_id, {"kernel_id": kernel_id, "pids": [], "used_memory": 0}
        )
        entry["pids"].append(process["pid"])
        used = process["used_memory"]
        total = entry["used_memory"]
        entry["used_memory"] = None if used is None or total is None else total + used
    return list(kernels.values())
