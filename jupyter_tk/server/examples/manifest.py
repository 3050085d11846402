"""The manifest: what each copy was made from, so every file gets exactly one status.

Stored as ``<destination>/<image>/.jupyter-tk-manifest.json`` (hidden, written atomically).
Per example id it keeps the digests of the original the copy was made from (``base``) and, as
a cache, the copy's digests (only where they differ from ``base``) with its size/mtime/inode;
plus a cache of source fingerprint -> digests. With both, a re-sync where nothing changed
compares fingerprints only and reads no file. Each digest pair is the bytes' SHA-256 and the
edit digest (see edits.py); the edit digest is stored only where it differs from the bytes'
(notebooks that parse).
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass, field
from typing import NamedTuple

from jupyter_tk.server.examples.edits import Digests, is_notebook
from jupyter_tk.server.examples.fs import (
    Fingerprint,
    UnsafePathError,
    lstat_at,
    open_regular,
    write_atomically,
)

MANIFEST_NAME = ".jupyter-tk-manifest.json"
# Version 2 added edit digests. Version 1 manifests are still read (see from_json).
FORMAT_VERSION = 2
# A manifest larger than this is not ours (2,000 files take about 0.5 MB).
MAX_MANIFEST_BYTES = 256 << 20


class CopyRecord(NamedTuple):
    """One copy in the destination, as jupyter-tk last wrote or verified it."""

    # The original the copy was made from (or last found equal to). ``base.edit`` is None only
    # for a notebook recorded by version 1, which knew bytes only.
    base: Digests
    # The copy's digests when it had ``fingerprint``: a cache that saves reading it again,
    # never a verdict (None: nothing cached).
    copy: Digests | None
    fingerprint: Fingerprint


class SourceRecord(NamedTuple):
    """Cached digests of one source file, valid while its fingerprint is the same."""

    digests: Digests
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
                item_id: {
                    **_digests_json(r.base, "base", "base_edit"),
                    # Most copies are the original byte for byte: then no second pair is stored
                    **({} if r.copy == r.base else _digests_json(r.copy, "digest", "edit")),
                    **r.fingerprint._asdict(),
                }
                for item_id, r in self.copies.items()
            },
            "sources": {
                item_id: {**_digests_json(r.digests, "digest", "edit"), **r.fingerprint._asdict()}
                for item_id, r in self.sources.items()
            },
        }
        # No indent: indenting switches json to its pure-Python encoder (several times slower).
        return json.dumps(document, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        """Parse a manifest; raise ValueError when it is not one (bad entries are dropped).

        Version 1 knew bytes only: its notebooks' originals get an unknown edit digest
        (worked out later where the bytes allow it) and no cache, so they are read once more.
        """
        document = json.loads(data)
        version = document.get("version") if isinstance(document, dict) else None
        if version not in (1, FORMAT_VERSION):
            raise ValueError("not a jupyter-tk manifest of a known version")
        manifest = cls()
        for item_id, entry in _entries(document, "copies"):
            fp = _fingerprint(entry)
            if version == 1 and is_notebook(item_id):
                base = entry.get("base")
                base = Digests(base, None) if _is_digest(base) else None
                copy = None
            else:
                base = _digests(entry, "base", "base_edit", unknown_edit=True)
                copy = _digests(entry, "digest", "edit") if "digest" in entry else base
            if fp and base:
                manifest.copies[item_id] = CopyRecord(base, copy, fp)
        for item_id, entry in _entries(document, "sources"):
            fp = _fingerprint(entry)
            digests = _digests(entry, "digest", "edit")
            if fp and digests and not (version == 1 and is_notebook(item_id)):
                manifest.sources[item_id] = SourceRecord(digests, fp)
        return manifest


def _digests_json(digests: Digests | None, content_key: str, edit_key: str) -> dict:
    if digests is None:
        return {}
    if digests.edit == digests.content:
        return {content_key: digests.content}
    return {content_key: digests.content, edit_key: digests.edit}


def _digests(entry: dict, content_key: str, edit_key: str, *, unknown_edit=False):
    """The pair stored under these keys; an absent edit key means "same as the bytes"."""
    content = entry.get(content_key)
    edit = entry.get(edit_key, content)
    if _is_digest(content) and (_is_digest(edit) or (unknown_edit and edit is None)):
        return Digests(content, edit)
    return None


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
