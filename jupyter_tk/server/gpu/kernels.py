"""Which of this server's kernels a GPU process belongs to (the kernel itself or a descendant)."""

from __future__ import annotations

from collections.abc import Iterable

import psutil


class KernelProcesses:
    """Maps process ids to the ids of this server's kernels.

    Called from the sampler thread: it only reads the kernel manager (a snapshot of its kernel
    ids, then each kernel's provisioner pid) and /proc. A GPU process belongs to a kernel when it
    is the kernel's process or one of its descendants (e.g. a DataLoader worker, a subprocess).
    Processes NVML reports from outside this server's pid namespace (containers see host pids)
    match nothing and stay "other process".
    """

    def __init__(self, kernel_manager=None):
        self.kernel_manager = kernel_manager

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

    def __call__(self, pids: Iterable[int]) -> dict[int, str]:
        """Kernel id for each of ``pids`` that is a kernel or a kernel's descendant."""
        kernels = self.kernel_pids()
        if not kernels:
            return {}
        found = {}
        for pid in pids:
            if pid in kernels:
                found[pid] = kernels[pid]
                continue
            try:
                ancestors = psutil.Process(pid).parents()
            except (psutil.Error, ValueError):
                continue  # gone, not ours to see, or not a valid pid
            for ancestor in ancestors:
                if ancestor.pid in kernels:
                    found[pid] = kernels[ancestor.pid]
                    break
        return found
