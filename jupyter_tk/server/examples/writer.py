"""Plans and carries out copies: caps and free space first, then temp copies, then moves.

Work goes in batches. In each batch the files are copied to hidden temp files by a few threads
(reading, hashing and writing overlap), made durable with one ``syncfs`` of the destination
filesystem (or an fsync per file where syncfs does not exist), and only then moved to their
names, so a name never points at a half-written file; batch N is flushed while batch N+1 is
copied, and one more syncfs at the end (or an fsync per folder) makes the new names durable
before the manifest records them. New files are placed with a no-clobber
link and refreshed ones only if they are still the file that was classified: a file the user
wrote meanwhile is left alone. Reset, and an update of a copy the user ran but did not edit,
first move the user's version aside under a unique name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from jupyter_tk.server.examples.edits import Digests, cells_digest, is_notebook
from jupyter_tk.server.examples.fs import (
    ChangedError,
    TempCopy,
    UnsafePathError,
    can_sync_filesystem,
    copy_to_temp,
    fingerprint,
    format_bytes,
    move_aside,
    open_subdir,
    place_new,
    place_replacing,
    same_file_still,
    sync_filesystem,
)
from jupyter_tk.server.examples.manifest import CopyRecord, SourceRecord
from jupyter_tk.server.examples.scan import (
    CONFLICT,
    DELETED,
    MODIFIED,
    NEW,
    UNCHANGED,
    UPDATE_AVAILABLE,
    Entry,
)

CREATE = "create"  # nothing may be at the copy's place (new, or deleted and asked for by id)
REPLACE = "replace"  # refresh a copy that is byte for byte the original it was made from
# Refresh a copy the user ran but did not edit: move it aside (outputs kept), then create.
REPLACE_KEEPING = "replace-keeping"
RESET = "reset"  # move whatever is at the place aside, then create

# A batch is what one durability point covers; small enough to bound open temp files.
BATCH_FILES = 256
BATCH_BYTES = 64 << 20
# Free space is estimated in whole filesystem blocks: a 10-byte file still takes a block.
BLOCK_BYTES = 4096


@dataclass(frozen=True)
class Limits:
    max_file_bytes: int
    max_total_bytes: int
    min_free_bytes: int


@dataclass(slots=True)
class Job:
    entry: Entry
    kind: str
    copied: Digests | None = None  # digests of the temp copy, once made


@dataclass(slots=True)
class Outcome:
    id: str
    action: str  # "copied" | "updated" | "error"
    status: str
    message: str | None = None
    backup: tuple[str, ...] | None = None  # parts of the saved user version, like Entry.parts
    record: CopyRecord | None = None
    source_record: SourceRecord | None = None


class _Folders:
    """Folder descriptors by parts below a root, opened one component at a time, no symlinks."""

    def __init__(self, root_fd: int, *, create: bool):
        self._fds: dict[tuple[str, ...], int] = {(): root_fd}
        self._create = create

    def get(self, parts: tuple[str, ...]) -> int:
        fd = self._fds.get(parts)
        if fd is None:
            parent = self.get(parts[:-1])
            fd = open_subdir(parent, parts[-1], create=self._create, shown_as="/".join(parts))
            self._fds[parts] = fd
        return fd

    def close(self) -> None:
        for parts, fd in self._fds.items():
            if parts:
                os.close(fd)
        self._fds = {(): self._fds[()]}


@dataclass
class _Staged:
    """A batch whose files sit in temp files: not durable, not placed yet."""

    batch: list[Job]
    sources: _Folders
    dests: _Folders
    temps: dict[str, tuple[Job, TempCopy]] = field(default_factory=dict)
    failed: dict[str, Outcome] = field(default_factory=dict)


class BatchWriter:
    """Writes jobs into the destination's image folder and reports one outcome per job."""

    def __init__(
        self,
        source_fd: int,
        dest_fd: int,
        dest_path: str,
        *,
        limits: Limits,
        threads: int,
        used_bytes: int,
        on_placed: Callable[[], None],
        on_moved_aside: Callable[[str, tuple[str, ...]], None] = lambda item_id, parts: None,
        batch_flush: bool = True,
    ):
        self.source_fd = source_fd
        self.dest_fd = dest_fd
        self.dest_path = dest_path
        self.limits = limits
        self.threads = max(1, threads)
        self.used_bytes = used_bytes
        self.on_placed = on_placed
        # Told at once, so an error later in the run can still say where the user's file is.
        self.on_moved_aside = on_moved_aside
        # One syncfs per batch where the system has it; else (or if asked) an fsync per file.
        self.durable_batches = batch_flush and can_sync_filesystem()

    def run(self, jobs: list[Job]) -> list[Outcome]:
        """Copy batch after batch; batch N is flushed to disk while batch N+1 is copied."""
        outcomes: list[Outcome] = []
        pending: tuple[_Staged, Future | None] | None = None
        with (
            ThreadPoolExecutor(self.threads, thread_name_prefix="jupyter-tk-copy") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="jupyter-tk-flush") as flusher,
        ):
            try:
                for batch in _batches(jobs):
                    staged = self._stage(batch, pool)
                    flushed = None
                    if staged.temps and self.durable_batches:
                        flushed = flusher.submit(sync_filesystem, self.dest_fd)
                    previous, pending = pending, (staged, flushed)
                    if previous:
                        outcomes.extend(self._finish(*previous))
                if pending:
                    previous, pending = pending, None
                    outcomes.extend(self._finish(*previous))
                if self.durable_batches and any(o.record for o in outcomes):
                    # One durability point for every rename, before the manifest relies on them.
                    sync_filesystem(self.dest_fd)
            finally:
                if pending:  # an unexpected error: leave no temp file behind
                    self._abandon(pending[0])
        return outcomes

    def _stage(self, batch: list[Job], pool: ThreadPoolExecutor) -> _Staged:
        """Admit the batch's jobs and copy them to temp files (not yet durable or placed)."""
        sources = _Folders(self.source_fd, create=False)
        staged = _Staged(batch, sources, _Folders(self.dest_fd, create=True))
        try:
            admitted = self._admit(batch, staged.failed, staged.sources, staged.dests)
            futures = [
                (
                    job,
                    pool.submit(
                        _copy_to_temp,
                        job,
                        staged.sources.get(job.entry.parts[:-1]),
                        staged.dests.get(job.entry.parts[:-1]),
                        max_bytes=self.limits.max_file_bytes,
                        fsync=not self.durable_batches,
                    ),
                )
                for job in admitted
            ]
            for job, future in futures:
                try:
                    staged.temps[job.entry.id] = (job, future.result())
                except (OSError, UnsafePathError, ValueError) as error:
                    staged.failed[job.entry.id] = _failure(job, f"could not copy: {_reason(error)}")
        except BaseException:
            self._abandon(staged)
            raise
        return staged

    def _finish(self, staged: _Staged, flushed: Future | None) -> list[Outcome]:
        """Once the batch is durable, move its temp files into place."""
        try:
            if flushed is not None:
                try:
                    flushed.result()
                except OSError as error:
                    for job, temp in staged.temps.values():
                        self._discard(staged.dests, job, temp)
                        staged.failed[job.entry.id] = _failure(job, f"could not flush: {error}")
                    staged.temps.clear()
            placed = {
                item_id: self._place(job, temp, staged.dests)
                for item_id, (job, temp) in staged.temps.items()
            }
            staged.temps.clear()
            if not self.durable_batches:  # else one syncfs covers all renames at the end
                for parts in {
                    job.entry.parts[:-1] for job in staged.batch if job.entry.id in placed
                }:
                    os.fsync(staged.dests.get(parts))
        finally:
            self._abandon(staged)
        placed.update(staged.failed)
        return [placed[job.entry.id] for job in staged.batch]

    def _abandon(self, staged: _Staged) -> None:
        for job, temp in staged.temps.values():
            self._discard(staged.dests, job, temp)
        staged.temps.clear()
        staged.sources.close()
        staged.dests.close()

    def _admit(self, batch, failed, sources, dests) -> list[Job]:
        """Jobs that fit the size cap and the free space, with their folders ready."""
        free = shutil.disk_usage(self.dest_path).free
        admitted = []
        for job in batch:
            entry = job.entry
            size = entry.source.st_size
            freed = entry.dest.stat.st_size if job.kind == REPLACE and entry.dest.stat else 0
            projected = self.used_bytes - freed + size
            if projected > self.limits.max_total_bytes:
                failed[entry.id] = _failure(
                    job,
                    f"copying it ({format_bytes(size)}) would bring this image's examples to "
                    f"{format_bytes(projected)}, over the limit of "
                    f"{format_bytes(self.limits.max_total_bytes)} (ExamplesSync.max_total_bytes)",
                )
                continue
            if free - _in_blocks(size) < self.limits.min_free_bytes:
                failed[entry.id] = _failure(
                    job,
                    f"not enough free space: {format_bytes(free)} free in {self.dest_path}, "
                    f"{format_bytes(size)} needed plus a margin of "
                    f"{format_bytes(self.limits.min_free_bytes)} (ExamplesSync.min_free_bytes)",
                )
                continue
            try:
                sources.get(entry.parts[:-1])
                dests.get(entry.parts[:-1])
            except (OSError, UnsafePathError) as error:
                failed[entry.id] = _failure(job, f"refused: {_reason(error)}")
                continue
            free -= _in_blocks(size)
            self.used_bytes = projected
            admitted.append(job)
        return admitted

    def _place(self, job: Job, temp: TempCopy, dests: _Folders) -> Outcome:
        entry = job.entry
        dir_fd = dests.get(entry.parts[:-1])
        name = entry.parts[-1]
        backup = None
        try:
            if job.kind == REPLACE_KEEPING:
                # Only the copy that was classified as unedited is moved (an edit since stays).
                same_file_still(dir_fd, name, fingerprint(entry.dest.stat))
            if job.kind in (RESET, REPLACE_KEEPING) and (
                entry.dest.stat is not None or entry.dest.movable
            ):
                backup = (*entry.parts[:-1], move_aside(dir_fd, name, time.time()))
                self.on_moved_aside(entry.id, backup)
            if job.kind == REPLACE:
                place_replacing(dir_fd, temp.temp_name, name, fingerprint(entry.dest.stat))
            else:
                place_new(dir_fd, temp.temp_name, name)
        except (ChangedError, OSError) as error:
            self._discard(dests, job, temp)
            if backup:  # the name is empty now: say where the user's version went
                message = (
                    f"the original could not be put in place ({_reason(error)}); "
                    f"your version is kept as {'/'.join(backup)}"
                )
                outcome = _failure(job, message, status=DELETED)
                outcome.backup = backup
                return outcome
            status = CONFLICT if job.kind == RESET else MODIFIED
            return _failure(job, _reason(error), status=status)
        self.on_placed()
        action = "updated" if job.kind in (REPLACE, REPLACE_KEEPING) or backup else "copied"
        return Outcome(
            entry.id,
            action,
            UNCHANGED,
            message=None,
            backup=backup,
            record=CopyRecord(job.copied, job.copied, temp.fingerprint),
            # Safe even if the source changed after it was scanned: its fingerprint then
            # differs from the one recorded here, and the next scan reads it again.
            source_record=SourceRecord(job.copied, fingerprint(entry.source)),
        )

    def _discard(self, dests: _Folders, job: Job, temp: TempCopy) -> None:
        with contextlib.suppress(OSError):
            os.unlink(temp.temp_name, dir_fd=dests.get(job.entry.parts[:-1]))


def _copy_to_temp(job: Job, src_fd: int, dst_fd: int, *, max_bytes: int, fsync: bool):
    """Copy a job's source to a temp file and work out the copy's digests (in a pool thread).

    A notebook's bytes are kept while they stream by, so its cells are read without reading
    the file a second time.
    """
    entry = job.entry
    notebook = is_notebook(entry.id)
    chunks: list[bytes] = []
    temp = copy_to_temp(
        src_fd,
        entry.parts[-1],
        dst_fd,
        shown_as=entry.id,
        max_bytes=max_bytes,
        fsync=fsync,
        on_chunk=(lambda chunk: chunks.append(bytes(chunk))) if notebook else None,
    )
    scanned = entry.source_digests
    if scanned is not None and scanned.content == temp.digest:
        job.copied = scanned
    elif notebook:
        job.copied = Digests(temp.digest, cells_digest(b"".join(chunks)) or temp.digest)
    else:
        job.copied = Digests(temp.digest, temp.digest)
    return temp


def _batches(jobs: list[Job]):
    batch, batch_bytes = [], 0
    for job in jobs:
        size = job.entry.source.st_size
        if batch and (len(batch) >= BATCH_FILES or batch_bytes + size > BATCH_BYTES):
            yield batch
            batch, batch_bytes = [], 0
        batch.append(job)
        batch_bytes += size
    if batch:
        yield batch


def _in_blocks(size: int) -> int:
    return -(-size // BLOCK_BYTES) * BLOCK_BYTES


def _failure(job: Job, message: str, *, status: str | None = None) -> Outcome:
    return Outcome(job.entry.id, "error", status or job.entry.status, message=message)


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error)


_SKIP_MESSAGES = {
    MODIFIED: "you edited your copy; Reset to original keeps your version beside it",
    CONFLICT: "your copy and the original both changed; Reset to original keeps your version",
    DELETED: "you deleted your copy; copy it by name to get it back",
}


def plan(entries, mode: str, *, explicit: bool) -> tuple[list[Job], list[Outcome]]:
    """Which entries get written (jobs) and which are skipped, with the reason why."""
    jobs, skipped = [], []
    for entry in entries:
        kind = None
        if entry.status == NEW or (entry.status == DELETED and explicit):
            kind = CREATE
        elif entry.status == UPDATE_AVAILABLE:
            kind = REPLACE_KEEPING if entry.keep_aside_on_update else REPLACE
        elif mode == "reset" and entry.status in (MODIFIED, CONFLICT):
            kind = RESET
        if entry.error and not (kind == RESET and entry.dest.movable):
            action = "error" if explicit else "skipped"
            skipped.append(Outcome(entry.id, action, entry.status, message=entry.error))
        elif kind:
            jobs.append(Job(entry, kind))
        else:
            message = _SKIP_MESSAGES.get(entry.status) if entry.status != UNCHANGED else None
            skipped.append(Outcome(entry.id, "skipped", entry.status, message=message))
    return jobs, skipped
