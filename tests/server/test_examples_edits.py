"""What counts as an edit: a notebook's cells (types and sources in order), other files' bytes.

Opening, running or saving a notebook rewrites it (kernel metadata, outputs, execution counts,
cell ids) without the user writing anything; such a copy must stay updatable, and an update
must keep the user's run beside the new original, as Reset does.
"""

from __future__ import annotations

import json
import os
import subprocess

import nbformat
import pytest

from jupyter_tk.server.examples.sync import ExamplesSync, ExamplesUnavailableError

from .test_examples_engine import (
    IMAGE,
    copy_path,
    files_under,
    make_sync,
    results_by_id,
    statuses,
    temp_files_under,
    write_tree,
)

ID = "common/lesson.ipynb"
SCRIPT = "common/helper.py"


def notebook_bytes(*cells: tuple[str, str], **metadata) -> bytes:
    """A notebook as the examples repository ships it: no outputs, minimal metadata."""
    nb = nbformat.v4.new_notebook(metadata=metadata)
    for cell_type, source in cells:
        maker = {
            "code": nbformat.v4.new_code_cell,
            "markdown": nbformat.v4.new_markdown_cell,
            "raw": nbformat.v4.new_raw_cell,
        }[cell_type]
        nb.cells.append(maker(source))
    return nbformat.writes(nb).encode()


ORIGINAL = notebook_bytes(("markdown", "# Lesson"), ("code", "print(1 + 1)"))


def as_run_by_the_user(data: bytes) -> bytes:
    """What the kernel and JupyterLab's autosave write after "Run all": nothing the user typed."""
    nb = nbformat.reads(data, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nb.metadata["language_info"] = {"name": "python", "version": "3.12.1"}
    for number, cell in enumerate(nb.cells, start=1):
        cell.id = f"fresh-id-{number}"
        cell.metadata["execution"] = {"iopub.status.idle": "2026-12-04T10:00:00Z"}
        if cell.cell_type == "code":
            cell.execution_count = number
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
    return nbformat.writes(nb, version=4).encode()


def edited(data: bytes, change) -> bytes:
    nb = nbformat.reads(data, as_version=4)
    change(nb)
    return nbformat.writes(nb).encode()


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    write_tree(folder, {ID: ORIGINAL, SCRIPT: b"def helper():\n    return 1\n"})
    return folder


@pytest.fixture
def sync(tmp_path, source) -> ExamplesSync:
    sync = make_sync(tmp_path)
    sync.copy_all()
    return sync


def kept_versions(tmp_path) -> list[bytes]:
    folder = copy_path(tmp_path, ID).parent
    return [path.read_bytes() for path in sorted(folder.glob("lesson.mine-*.ipynb"))]


# ---- opening and running is not an edit ------------------------------------------------------


def test_a_run_notebook_stays_up_to_date_and_is_left_alone(tmp_path, sync):
    run = as_run_by_the_user(ORIGINAL)
    copy_path(tmp_path, ID).write_bytes(run)
    # Listed by a fresh instance (after a restart) and by the same one: not edited
    assert statuses(make_sync(tmp_path))[ID] == "unchanged"
    assert statuses(sync)[ID] == "unchanged"
    result = results_by_id(sync.copy_all())[ID]
    assert (result["action"], result["status"]) == ("skipped", "unchanged")
    assert copy_path(tmp_path, ID).read_bytes() == run, "nothing to update: the run stays"


def test_an_update_reaches_a_run_notebook_and_keeps_the_run_beside_it(tmp_path, source, sync):
    run = as_run_by_the_user(ORIGINAL)
    copy_path(tmp_path, ID).write_bytes(run)
    new_original = notebook_bytes(("markdown", "# Lesson, revised"), ("code", "print(2 + 2)"))
    (source / ID).write_bytes(new_original)
    assert statuses(sync)[ID] == "update-available"

    result = results_by_id(sync.copy_all())[ID]

    assert (result["action"], result["status"]) == ("updated", "unchanged")
    assert copy_path(tmp_path, ID).read_bytes() == new_original
    assert kept_versions(tmp_path) == [run], "the user's outputs are kept, byte for byte"
    assert result["backup"].startswith(f"examples/{IMAGE}/common/lesson.mine-")
    assert (tmp_path / "home" / result["backup"]).read_bytes() == run
    assert statuses(make_sync(tmp_path))[ID] == "unchanged"
    assert temp_files_under(tmp_path / "home") == []


def test_an_update_of_a_copy_nobody_opened_keeps_nothing_aside(tmp_path, source, sync):
    new_original = notebook_bytes(("markdown", "# Lesson, revised"))
    (source / ID).write_bytes(new_original)
    result = results_by_id(sync.copy([ID]))[ID]
    assert (result["action"], result["backup"]) == ("updated", None)
    assert copy_path(tmp_path, ID).read_bytes() == new_original
    assert kept_versions(tmp_path) == []


def test_an_update_after_a_run_of_a_reset_copy(tmp_path, source, sync):
    # Edited, reset to the original, then opened and run: updatable again, like a fresh copy
    copy_path(tmp_path, ID).write_bytes(edited(ORIGINAL, lambda nb: nb.cells.pop()))
    assert results_by_id(sync.reset([ID]))[ID]["action"] == "updated"
    run = as_run_by_the_user(ORIGINAL)
    copy_path(tmp_path, ID).write_bytes(run)
    assert statuses(sync)[ID] == "unchanged"
    (source / ID).write_bytes(notebook_bytes(("markdown", "# v2")))
    assert statuses(sync)[ID] == "update-available"
    assert results_by_id(sync.copy_all())[ID]["action"] == "updated"
    assert run in kept_versions(tmp_path)


def test_an_upstream_change_to_outputs_only_is_not_an_update(tmp_path, source, sync):
    copy_path(tmp_path, ID).write_bytes(as_run_by_the_user(ORIGINAL))
    (source / ID).write_bytes(as_run_by_the_user(ORIGINAL).replace(b"2\\n", b"4\\n"))
    assert statuses(sync)[ID] == "unchanged"
    # ...and a copy nobody ran still gets the original's next cell change without a kept copy
    copy_path(tmp_path, ID).write_bytes(ORIGINAL)
    assert statuses(sync)[ID] == "unchanged"
    (source / ID).write_bytes(notebook_bytes(("markdown", "# v3")))
    assert results_by_id(sync.copy_all())[ID]["backup"] is None


# ---- what the user writes is an edit ---------------------------------------------------------


def _to_raw_cell(nb):
    nb.cells[1] = nbformat.v4.new_raw_cell(nb.cells[1].source)


EDITS = {
    "a cell's source": lambda nb: setattr(nb.cells[1], "source", "print(40 + 2)"),
    "a cell added": lambda nb: nb.cells.append(nbformat.v4.new_code_cell("x = 1")),
    "an empty cell added": lambda nb: nb.cells.append(nbformat.v4.new_code_cell("")),
    "a cell removed": lambda nb: nb.cells.pop(0),
    "cells reordered": lambda nb: nb.cells.reverse(),
    "a cell's type": _to_raw_cell,
    "a trailing newline typed": lambda nb: setattr(nb.cells[0], "source", "# Lesson\n"),
}


@pytest.mark.parametrize("edit", list(EDITS))
def test_changing_what_the_user_writes_is_an_edit(tmp_path, source, sync, edit):
    mine = edited(as_run_by_the_user(ORIGINAL), EDITS[edit])
    copy_path(tmp_path, ID).write_bytes(mine)
    assert statuses(make_sync(tmp_path))[ID] == "modified"
    # An edited copy is never updated: the original changing makes it a conflict
    (source / ID).write_bytes(notebook_bytes(("markdown", "# v2")))
    assert statuses(sync)[ID] == "conflict"
    result = results_by_id(sync.copy_all())[ID]
    assert result["action"] == "skipped"
    assert copy_path(tmp_path, ID).read_bytes() == mine


def test_an_old_format_notebook_saved_as_version_4_is_not_edited(tmp_path, source):
    # JupyterLab upgrades a version 3 notebook (worksheets, heading cells) when it saves it
    (source / ID).write_bytes(
        nbformat.writes(
            nbformat.convert(nbformat.reads(ORIGINAL, as_version=4), 3), version=3
        ).encode()
    )
    sync = make_sync(tmp_path)
    sync.copy_all()
    upgraded = nbformat.reads(copy_path(tmp_path, ID).read_bytes(), as_version=4)
    copy_path(tmp_path, ID).write_bytes(as_run_by_the_user(nbformat.writes(upgraded).encode()))
    assert b'"worksheets"' not in copy_path(tmp_path, ID).read_bytes()
    assert statuses(sync)[ID] == "unchanged"
    copy_path(tmp_path, ID).write_bytes(edited(ORIGINAL, EDITS["a cell removed"]))
    assert statuses(sync)[ID] == "modified"


def test_metadata_only_changes_are_not_edits(tmp_path, sync):
    def metadata_only(nb):
        nb.metadata["tags"] = ["mine"]
        nb.metadata["widgets"] = {"state": {}}
        nb.cells[0].metadata["collapsed"] = True
        nb.cells[1].metadata["scrolled"] = True
        nb.nbformat_minor = 4
        for cell in nb.cells:
            cell.pop("id", None)

    copy_path(tmp_path, ID).write_bytes(edited(ORIGINAL, metadata_only))
    assert statuses(sync)[ID] == "unchanged"


def test_an_edit_made_back_to_the_original_cells_is_up_to_date(tmp_path, source, sync):
    copy_path(tmp_path, ID).write_bytes(edited(ORIGINAL, EDITS["a cell's source"]))
    assert statuses(sync)[ID] == "modified"
    copy_path(tmp_path, ID).write_bytes(as_run_by_the_user(ORIGINAL))
    assert statuses(sync)[ID] == "unchanged"


def test_both_made_the_same_cell_change(tmp_path, source, sync):
    change = EDITS["a cell's source"]
    (source / ID).write_bytes(edited(ORIGINAL, change))
    copy_path(tmp_path, ID).write_bytes(edited(as_run_by_the_user(ORIGINAL), change))
    assert statuses(sync)[ID] == "unchanged"
    # Once a sync has recorded that, the copy counts as made from the new original: the next
    # update keeps the user's run aside
    assert results_by_id(sync.copy_all())[ID]["status"] == "unchanged"
    run = copy_path(tmp_path, ID).read_bytes()
    (source / ID).write_bytes(notebook_bytes(("markdown", "# v3")))
    assert results_by_id(sync.copy_all())[ID]["action"] == "updated"
    assert kept_versions(tmp_path) == [run]


# ---- files compared by their bytes -----------------------------------------------------------


@pytest.mark.parametrize(
    "unreadable",
    [
        b"{ this is not JSON",
        b'{"cells": "not a list", "nbformat": 4, "nbformat_minor": 5, "metadata": {}}',
        b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [{"source": "x"}]}',
        b"\xff\xfe not UTF-8",
    ],
)
def test_a_notebook_that_does_not_parse_is_compared_by_its_bytes(tmp_path, source, unreadable):
    (source / ID).write_bytes(unreadable)
    sync = make_sync(tmp_path)
    sync.copy_all()
    assert statuses(sync)[ID] == "unchanged"
    copy_path(tmp_path, ID).write_bytes(unreadable + b"\n")  # any byte counts
    assert statuses(sync)[ID] == "modified"
    (source / ID).write_bytes(ORIGINAL)
    assert statuses(sync)[ID] == "conflict"
    assert results_by_id(sync.copy_all())[ID]["action"] == "skipped"


def test_a_copy_broken_by_the_user_is_an_edit(tmp_path, source, sync):
    copy_path(tmp_path, ID).write_bytes(ORIGINAL[:-20])  # truncated: no longer parses
    assert statuses(sync)[ID] == "modified"


@pytest.mark.parametrize(
    "mine",
    [b"def helper():\n    return 1\n\n", b"def helper():\r\n    return 1\r\n", b"# run\n"],
)
def test_other_files_are_compared_by_their_bytes(tmp_path, source, sync, mine):
    copy_path(tmp_path, SCRIPT).write_bytes(mine)
    assert statuses(sync)[SCRIPT] == "modified"
    (source / SCRIPT).write_bytes(b"def helper():\n    return 2\n")
    assert statuses(sync)[SCRIPT] == "conflict"
    assert results_by_id(sync.copy_all())[SCRIPT]["action"] == "skipped"
    assert copy_path(tmp_path, SCRIPT).read_bytes() == mine


def test_a_json_file_that_is_not_a_notebook_is_compared_by_its_bytes(tmp_path, source):
    nb_like = "common/config.json"
    write_tree(source, {nb_like: ORIGINAL})
    sync = make_sync(tmp_path)
    sync.copy_all()
    copy_path(tmp_path, nb_like).write_bytes(as_run_by_the_user(ORIGINAL))
    assert statuses(sync)[nb_like] == "modified"


# ---- upgrades: manifests written before edit digests existed ----------------------------------


def test_a_version_1_manifest_still_tells_a_run_copy_from_an_edited_one(tmp_path, source, sync):
    manifest_path = tmp_path / "home" / "examples" / IMAGE / ".jupyter-tk-manifest.json"
    current = json.loads(manifest_path.read_bytes())
    # What version 1 wrote: bytes only, "digest" equal to "base"
    old = {
        "version": 1,
        "copies": {
            item_id: {"base": r["base"], "digest": r["base"], "size": r["size"]}
            | {"mtime_ns": r["mtime_ns"], "inode": r["inode"]}
            for item_id, r in current["copies"].items()
        },
        "sources": {},
    }
    manifest_path.write_text(json.dumps(old))
    copy_path(tmp_path, ID).write_bytes(as_run_by_the_user(ORIGINAL))
    fresh = make_sync(tmp_path)
    assert statuses(fresh) == {ID: "unchanged", SCRIPT: "unchanged"}
    copy_path(tmp_path, ID).write_bytes(edited(ORIGINAL, EDITS["a cell removed"]))
    assert statuses(fresh)[ID] == "modified"


# ---- a reset that fails after moving the user's file aside says where it is -------------------


@pytest.fixture
def tiny_filesystem(tmp_path):
    """A real 64 KiB tmpfs (skipped where mounting is not allowed)."""
    mount_point = tmp_path / "tiny"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount_point)],
        capture_output=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


def fill_leaving(folder, free_bytes: int) -> None:
    """Write a filler file so that exactly ``free_bytes`` stay free on the filesystem."""
    vfs = os.statvfs(folder)
    filler = vfs.f_bavail * vfs.f_frsize - free_bytes
    with open(folder / "filler.bin", "wb") as handle:
        handle.write(b"\0" * filler)
    vfs = os.statvfs(folder)
    assert vfs.f_bavail * vfs.f_frsize == free_bytes


def test_disk_full_after_moving_the_users_file_aside_names_where_it_is(
    tmp_path, source, tiny_filesystem
):
    destination = tiny_filesystem / "examples"
    # min_free_bytes 0: the real free space decides; the reset's copy of the original fits
    sync = make_sync(tmp_path, destination_dir=str(destination), min_free_bytes=0)
    sync.copy_all()
    copy = destination / IMAGE / ID
    mine = edited(ORIGINAL, EDITS["a cell removed"])
    copy.write_bytes(mine)
    # Room for the original's temp copy (one page) and nothing more: the manifest cannot be saved
    fill_leaving(tiny_filesystem, 4096)

    with pytest.raises(ExamplesUnavailableError) as refused:
        sync.reset([ID])

    message = str(refused.value)
    assert "No space left on device" in message
    kept = sorted(copy.parent.glob("lesson.mine-*.ipynb"))
    assert [path.read_bytes() for path in kept] == [mine], "the user's version is safe"
    assert f"{ID} is now {destination / IMAGE / 'common' / kept[0].name}" in message
    assert message in sync.sync_status()["error"]
    assert copy.read_bytes() == ORIGINAL
    assert temp_files_under(tiny_filesystem) == []
    # Once there is room again, nothing is lost and the listing is consistent
    (tiny_filesystem / "filler.bin").unlink()
    assert statuses(sync)[ID] == "unchanged"
    assert {f for f in files_under(destination / IMAGE) if ".mine-" in f} == {
        f"common/{kept[0].name}"
    }
