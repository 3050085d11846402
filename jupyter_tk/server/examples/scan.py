"""Walks the examples source and the user's copies side by side and gives each file one status.

Statuses (the panel's badge in brackets): ``new`` (New) not copied yet; ``unchanged`` (Up to
date) the copy has what the original has; ``update-available`` (Update available) the user did
not edit, the original changed; ``modified`` (Edited) the user edited, the original did not
change; ``conflict`` (Edited, update available) both changed, or a copy with no record differs,
or something that is not a file occupies its place; ``deleted`` (Deleted) the user deleted a
copy. "Edited" and "changed" compare edit digests (edits.py): a notebook's cells, other files'
bytes, so opening or running a notebook is not an edit.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from jupyter_tk.server.examples.edits import Digests, is_notebook, read_digests
from jupyter_tk.server.examples.fs import (
    TEMP_NAME,
    Fingerprint,
    UnsafePathError,
    describe_kind,
    fingerprint,
    lstat_at,
    open_subdir,
)
from jupyter_tk.server.examples.manifest import CopyRecord, Manifest, SourceRecord

NEW = "new"
UNCHANGED = "unchanged"
UPDATE_AVAILABLE = "update-available"
MODIFIED = "modified"
CONFLICT = "conflict"
DELETED = "deleted"
STATUSES = (NEW, UNCHANGED, UPDATE_AVAILABLE, MODIFIED, CONFLICT, DELETED)
_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class Destination:
    """What is at a copy's place: a regular file (``stat``), nothing, or a ``problem``."""

    stat: os.stat_result | None = None
    problem: str | None = None
    # Reset may move the occupant aside (a symlink or special file), but never a folder.
    movable: bool = False


@dataclass(slots=True)
class Entry:
    """One example file: its id, where it lives, and its status once classified."""

    id: str
    parts: tuple[str, ...]  # (category, *folders, file name); the same below source and copy
    source: os.stat_result
    dest: Destination
    status: str = NEW
    source_digests: Digests | None = None
    error: str | None = None
    # An update must keep the copy beside the new one: its bytes differ from the original it
    # was made from (outputs of the user's runs, metadata), though its cells do not.
    keep_aside_on_update: bool = False


@dataclass
class Scan:
    entries: dict[str, Entry] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (source path, reason)
    categories: list[str] = field(default_factory=list)


def compile_excludes(patterns: Iterable[str]) -> re.Pattern | None:
    """One regex for all exclude globs; each is matched against a name and a whole id."""
    translated = [fnmatch.translate(pattern) for pattern in patterns if pattern]
    return re.compile("|".join(translated)) if translated else None


def unusable_name(name: str) -> str | None:
    """Why a source name cannot become an id (None when it can)."""
    if not name.isascii():
        try:
            name.encode("utf-8")
        except UnicodeEncodeError:
            return "its name is not valid UTF-8"
    if _CONTROL_CHARACTER.search(name):
        return "its name contains control characters"
    if TEMP_NAME.fullmatch(name):
        return "its name is reserved for jupyter-tk temporary files"
    return None


class HashCache:
    """Digests computed in this process, keyed by file and valid while its fingerprint holds."""

    def __init__(self):
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, str], tuple[Fingerprint, Digests]] = {}

    def get(self, side: str, item_id: str, fp: Fingerprint) -> Digests | None:
        with self._lock:
            cached = self._digests.get((side, item_id))
        return cached[1] if cached and cached[0] == fp else None

    def put(self, side: str, item_id: str, fp: Fingerprint, digests: Digests) -> None:
        with self._lock:
            self._digests[(side, item_id)] = (fp, digests)


class Classifier:
    """Gives entries their status, reading only what fingerprints cannot vouch for.

    Works on a clone of the manifest and records what it learns there (source digests, adopted
    copies, refreshed caches); ``changed`` tells whether that clone is worth saving.
    """

    def __init__(self, manifest: Manifest, memory: HashCache):
        self.manifest = manifest
        self.memory = memory
        self.changed = False

    def __call__(self, entry: Entry, source_fd: int, dest_fd: int | None) -> None:
        recorded = record = self.manifest.copies.get(entry.id)
        dest = entry.dest
        if dest.problem:
            entry.status, entry.error = CONFLICT, dest.problem
            return
        if dest.stat is None:
            entry.status = DELETED if record else NEW
            return
        dest_fp = fingerprint(dest.stat)
        size = dest_fp.size
        try:
            if record and record.copy and record.fingerprint == dest_fp:
                copy = record.copy
            elif (
                not is_notebook(entry.parts[-1])  # running a notebook changes its size
                and size != entry.source.st_size
                and (not record or size != record.fingerprint.size)
            ):
                # A size unlike both the original and the recorded copy: edited, no need to read
                copy = None
            else:
                copy = self._digests("copy", entry, dest_fd, dest_fp)
            source = self.source_digests(entry, source_fd)
        except (OSError, UnsafePathError) as error:
            entry.status, entry.error = CONFLICT, f"cannot read: {error}"
            return
        if record and record.base.edit is None:
            record = _with_known_edit(record, source, copy)
        entry.status = _status(record, source, copy)
        if entry.status == UPDATE_AVAILABLE:
            entry.keep_aside_on_update = copy.content != record.base.content
        fresh = record
        if entry.status == UNCHANGED:
            fresh = CopyRecord(_base_of_unchanged(record, source, copy), copy, dest_fp)
        elif record and copy and (record.copy, record.fingerprint) != (copy, dest_fp):
            fresh = record._replace(copy=copy, fingerprint=dest_fp)  # a cache, not a verdict
        if fresh != recorded:
            self.manifest.copies[entry.id] = fresh
            self.changed = True

    def source_digests(self, entry: Entry, source_fd: int) -> Digests:
        fp = fingerprint(entry.source)
        known = self.manifest.sources.get(entry.id)
        if known and known.fingerprint == fp:
            entry.source_digests = known.digests
        else:
            entry.source_digests = self._digests("source", entry, source_fd, fp)
            self.manifest.sources[entry.id] = SourceRecord(entry.source_digests, fp)
            self.changed = True
        return entry.source_digests

    def _digests(self, side: str, entry: Entry, dir_fd: int, fp: Fingerprint) -> Digests:
        digests = self.memory.get(side, entry.id, fp)
        if digests is None:
            digests, st = read_digests(dir_fd, entry.parts[-1], entry.id)
            if fingerprint(st) != fp:  # changed under us: classify by what was read
                fp = fingerprint(st)
            self.memory.put(side, entry.id, fp, digests)
        return digests


def _status(record: CopyRecord | None, source: Digests, copy: Digests | None) -> str:
    """``copy`` None: its bytes differ from both the original and the record (not a notebook)."""
    if copy is not None and (copy.content == source.content or copy.edit == source.edit):
        return UNCHANGED
    if record is None:
        return CONFLICT  # a file we did not write, different from the source
    # A version 1 record whose edit digest could not be worked out: compare bytes.
    measure = "content" if record.base.edit is None else "edit"
    base = getattr(record.base, measure)
    user_edited = copy is None or getattr(copy, measure) != base
    upstream_changed = getattr(source, measure) != base
    if user_edited and upstream_changed:
        return CONFLICT
    if user_edited:
        return MODIFIED
    if upstream_changed:
        return UPDATE_AVAILABLE
    return CONFLICT  # a record that disagrees with itself: trust nothing, overwrite nothing


def _with_known_edit(record: CopyRecord, source: Digests, copy: Digests | None) -> CopyRecord:
    """A version 1 notebook record: its original's cells are those of a file with its bytes."""
    for known in (source, copy):
        if known is not None and known.content == record.base.content:
            return record._replace(base=known)
    return record


def _base_of_unchanged(record: CopyRecord | None, source: Digests, copy: Digests) -> Digests:
    """What an up-to-date copy counts as made from.

    The original it was made from while that still has the same cells, so a copy nobody ran
    (bytes equal to that original) later gets updates without a copy kept aside; else the
    current original, which the copy now equals in cells (and maybe in bytes).
    """
    if record and copy.content != source.content and record.base.edit == source.edit:
        return record.base
    return source


class _Walk:
    def __init__(self, scan, classify, exclude, max_file_bytes, on_dest_folder):
        self.scan = scan
        self.classify = classify
        self.exclude = exclude
        self.max_file_bytes = max_file_bytes
        self.on_dest_folder = on_dest_folder

    def folder(self, source_fd, dest_fd, dest_problem, prefix):
        if dest_fd is not None and self.on_dest_folder:
            self.on_dest_folder(dest_fd)
        with os.scandir(source_fd) as listing:
            names = sorted((entry.name, entry) for entry in listing)
        for name, dir_entry in names:
            parts = (*prefix, name)
            item_id = "/".join(parts)
            if self.exclude and (self.exclude.match(name) or self.exclude.match(item_id)):
                continue
            reason = unusable_name(name)
            try:
                st = dir_entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while listing
            if reason is None and not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                reason = f"it is {describe_kind(st.st_mode)} (not followed)"
            if reason is None and stat.S_ISREG(st.st_mode) and st.st_size > self.max_file_bytes:
                reason = f"it is larger than the limit of {self.max_file_bytes} bytes"
            if reason:
                self.scan.skipped.append((item_id, reason))
            elif stat.S_ISDIR(st.st_mode):
                self.subfolder(source_fd, dest_fd, dest_problem, parts)
            else:
                dest = _destination(dest_fd, dest_problem, name, item_id)
                entry = Entry(item_id, parts, st, dest)
                self.classify(entry, source_fd, dest_fd)
                self.scan.entries[item_id] = entry

    def subfolder(self, source_fd, dest_fd, dest_problem, parts):
        name = parts[-1]
        try:
            sub_source = open_subdir(source_fd, name, shown_as="/".join(parts))
        except (OSError, UnsafePathError) as error:
            self.scan.skipped.append(("/".join(parts), str(error)))
            return
        sub_dest, sub_problem = None, dest_problem
        if dest_fd is not None:
            sub_dest, sub_problem = open_dest_folder(dest_fd, name, "/".join(parts))
        try:
            self.folder(sub_source, sub_dest, sub_problem, parts)
        finally:
            os.close(sub_source)
            if sub_dest is not None:
                os.close(sub_dest)


def open_dest_folder(parent_fd: int, name: str, shown_as: str) -> tuple[int | None, str | None]:
    """(fd, None) for a real folder, (None, None) when missing, (None, problem) otherwise."""
    try:
        return open_subdir(parent_fd, name, shown_as=shown_as), None
    except FileNotFoundError:
        return None, None
    except UnsafePathError as error:
        return None, str(error)
    except OSError as error:
        return None, f"{shown_as}: {error.strerror}"


def _destination(dest_fd, dest_problem, name, item_id) -> Destination:
    if dest_problem:
        return Destination(problem=dest_problem)
    if dest_fd is None:
        return Destination()
    st = lstat_at(dest_fd, name)
    if st is None:
        return Destination()
    if stat.S_ISREG(st.st_mode):
        return Destination(stat=st)
    movable = not stat.S_ISDIR(st.st_mode)
    return Destination(
        problem=f"{item_id} in your folder is {describe_kind(st.st_mode)}", movable=movable
    )


def scan(
    source_fd: int,
    dest_fd: int | None,
    dest_problem: str | None,
    categories: Iterable[str],
    *,
    classify: Callable[[Entry, int, int | None], None],
    exclude: re.Pattern | None,
    max_file_bytes: int,
    on_dest_folder: Callable[[int], None] | None = None,
) -> Scan:
    """Walk each category of the source (and the same folders of the copy) in id order.

    ``dest_fd`` is the image folder of the destination (None when it does not exist yet);
    ``on_dest_folder`` is called with every existing destination folder walked (temp cleanup).
    """
    result = Scan()
    walk = _Walk(result, classify, exclude, max_file_bytes, on_dest_folder)
    for category in categories:
        st = lstat_at(source_fd, category)
        if st is None:
            continue
        if not stat.S_ISDIR(st.st_mode):
            result.skipped.append((category, f"it is {describe_kind(st.st_mode)} (not followed)"))
            continue
        result.categories.append(category)
        walk.subfolder(source_fd, dest_fd, dest_problem, (category,))
    return result
