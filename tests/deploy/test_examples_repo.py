"""``jupyter-tk-sync-examples`` with real git against a local repository.

An update must appear atomically (a reader resolving the published link and walking it never
sees a mix of versions or a partial tree, even while versions are swapped under it), and an
unreachable repository must leave the last good copy published.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from jupyter_tk.examples_repo import DEFAULT_NAME, SyncError, sync_examples

FILES_PER_VERSION = 60


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def commit_version(repo: Path, version: int) -> None:
    """Every file says which version it belongs to; each version has more files."""
    for index in range(FILES_PER_VERSION + version * 5):
        path = repo / f"cat{index % 3}" / f"sub{index % 4}" / f"nb{index}.ipynb"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"version {version}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"version {version}")


@pytest.fixture
def repo(tmp_path):
    path = tmp_path / "examples"
    path.mkdir()
    git(path, "init", "-q", "-b", "main")
    commit_version(path, 1)
    return path


def run_sync_command(repo: Path, dest: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "jupyter_tk.examples_repo", "--repo", str(repo)]
    command += ["--dest", str(dest)]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def expected_files(version: int) -> int:
    return FILES_PER_VERSION + version * 5


def test_first_sync_publishes_a_plain_copy_through_a_relative_link(repo, tmp_path):
    dest = tmp_path / "volume"
    version, changed = sync_examples(str(repo), dest)
    assert changed
    link = dest / DEFAULT_NAME
    assert link.is_symlink() and not os.readlink(link).startswith("/")
    files = tree(link)
    assert len(files) == expected_files(1) and set(files.values()) == {"version 1\n"}
    assert not (link / ".git").exists()
    # Nothing new to fetch: the same version stays, nothing is rewritten.
    assert sync_examples(str(repo), dest) == (version, False)


def test_a_reader_never_sees_a_half_tree_while_versions_are_swapped(repo, tmp_path):
    dest = tmp_path / "volume"
    # Versions are swapped back to back here (minutes apart in the CronJob): keep enough that
    # a reader is never pulled out from under by pruning, only by the swap itself.
    sync_examples(str(repo), dest, keep=3)
    link = dest / DEFAULT_NAME
    seen: list[int] = []
    problems: list[str] = []
    stop = threading.Event()

    def reader():
        while not stop.is_set():
            # Like ExamplesSync: resolve the link once, then walk what it points at.
            root = Path(os.path.realpath(link))
            files = tree(root)
            versions = set(files.values())
            if len(versions) != 1:
                problems.append(f"mixed versions {sorted(versions)} in {root.name}")
                continue
            number = int(next(iter(versions)).split()[1])
            if len(files) != expected_files(number):
                problems.append(f"{root.name}: {len(files)} files of version {number}")
            seen.append(number)

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for number in range(2, 7):
            commit_version(repo, number)
            _, changed = sync_examples(str(repo), dest, keep=3)
            assert changed
    finally:
        stop.set()
        thread.join(30)
    assert not problems, problems[:5]
    assert len(seen) > 5 and seen == sorted(seen)  # never back to an older version
    assert set(tree(link).values()) == {"version 6\n"}
    # Old versions are pruned; the published one and the two before it stay.
    kept = sorted(p.name for p in (dest / ".versions").iterdir())
    assert len(kept) == 3 and os.path.basename(os.readlink(link)) in kept


def test_an_unreachable_repository_keeps_the_last_good_copy(repo, tmp_path):
    dest = tmp_path / "volume"
    version, _ = sync_examples(str(repo), dest)
    commit_version(repo, 2)
    moved = repo.rename(tmp_path / "gone")  # the server is unreachable

    result = run_sync_command(repo, dest)
    assert result.returncode == 1
    assert f"kept {version}" in result.stderr
    assert os.path.basename(os.readlink(dest / DEFAULT_NAME)) == version
    assert set(tree(dest / DEFAULT_NAME).values()) == {"version 1\n"}

    # Back again: the next run publishes the new version.
    moved.rename(repo)
    result = run_sync_command(repo, dest)
    assert result.returncode == 0, result.stderr
    assert set(tree(dest / DEFAULT_NAME).values()) == {"version 2\n"}


def test_a_named_branch_and_bad_arguments(repo, tmp_path):
    git(repo, "checkout", "-q", "-b", "next")
    commit_version(repo, 3)
    git(repo, "checkout", "-q", "main")
    dest = tmp_path / "volume"
    sync_examples(str(repo), dest, branch="next")
    assert set(tree(dest / DEFAULT_NAME).values()) == {"version 3\n"}
    with pytest.raises(SyncError, match="rev-parse failed"):
        sync_examples(str(repo), dest, branch="no-such-branch")
    assert set(tree(dest / DEFAULT_NAME).values()) == {"version 3\n"}
    with pytest.raises(SyncError, match="plain folder name"):
        sync_examples(str(repo), dest, name="../elsewhere")
