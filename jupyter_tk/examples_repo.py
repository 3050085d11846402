"""``jupyter-tk-sync-examples``: keep a clone of the examples repository current in a volume.

Run by the CronJob in share/kubernetes/examples-sync.yaml (or by hand). In ``--dest`` it keeps::

    .mirror.git/                      bare mirror of the repository (fetched, never checked out)
    .versions/<time>-<commit>/        one complete, plain copy of the files per version
    <name> -> .versions/<time>-<commit>   what readers use (a relative symbolic link)

A new version is written in full under a temporary name, renamed into ``.versions``, and only
then published by renaming a new link over ``<name>`` (``rename(2)`` is atomic): a reader that
resolves ``<name>`` once (``realpath``, as ExamplesSync does) sees one whole version, never a
half-written one. The previous versions (``--keep``) stay for readers still walking them. When
the repository cannot be reached, nothing in ``--dest`` changes: the last good copy stays
published and the command exits with status 1 saying so.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import re
import secrets
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

__all__ = ["SyncError", "main", "sync_examples"]

log = logging.getLogger("jupyter_tk.examples_repo")

MIRROR = ".mirror.git"
VERSIONS = ".versions"
LOCK = ".sync.lock"
# What the single-user ExamplesSync reads by default (~/thinkube/examples-repo/<this>).
DEFAULT_NAME = "thinkube-ai-examples"
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_VERSION_RE = re.compile(r"[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}(-[0-9a-f]{6})?")


class SyncError(Exception):
    """The repository could not be fetched or unpacked; the published copy is unchanged."""


def _git(*args: str, timeout: float, git_dir: Path | None = None) -> str:
    env = {
        **os.environ,
        # A job has nobody to type a password: fail instead of waiting for one.
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
    }
    try:
        result = subprocess.run(
            # The volume may belong to another uid than this job's (e.g. a restored backup).
            [
                "git",
                "-c",
                "safe.directory=*",
                *(["--git-dir", str(git_dir)] if git_dir else []),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise SyncError(f"git {args[0]} gave no answer within {timeout:.0f}s") from None
    except FileNotFoundError:
        raise SyncError("git is not installed in this image") from None
    if result.returncode != 0:
        message = (result.stderr or result.stdout).strip().splitlines()
        raise SyncError(f"git {args[0]} failed: {message[-1] if message else result.returncode}")
    return result.stdout.strip()


@contextlib.contextmanager
def _exclusive(dest: Path) -> Iterator[None]:
    """One sync per destination at a time (a slow run and the next scheduled one)."""
    with open(dest / LOCK, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncError(f"another sync of {dest} is running") from None
        yield


def _fetch(repo: str, mirror: Path, timeout: float) -> None:
    if (mirror / "HEAD").exists():
        _git("remote", "set-url", "origin", repo, timeout=timeout, git_dir=mirror)
        _git("fetch", "--prune", "--quiet", "origin", timeout=timeout, git_dir=mirror)
        return
    partial = mirror.with_name(f"{mirror.name}.partial-{secrets.token_hex(3)}")
    try:
        _git("clone", "--mirror", "--quiet", "--", repo, str(partial), timeout=timeout)
        os.replace(partial, mirror)
    finally:
        shutil.rmtree(partial, ignore_errors=True)


def _published(dest: Path, name: str) -> str | None:
    """The version ``<name>`` points at, or None."""
    link = dest / name
    if not link.is_symlink():
        return None
    return Path(os.readlink(link)).name


def _unpack(mirror: Path, commit: str, target: Path, timeout: float) -> None:
    """The files of ``commit`` (no .git) into the new folder ``target``."""
    with tempfile.TemporaryFile() as archive:
        try:
            subprocess.run(
                ["git", "-c", "safe.directory=*", "--git-dir", str(mirror), "archive", commit],
                stdout=archive,
                stderr=subprocess.PIPE,
                timeout=timeout,
                check=True,
            )
        except subprocess.CalledProcessError as error:
            raise SyncError(f"git archive failed: {error.stderr.decode().strip()}") from None
        archive.seek(0)
        with tarfile.open(fileobj=archive) as tar:
            # "data" refuses absolute paths, links out of the folder and device files.
            tar.extractall(target, filter="data")


def _prune(versions: Path, keep: set[str], count: int) -> None:
    """Remove old versions, keeping the newest ``count`` and those in ``keep``."""
    # Newest first: by the stamp in the name, then (two versions in one second, whose names
    # differ only by commit) by when the folder was filled.
    found = [p for p in versions.iterdir() if _VERSION_RE.fullmatch(p.name)]
    found.sort(key=lambda p: (p.name.split("-", 1)[0], p.stat().st_mtime_ns), reverse=True)
    names = [p.name for p in found]
    for name in names[count:]:
        if name not in keep:
            shutil.rmtree(versions / name, ignore_errors=True)
    for leftover in versions.glob(".partial-*"):  # an interrupted earlier run
        shutil.rmtree(leftover, ignore_errors=True)


def sync_examples(
    repo: str,
    dest: str | os.PathLike,
    *,
    name: str = DEFAULT_NAME,
    branch: str | None = None,
    keep: int = 2,
    timeout: float = 600.0,
) -> tuple[str, bool]:
    """Fetch ``repo`` and publish ``branch`` (default: the remote's HEAD) as ``dest/name``.

    Returns ``(version, changed)``. Raises SyncError (nothing published changes) when the
    repository cannot be fetched or unpacked.
    """
    if not _NAME_RE.fullmatch(name):
        raise SyncError(f"--name {name!r} must be a plain folder name")
    if keep < 1:
        raise SyncError("--keep must be at least 1")
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    versions = dest / VERSIONS
    versions.mkdir(exist_ok=True)
    with _exclusive(dest):
        current = _published(dest, name)
        mirror = dest / MIRROR
        _fetch(repo, mirror, timeout)
        ref = f"refs/heads/{branch}" if branch else "HEAD"
        commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}", timeout=timeout, git_dir=mirror)
        if current and current.endswith(commit[:12]) and (versions / current).is_dir():
            _prune(versions, {current}, keep)
            return current, False

        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        version = f"{stamp}-{commit[:12]}"
        if (versions / version).exists():
            version = f"{version}-{secrets.token_hex(3)}"
        partial = versions / f".partial-{secrets.token_hex(6)}"
        try:
            partial.mkdir()
            _unpack(mirror, commit, partial, timeout)
            os.replace(partial, versions / version)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

        # Publish: a new link under a temporary name, renamed over the old one.
        new_link = dest / f".{name}.{secrets.token_hex(6)}"
        os.symlink(f"{VERSIONS}/{version}", new_link)
        try:
            os.replace(new_link, dest / name)
        except OSError:
            new_link.unlink(missing_ok=True)
            raise
        _prune(versions, {version, *([current] if current else [])}, keep)
        return version, True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="jupyter-tk-sync-examples",
        description="Clone or update the examples repository into a folder, atomically; the"
        " last good copy stays when the repository cannot be reached.",
    )
    parser.add_argument(
        "--repo",
        default=os.environ.get("JUPYTER_TK_EXAMPLES_REPO"),
        help="repository URL (default: $JUPYTER_TK_EXAMPLES_REPO)",
    )
    parser.add_argument(
        "--dest",
        default=os.environ.get("JUPYTER_TK_EXAMPLES_VOLUME"),
        help="folder of the examples volume (default: $JUPYTER_TK_EXAMPLES_VOLUME)",
    )
    parser.add_argument(
        "--branch",
        default=os.environ.get("JUPYTER_TK_EXAMPLES_BRANCH") or None,
        help="branch to publish (default: $JUPYTER_TK_EXAMPLES_BRANCH, else the remote's default)",
    )
    parser.add_argument(
        "--name",
        default=os.environ.get("JUPYTER_TK_EXAMPLES_NAME", DEFAULT_NAME),
        help=f"name of the published link in --dest (default: {DEFAULT_NAME})",
    )
    parser.add_argument("--keep", type=int, default=2, help="versions kept (default: 2)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds each git step may take (600)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    if not args.repo or not args.dest:
        parser.error("--repo and --dest are required (or $JUPYTER_TK_EXAMPLES_REPO/_VOLUME)")
    try:
        version, changed = sync_examples(
            args.repo,
            args.dest,
            name=args.name,
            branch=args.branch,
            keep=args.keep,
            timeout=args.timeout,
        )
    except SyncError as error:
        kept = _published(Path(args.dest), args.name) if Path(args.dest).is_dir() else None
        log.error("%s; %s", error, f"kept {kept}" if kept else "no copy is published yet")
        return 1
    log.info("%s %s", "published" if changed else "already current:", version)
    return 0


if __name__ == "__main__":
    sys.exit(main())
