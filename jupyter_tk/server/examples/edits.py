"""What counts as an edit: a notebook's cells, any other file's bytes.

Opening, running or saving a notebook makes JupyterLab and the kernel rewrite it (kernel and
language metadata, outputs, execution counts, cell ids) although the user wrote nothing. So
each file gets two digests: ``content``, the SHA-256 of its bytes, and ``edit``, the SHA-256 of
what the user writes — for a notebook that nbformat can read, the type and source of every
cell in order; for any other file (or a notebook that does not parse) its bytes, so an
unreadable notebook conservatively counts as edited whenever its bytes differ.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import NamedTuple

from jupyter_tk.server.examples.fs import open_regular, thread_buffer

NOTEBOOK_SUFFIX = ".ipynb"
# Keeps a cells digest from ever equalling the digest of some file's bytes.
_CELLS_DOMAIN = b"jupyter-tk notebook cells v1\x00"


class Digests(NamedTuple):
    """SHA-256 of a file's bytes, and of what its user wrote (equal for non-notebooks)."""

    content: str
    edit: str


def is_notebook(name: str) -> bool:
    return name.endswith(NOTEBOOK_SUFFIX)


def cells_digest(data: bytes) -> str | None:
    """Digest of a notebook's cell types and sources in order; None when it does not parse."""
    try:
        text = data.decode("utf-8")
        notebook = json.loads(text)
        if notebook.get("nbformat") != 4:
            # Older formats (v3 worksheets): nbformat reads and upgrades them. Version 4 is read
            # as JSON directly: nbformat's node conversion costs ~6x the parse, for nothing here.
            import nbformat  # only ever needed for such old files
            from nbformat.reader import reads

            notebook = nbformat.convert(reads(text), 4)
        written = []
        for cell in notebook["cells"]:
            source = cell["source"]
            if isinstance(source, list) and all(isinstance(line, str) for line in source):
                source = "".join(source)
            if not isinstance(cell["cell_type"], str) or not isinstance(source, str):
                return None
            written.append([cell["cell_type"], source])
    except Exception:  # any file that cannot be read as a notebook is compared by its bytes
        return None
    encoded = json.dumps(written, ensure_ascii=False, separators=(",", ":")).encode()
    return hashlib.sha256(_CELLS_DOMAIN + encoded).hexdigest()


def digests_of(name: str, data: bytes) -> Digests:
    content = hashlib.sha256(data).hexdigest()
    return Digests(content, (is_notebook(name) and cells_digest(data)) or content)


def read_digests(dir_fd: int, name: str, shown_as: str) -> tuple[Digests, os.stat_result]:
    """Both digests of a regular file (no symlink followed) and the fstat taken before reading.

    Whether it is a notebook goes by ``shown_as`` (its id: a temp copy's name says nothing).
    Other files are hashed as they stream by; a notebook is kept in memory to be parsed (it is
    at most ``ExamplesSync.max_file_bytes``).
    """
    fd, st = open_regular(dir_fd, name, shown_as)
    keep = is_notebook(shown_as)
    try:
        digest = hashlib.sha256()
        chunks = []
        buffer, view = thread_buffer()
        while count := os.readv(fd, [buffer]):
            digest.update(view[:count])
            if keep:
                chunks.append(bytes(view[:count]))
    finally:
        os.close(fd)
    content = digest.hexdigest()
    edit = (keep and cells_digest(b"".join(chunks))) or content
    return Digests(content, edit), st
