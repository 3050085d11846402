"""Per-server memory limits on one machine, through cgroup v2 when the machine allows it.

Each single-user server gets its own child group under one parent group
(`MemoryCgroups.parent_group`, by default ``/sys/fs/cgroup/jupyter-tk``) with ``memory.max`` set to
what the user asked for and, where the cpu controller is available too, ``cpu.max`` (the CPU limit)
and ``cpu.weight`` (the server's share of busy cores, in proportion to its CPU); the server process
joins it before it execs, so the server and every kernel it starts are limited together.
Where that is not possible (cgroup v1, no permission, the memory controller not delegated) the
limit is *advisory*: the inventory and the form say so, and :attr:`CgroupSupport.reason` says why.
"""

from __future__ import annotations

import asyncio
import errno
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from traitlets import Bool, Float, Unicode
from traitlets.config import LoggingConfigurable

__all__ = ["CgroupSupport", "MemoryCgroups", "cpu_weight"]

_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_CPU_PERIOD_US = 100_000
# cgroup v2's default weight is 100 (one core's worth here); the kernel accepts 1 to 10000.
_CPU_WEIGHT_PER_CORE = 100
_CPU_WEIGHT_RANGE = (1, 10_000)


def cpu_weight(cpu: float) -> int:
    """The ``cpu.weight`` of a server asking for `cpu` cores: 100 per core, within 1..10000."""
    low, high = _CPU_WEIGHT_RANGE
    return min(high, max(low, round(cpu * _CPU_WEIGHT_PER_CORE)))


@dataclass(frozen=True)
class CgroupSupport:
    """Whether memory limits are enforced, where child groups go, and why not when they aren't."""

    enforced: bool
    parent: Path | None
    reason: str | None
    cpu_controller: bool = False


class MemoryCgroups(LoggingConfigurable):
    """Creates, fills and removes one cgroup v2 child group per local single-user server."""

    enabled = Bool(
        True,
        config=True,
        help="""Limit each local server's memory with a cgroup v2 group when the machine allows it.

        False keeps memory advisory everywhere (the form says so). Example: False
        """,
    )

    cgroup_root = Unicode(
        "/sys/fs/cgroup",
        config=True,
        help="""Mount point of the cgroup v2 (unified) hierarchy. Example: /sys/fs/cgroup""",
    )

    parent_group = Unicode(
        "jupyter-tk",
        config=True,
        help="""Group, relative to `cgroup_root`, under which one child group per server is made.

        Created when missing; the memory controller must be available to it (enabled in its
        parent's cgroup.subtree_control, as systemd does at the root) and it must hold no process
        itself. For an unprivileged hub, point it at a delegated group that user may write,
        e.g. "user.slice/user-1000.slice/user@1000.service/jupyter-tk". Example: jupyter-tk
        """,
    )

    remove_timeout = Float(
        5.0,
        config=True,
        help="""Seconds to wait for a stopped server's leftover processes (kernels) to exit
        before its group is given up on (it is then left for the next start to reuse).
        Example: 5
        """,
    )

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._support: CgroupSupport | None = None

    # -- capability ------------------------------------------------------------------------------

    @property
    def support(self) -> CgroupSupport:
        """Probe once (creating the parent group if needed) and remember the answer."""
        if self._support is None:
            self._support = self._probe()
            if self._support.enforced:
                self.log.info(
                    "Memory limits enforced with cgroup v2 under %s", self._support.parent
                )
            else:
                self.log.warning("Memory limits are advisory: %s", self._support.reason)
        return self._support

    def _probe(self) -> CgroupSupport:
        if not self.enabled:
            return CgroupSupport(False, None, "cgroup memory limits are turned off in the config")
        root = Path(self.cgroup_root)
        if not (root / "cgroup.controllers").is_file():
            return CgroupSupport(
                False, None, f"no cgroup v2 hierarchy at {root} (cgroup v1 or not mounted)"
            )
        parent = root / self.parent_group.strip("/")
        try:
            created = _make_dir(parent)
        except OSError as e:
            return CgroupSupport(False, None, f"cannot create {parent}: {e.strerror or e}")
        try:
            return self._probe_parent(parent)
        except OSError as e:
            if created:
                _remove_dir(parent)
            return CgroupSupport(False, None, f"cannot use {parent}: {e.strerror or e}")

    def _probe_parent(self, parent: Path) -> CgroupSupport:
        available = _read_words(parent / "cgroup.controllers")
        if "memory" not in available:
            # The root may allow enabling it for its children (it is exempt from the
            # no-internal-processes rule); anywhere else it must already be delegated.
            _enable_controllers(parent.parent, ["memory", "cpu"])
            available = _read_words(parent / "cgroup.controllers")
        if "memory" not in available:
            return CgroupSupport(False, None, f"the memory controller is not delegated to {parent}")
        _enable_controllers(parent, ["memory", "cpu"])
        enabled = _read_words(parent / "cgroup.subtree_control")
        if "memory" not in enabled:
            return CgroupSupport(
                False,
                None,
                f"cannot enable the memory controller for the child groups of {parent} "
                "(it must not hold processes itself)",
            )
        probe = parent / f"probe-{os.getpid()}"
        _make_dir(probe)
        try:
            if not (probe / "memory.max").is_file():
                return CgroupSupport(False, None, f"{probe} has no memory.max")
        finally:
            _remove_dir(probe)
        return CgroupSupport(True, parent, None, cpu_controller="cpu" in enabled)

    # -- one group per server --------------------------------------------------------------------

    def create(self, name: str, memory_bytes: int, cpu: float | None = None) -> Path | None:
        """Make (or reuse) the group for one server with its limits; None when advisory.

        `memory_bytes` 0 means no memory limit ("max"). `cpu` in cores becomes a CPU quota
        and a weight where the cpu controller is available (pinning to cores, in exclusive CPU
        mode, happens separately).
        """
        support = self.support
        if not support.enforced or support.parent is None:
            return None
        group = support.parent / _SAFE_NAME.sub("_", name)
        _make_dir(group)
        _write(group / "memory.max", str(memory_bytes) if memory_bytes > 0 else "max")
        if cpu and support.cpu_controller and (group / "cpu.max").is_file():
            quota = max(1000, round(cpu * _CPU_PERIOD_US))
            _write(group / "cpu.max", f"{quota} {_CPU_PERIOD_US}")
            if (group / "cpu.weight").is_file():
                _write(group / "cpu.weight", str(cpu_weight(cpu)))
        return group

    @staticmethod
    def join_in_child(group: Path | None) -> None:
        """Move the calling process into `group` (call between fork and exec)."""
        if group is not None:
            # Writing our own pid: the server and all its future kernels start inside the group.
            with open(group / "cgroup.procs", "w") as procs:
                procs.write(str(os.getpid()))

    async def remove(self, group: Path | None) -> bool:
        """Kill what is left in the group (orphaned kernels) and remove it; True when gone."""
        if group is None:
            return True
        self._kill_leftovers(group)
        deadline = time.monotonic() + self.remove_timeout
        while True:
            # Each attempt is one quick syscall; the waiting between attempts is asynchronous.
            error = _try_rmdir(group)
            if error is None:
                return True
            if error.errno != errno.EBUSY or time.monotonic() > deadline:
                self.log.warning("Could not remove %s: %s", group, error)
                return False
            await asyncio.sleep(0.05)

    def _kill_leftovers(self, group: Path) -> None:
        kill = group / "cgroup.kill"
        if kill.is_file():
            try:
                _write(kill, "1")
            except OSError as e:
                self.log.warning("Could not kill the processes left in %s: %s", group, e)

    @staticmethod
    def cpu_settings(group: Path | None) -> tuple[str, str] | None:
        """What the kernel applies to `group` now: (``cpu.max``, ``cpu.weight``), or None."""
        if group is None:
            return None
        try:
            return (
                (group / "cpu.max").read_text().strip(),
                (group / "cpu.weight").read_text().strip(),
            )
        except OSError:
            return None

    @staticmethod
    def memory_limit(group: Path | None) -> str | None:
        """What the kernel enforces for `group` now ("max" or bytes), for checks and logs."""
        if group is None:
            return None
        try:
            return (group / "memory.max").read_text().strip()
        except OSError:
            return None


def _read_words(path: Path) -> set[str]:
    try:
        return set(path.read_text().split())
    except OSError:
        return set()


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enable_controllers(group: Path, controllers: list[str]) -> None:
    # One write per controller: a controller that cannot be enabled must not stop the others.
    for controller in controllers:
        try:
            _write(group / "cgroup.subtree_control", f"+{controller}")
        except OSError:
            continue


def _make_dir(path: Path) -> bool:
    try:
        path.mkdir()
    except FileExistsError:
        return False
    return True


def _try_rmdir(path: Path) -> OSError | None:
    """Remove an (empty) group; None when it is gone, else the error."""
    try:
        path.rmdir()
    except FileNotFoundError:
        return None
    except OSError as e:
        return e
    return None


def _remove_dir(path: Path) -> None:
    try:
        path.rmdir()
    except OSError:
        return
