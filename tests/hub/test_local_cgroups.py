"""MemoryCgroups: per-server memory limits with cgroup v2 where the machine allows it.

The enforcing path needs a real cgroup v2 hierarchy with the memory controller available to a
root hub (most systemd hosts); where this machine has none, that test is skipped and the advisory
path (which every machine can check) is what runs.
"""

import asyncio
import subprocess
import sys

import pytest

from jupyter_tk.hub.local.cgroups import MemoryCgroups

MIB = 2**20


async def test_without_a_cgroup_v2_hierarchy_memory_is_advisory_and_says_why(tmp_path):
    cgroups = MemoryCgroups(cgroup_root=str(tmp_path))
    support = cgroups.support
    assert support.enforced is False and support.parent is None
    assert f"no cgroup v2 hierarchy at {tmp_path}" in support.reason
    # Then a server gets no group, nothing is written, and removing "nothing" is fine
    assert cgroups.create("alice", 512 * MIB, 1.0) is None
    assert list(tmp_path.iterdir()) == []
    assert await cgroups.remove(None) is True


def test_limits_can_be_turned_off_in_the_config():
    support = MemoryCgroups(enabled=False).support
    assert support.enforced is False and "turned off" in support.reason


def test_this_machine_either_enforces_limits_or_says_why_not():
    support = MemoryCgroups(parent_group="jupyter-tk-test").support
    if support.enforced:
        assert support.parent is not None and support.parent.is_dir()
        assert support.reason is None
        support.parent.rmdir()
    else:
        assert support.parent is None
        assert support.reason  # shown to users on the form as "memory is advisory: <reason>"


@pytest.fixture
def enforcing_cgroups():
    cgroups = MemoryCgroups(parent_group="jupyter-tk-test")
    if not cgroups.support.enforced:
        pytest.skip(f"memory limits are advisory on this machine: {cgroups.support.reason}")
    yield cgroups
    cgroups.support.parent.rmdir()


def test_a_process_in_its_group_is_held_to_its_memory_limit(enforcing_cgroups):
    group = enforcing_cgroups.create("alice", 64 * MIB, 0.5)
    assert enforcing_cgroups.memory_limit(group) == str(64 * MIB)
    # When a process that joined the group before exec allocates 256 MiB, the kernel stops it
    hog = subprocess.run(
        [sys.executable, "-c", "held = b'x' * (256 * 2**20)"],
        preexec_fn=lambda: MemoryCgroups.join_in_child(group),
        check=False,
    )
    assert hog.returncode == -9  # SIGKILL from the OOM killer of the group
    # And a process within the limit runs normally in the same group
    fine = subprocess.run(
        [sys.executable, "-c", "open('/proc/self/cgroup').read()"],
        preexec_fn=lambda: MemoryCgroups.join_in_child(group),
        check=False,
    )
    assert fine.returncode == 0
    assert asyncio.run(enforcing_cgroups.remove(group)) is True
    assert not group.exists()
