"""The manifest: what each copy was made from, so every file gets exactly one status.

Stored as ``<destination>/<image>/.jupyter-tk-manifest.json`` (hidden, written atomically).
Per example id it keeps the source hash the copy was made from (``base``), the copy's hash at
that time and the copy's size/mtime/inode, plus a cache of source fingerprint -> hash. With
both, a re-sync where nothing changed compares fingerprints only and reads no file.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from jupyter_tk.server.examples.fs import (
    Fingerprint,
    UnsafePathError,
    lstat_at,
    open_regular,
    write_atomically,
)

MANIFEST_NAME = ".jupyter-tk-manifest.json"
FORMAT_VERSION = 1
# A manifest larger than this is not ours (2,000 files take about 0.5 MB).
MAX_MANIFEST_BYTES = 256 << 20


class CopyRecord(NamedTuple):
    """One copy in the destination, as jupyter-tk last wrote or verified it."""

    base: str  # SHA-256 of the source the copy was made from
    digest: str  # SHA-256 of the copy when it was written or last verified
    fingerprint: Fingerprint  # the copy's size/mtime/inode when ``digest`` was taken


class SourceRecord(NamedTuple):
    """A cached hash of one source file, valid while its fingerprint is the same."""

    digest: str
    fingerprint: Fingerprint


@dataclass
class Manifest:
    copies: dict[str, CopyRecord] = field(default_factory=dict)
    sources: dict[str, SourceRecord] = field(default_factory=dict)

    def clone(self) -> Manifest:
        """A copy to change (records are immutable tuples, so shallow copies suffice)."""
        return Manifest(dict(self.copies), dict(self.sources))

    def to_json(self) -> bytes:
        document = {
            "version": FORMAT_VERSION,
            "copies": {
                item_id: {"base": r.base, "digest": r.digest, **r.fingerprint._asdict()}
                for item_id, r in self.copies.items()
            },
            "sources": {
                item_id: {"digest": r.digest, **r.fingerprint._asdict()}
                for item_id, r in self.sources.items()
            },
        }
        # No indent: indenting switches json to its pure-Python encoder (several times slower).
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse a manifest; raise ValueError when it is not one (bad entries are dropped)."""
        document = json.loads(data)
        if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
            raise ValueError("not a jupyter-tk manifest of a known version")
        manifest = cls()
        for item_id, entry in _entries(document, "copies"):
            fp = _fingerprint(entry)
            base, digest = entry.get("base"), entry.get("digest")
            if fp and _is_digest(base) and _is_digest(digest):
                manifest.copies[item_id] = CopyRecord(base, digest, fp)
        for item_id, entry in _entries(document, "sources"):
            fp = _fingerprint(entry)
            if fp and _is_digest(entry.get("digest")):
                manifest.sources[item_id] = SourceRecord(entry["digest"], fp)
        return manifest


def _entries(document: dict, key: str):
    section = document.get(key)
    if not isinstance(section, dict):
        return
    for item_id, entry in section.items():
        if isinstance(entry, dict):
            yield item_id, entry


def _fingerprint(entry: dict) -> Fingerprint | None:
    values = [entry.get(name) for name in Fingerprint._fields]
    if all(type(value) is int and value >= 0 for value in values):
        return Fingerprint(*values)
    return None


def _is_digest(value) -> bool:
    return isinstance(value, str) and len(value) == 64


class ManifestStore:
    """Loads and saves a manifest; keeps the parsed copy while the file on disk is unchanged.

    The cached manifest is shared: callers that change it work on ``clone()`` and ``save`` it.
    """

    def __init__(self, log):
        self.log = log
        self._lock = threading.Lock()
        self._cached: tuple[str, Fingerprint, Manifest] | None = None

    def load(self, dir_fd: int | None, shown_as: str) -> Manifest:
        """The manifest in ``dir_fd`` (an empty one if there is none or it is unreadable)."""
        if dir_fd is None:
            return Manifest()
        st = lstat_at(dir_fd, MANIFEST_NAME)
        if st is None:
            return Manifest()
        fp = Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino)
        with self._lock:
            if self._cached and self._cached[0] == shown_as and self._cached[1] == fp:
                return self._cached[2]
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_MANIFEST_BYTES:
            self.log.warning("Ignoring %s/%s: not a manifest file", shown_as, MANIFEST_NAME)
            return Manifest()
        try:
            fd, st = open_regular(dir_fd, MANIFEST_NAME, MANIFEST_NAME)
            try:
                data = _read_all(fd, st.st_size)
            finally:
                os.close(fd)
            manifest = Manifest.from_json(data)
        except (OSError, UnsafePathError, ValueError) as error:
            # Losing the records is safe: files then compare by content and none is overwritten.
            self.log.warning("Ignoring unreadable %s/%s: %s", shown_as, MANIFEST_NAME, error)
            return Manifest()
        with self._lock:
            self._cached = (shown_as, Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino), manifest)
        return manifest

    def save(self, dir_fd: int, shown_as: str, manifest: Manifest) -> None:
        write_atomically(dir_fd, MANIFEST_NAME, manifest.to_json())
        st = lstat_at(dir_fd, MANIFEST_NAME)
        if st is not None:
            with self._lock:
                fp = Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino)
                self._cached = (shown_as, fp, manifest)


def _read_all(fd: int, size_hint: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, max(size_hint, 1 << 16)):
        chunks.append(chunk)
    return b"".join(chunks)
