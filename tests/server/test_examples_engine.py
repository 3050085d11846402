"""ExamplesSync engine: every status, what copy/copy-all/reset do to each, and the fast path."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from jupyter_tk.server.examples.fs import TEMP_NAME
from jupyter_tk.server.examples.sync import (
    ExamplesRequestError,
    ExamplesSync,
    ExamplesUnavailableError,
)

IMAGE = "tk-jupyter-ml-gpu"
V1, V2, MINE = b'{"cells": "v1"}', b'{"cells": "v2 from upstream"}', b'{"cells": "my edit"}'


# ---- helpers shared by the other test_examples_* modules ----------------------------------


def write_tree(root: Path, files: dict[str, bytes]) -> None:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def make_sync(tmp_path: Path, **overrides) -> ExamplesSync:
    settings = {
        "source_dir": str(tmp_path / "source"),
        "destination_dir": str(tmp_path / "home" / "examples"),
        "image_name": IMAGE,
        "root_dir": str(tmp_path / "home"),
        **overrides,
    }
    return ExamplesSync(**settings)


def copy_path(tmp_path: Path, item_id: str) -> Path:
    return tmp_path / "home" / "examples" / IMAGE / item_id


def statuses(sync: ExamplesSync) -> dict[str, str]:
    return {item["id"]: item["status"] for item in sync.list_examples()["items"]}


def results_by_id(response: dict) -> dict[str, dict]:
    return {result["id"]: result for result in response["results"]}


def files_under(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir()}


def temp_files_under(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if TEMP_NAME.fullmatch(p.name)]


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    write_tree(
        folder,
        {
            "common/intro.ipynb": V1,
            "common/data/notes.md": b"# notes\n",
            "ml-gpu/train.ipynb": b"gpu v1",
            "ml-cpu/cpu-only.ipynb": b"not for this image",
        },
    )
    return folder


# ---- the status table --------------------------------------------------------------------

ID = "common/intro.ipynb"


def _edit_copy(tmp_path, data=MINE):
    copy_path(tmp_path, ID).write_bytes(data)


def _change_source(tmp_path, data=V2):
    (tmp_path / "source" / ID).write_bytes(data)


def _touch_copy(tmp_path):
    path = copy_path(tmp_path, ID)
    later = time.time_ns() + 5_000_000_000
    os.utime(path, ns=(later, later))


def _delete_copy(tmp_path):
    copy_path(tmp_path, ID).unlink()


def _forget_manifest(tmp_path):
    (tmp_path / "home" / "examples" / IMAGE / ".jupyter-tk-manifest.json").unlink()


# name: (copy first?, changes after the first copy, status, content before any action)
CASES = {
    "new": (False, [], "new", None),
    "unchanged": (True, [], "unchanged", V1),
    "touched but same content": (True, [_touch_copy], "unchanged", V1),
    "update-available": (True, [_change_source], "update-available", V1),
    "modified": (True, [_edit_copy], "modified", MINE),
    "edited back to the original": (
        True,
        [_edit_copy, lambda t: _edit_copy(t, V1)],
        "unchanged",
        V1,
    ),
    "conflict": (True, [_edit_copy, _change_source], "conflict", MINE),
    "both made the same change": (
        True,
        [_change_source, lambda t: _edit_copy(t, V2)],
        "unchanged",
        V2,
    ),
    "deleted": (True, [_delete_copy], "deleted", None),
    "deleted, upstream changed": (True, [_delete_copy, _change_source], "deleted", None),
    "unrecorded copy equal to source": (True, [_forget_manifest], "unchanged", V1),
    "unrecorded copy that differs": (True, [_forget_manifest, _edit_copy], "conflict", MINE),
}

# name: {operation: (action, status after, copy content after, saved user version or None)}
EXPECTED = {
    "new": {
        "copy_all": ("copied", "unchanged", V1, None),
        "copy": ("copied", "unchanged", V1, None),
        "reset": ("copied", "unchanged", V1, None),
    },
    "unchanged": {op: ("skipped", "unchanged", V1, None) for op in ("copy_all", "copy", "reset")},
    "touched but same content": {
        op: ("skipped", "unchanged", V1, None) for op in ("copy_all", "copy", "reset")
    },
    "update-available": {
        op: ("updated", "unchanged", V2, None) for op in ("copy_all", "copy", "reset")
    },
    "modified": {
        "copy_all": ("skipped", "modified", MINE, None),
        "copy": ("skipped", "modified", MINE, None),
        "reset": ("updated", "unchanged", V1, MINE),
    },
    "edited back to the original": {
        op: ("skipped", "unchanged", V1, None) for op in ("copy_all", "copy", "reset")
    },
    "conflict": {
        "copy_all": ("skipped", "conflict", MINE, None),
        "copy": ("skipped", "conflict", MINE, None),
        "reset": ("updated", "unchanged", V2, MINE),
    },
    "both made the same change": {
        op: ("skipped", "unchanged", V2, None) for op in ("copy_all", "copy", "reset")
    },
    "deleted": {
        "copy_all": ("skipped", "deleted", None, None),
        "copy": ("copied", "unchanged", V1, None),
        "reset": ("copied", "unchanged", V1, None),
    },
    "deleted, upstream changed": {
        "copy_all": ("skipped", "deleted", None, None),
        "copy": ("copied", "unchanged", V2, None),
        "reset": ("copied", "unchanged", V2, None),
    },
    "unrecorded copy equal to source": {
        op: ("skipped", "unchanged", V1, None) for op in ("copy_all", "copy", "reset")
    },
    "unrecorded copy that differs": {
        "copy_all": ("skipped", "conflict", MINE, None),
        "copy": ("skipped", "conflict", MINE, None),
        "reset": ("updated", "unchanged", V1, MINE),
    },
}


def _arrange(tmp_path, case) -> ExamplesSync:
    copy_first, changes, _status, _content = CASES[case]
    sync = make_sync(tmp_path)
    if copy_first:
        sync.copy_all()
    for change in changes:
        change(tmp_path)
    return sync


@pytest.mark.parametrize("case", list(CASES))
def test_each_situation_gets_exactly_one_status(tmp_path, source, case):
    # Given the copy went through the situation; when listed (a fresh instance, as after a restart)
    _arrange(tmp_path, case)
    listed = statuses(make_sync(tmp_path))
    # Then the file has the status of the table and the other files are unaffected
    assert listed[ID] == CASES[case][2]
    assert set(listed) == {"common/intro.ipynb", "common/data/notes.md", "ml-gpu/train.ipynb"}


@pytest.mark.parametrize("operation", ["copy_all", "copy", "reset"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_operation_on_each_status(tmp_path, source, case, operation):
    sync = _arrange(tmp_path, case)
    before = set(files_under(tmp_path / "home"))
    # When the operation runs (by id for copy and reset)
    response = sync.copy_all() if operation == "copy_all" else getattr(sync, operation)([ID])
    # Then the result, the file content and any saved version are as the table says
    action, status_after, content, saved = EXPECTED[case][operation]
    result = results_by_id(response)[ID]
    assert (result["action"], result["status"]) == (action, status_after)
    assert statuses(sync)[ID] == status_after
    path = copy_path(tmp_path, ID)
    assert (path.read_bytes() if path.exists() else None) == content
    backups = sorted(path.parent.glob("intro.mine-*.ipynb"))
    if saved is None:
        assert backups == []
        assert result["backup"] is None
    else:
        assert [b.read_bytes() for b in backups] == [saved]
        assert result["backup"] == f"examples/{IMAGE}/common/{backups[0].name}"
    # And no file that existed before disappeared (nothing is ever deleted)
    after = set(files_under(tmp_path / "home"))
    assert before - after == set()
    assert temp_files_under(tmp_path / "home") == []


def test_fsync_per_file_mode_copies_updates_and_resets(tmp_path, source):
    sync = make_sync(tmp_path, flush="file")
    assert {r["action"] for r in sync.copy_all()["results"]} == {"copied"}
    _change_source(tmp_path)
    _edit_copy(tmp_path, b"mine, edited")
    (source / "ml-gpu" / "train.ipynb").write_bytes(b"gpu v2")
    assert results_by_id(sync.copy_all())["ml-gpu/train.ipynb"]["action"] == "updated"
    assert results_by_id(sync.reset([ID]))[ID]["action"] == "updated"
    assert copy_path(tmp_path, ID).read_bytes() == V2
    assert set(statuses(sync).values()) == {"unchanged"}
    assert temp_files_under(tmp_path / "home") == []


def test_skip_messages_explain_what_to_do(tmp_path, source):
    sync = _arrange(tmp_path, "modified")
    result = results_by_id(sync.copy_all())[ID]
    assert "Reset to original" in result["message"]
    _delete_copy(tmp_path)
    result = results_by_id(sync.copy_all())[ID]
    assert result["status"] == "deleted" and "deleted" in result["message"]


def test_reset_twice_in_one_second_keeps_both_versions(tmp_path, source):
    sync = _arrange(tmp_path, "modified")
    sync.reset([ID])
    _edit_copy(tmp_path, b"second edit")
    second = results_by_id(sync.reset([ID]))[ID]
    saved = sorted(copy_path(tmp_path, ID).parent.glob("intro.mine-*.ipynb"))
    assert sorted(p.read_bytes() for p in saved) == sorted([MINE, b"second edit"])
    assert second["backup"].endswith(".ipynb") and ".mine-" in second["backup"]
    assert copy_path(tmp_path, ID).read_bytes() == V1


# ---- categories, layout, listing ------------------------------------------------------------


def test_list_before_any_copy_writes_nothing(tmp_path, source):
    document = make_sync(tmp_path).list_examples()
    assert document["image"] == IMAGE
    assert document["categories"] == ["common", "ml-gpu"]
    assert document["source_exists"] is True and document["error"] is None
    assert [item["status"] for item in document["items"]] == ["new"] * 3
    assert {item["path"] for item in document["items"]} == {
        f"examples/{IMAGE}/common/data/notes.md",
        f"examples/{IMAGE}/common/intro.ipynb",
        f"examples/{IMAGE}/ml-gpu/train.ipynb",
    }
    assert not (tmp_path / "home").exists()


def test_copies_go_to_image_and_category_folders(tmp_path, source):
    make_sync(tmp_path).copy_all()
    assert files_under(tmp_path / "home" / "examples" / IMAGE) == {
        ".jupyter-tk-manifest.json",
        ".jupyter-tk.lock",
        "common/data/notes.md",
        "common/intro.ipynb",
        "ml-gpu/train.ipynb",
    }


def test_destination_outside_root_gives_absolute_paths(tmp_path, source):
    sync = make_sync(tmp_path, root_dir=str(tmp_path / "elsewhere"))
    paths = {item["path"] for item in sync.list_examples()["items"]}
    assert f"{tmp_path}/home/examples/{IMAGE}/common/intro.ipynb" in paths


def test_missing_source_is_reported_and_nothing_is_created(tmp_path):
    sync = make_sync(tmp_path)
    document = sync.list_examples()
    assert document["source_exists"] is False
    assert "does not exist" in document["error"]
    assert document["items"] == []
    with pytest.raises(ExamplesUnavailableError, match="does not exist"):
        sync.copy_all()
    assert "does not exist" in sync.sync_status()["error"]
    assert not (tmp_path / "home").exists()


def test_excluded_names_are_never_listed(tmp_path, source):
    write_tree(
        source,
        {
            "common/.git/config": b"x",
            "common/.ipynb_checkpoints/intro-checkpoint.ipynb": b"x",
            "common/__pycache__/m.cpython-311.pyc": b"x",
            "common/big.ckpt": b"x",
            "common/data/raw/huge.csv": b"x",
        },
    )
    excludes = [".git", ".ipynb_checkpoints", "__pycache__", "*.ckpt", "common/data/raw"]
    sync = make_sync(tmp_path, exclude=excludes)
    assert set(statuses(sync)) == {
        "common/intro.ipynb",
        "common/data/notes.md",
        "ml-gpu/train.ipynb",
    }


def test_files_over_the_size_cap_are_skipped_with_a_reason(tmp_path, source):
    write_tree(source, {"common/weights.bin": b"x" * 2048})
    sync = make_sync(tmp_path, max_file_bytes=1024)
    document = sync.list_examples()
    assert "common/weights.bin" not in {item["id"] for item in document["items"]}
    assert document["skipped"] == [
        {"id": "common/weights.bin", "reason": "it is larger than the limit of 1024 bytes"}
    ]
    sync.copy_all()
    assert not copy_path(tmp_path, "common/weights.bin").exists()


def test_total_cap_stops_copying_with_a_clear_message(tmp_path, source):
    sync = make_sync(tmp_path, max_total_bytes=len(V1) + 10)
    response = results_by_id(sync.copy_all())
    errors = [r for r in response.values() if r["action"] == "error"]
    assert errors and all("ExamplesSync.max_total_bytes" in r["message"] for r in errors)
    copied = [r for r in response.values() if r["action"] == "copied"]
    assert sum(copy_path(tmp_path, r["id"]).stat().st_size for r in copied) <= len(V1) + 10
    assert "file(s) not copied" in sync.sync_status()["error"]


# ---- the fast path: a no-op re-sync reads no file ---------------------------------------------


@pytest.fixture
def count_reads(monkeypatch):
    """Counts file reads at the OS boundary (os.readv is how files are hashed and copied)."""
    calls = []
    real_readv = os.readv

    def counting_readv(fd, buffers):
        calls.append(fd)
        return real_readv(fd, buffers)

    monkeypatch.setattr(os, "readv", counting_readv)
    return calls


def test_no_op_resync_and_listing_read_no_file(tmp_path, source, count_reads):
    make_sync(tmp_path).copy_all()
    count_reads.clear()
    # A fresh instance (new process after a restart) relies on the manifest alone
    fresh = make_sync(tmp_path)
    response = fresh.copy_all()
    assert {r["action"] for r in response["results"]} == {"skipped"}
    fresh.list_examples()
    assert count_reads == []


def test_only_changed_files_are_hashed_again(tmp_path, source, count_reads):
    sync = make_sync(tmp_path)
    sync.copy_all()
    _touch_copy(tmp_path)
    (source / "ml-gpu" / "train.ipynb").write_bytes(b"gpu v2")
    count_reads.clear()
    assert statuses(sync) == {
        "common/intro.ipynb": "unchanged",
        "common/data/notes.md": "unchanged",
        "ml-gpu/train.ipynb": "update-available",
    }
    # one read (plus the end-of-file read) per changed file: the touched copy and the new source
    assert 2 <= len(count_reads) <= 4
    count_reads.clear()
    sync.copy_all()  # copies train.ipynb: reads the source once more while copying it
    count_reads.clear()
    sync.copy_all()
    assert count_reads == []


def test_an_edit_that_changes_the_size_is_seen_without_reading(tmp_path, source, count_reads):
    # Only for files that are not notebooks: running a notebook changes its size, not its cells
    make_sync(tmp_path).copy_all()
    copy_path(tmp_path, "common/data/notes.md").write_bytes(b"# my longer notes\n")
    count_reads.clear()
    assert statuses(make_sync(tmp_path))["common/data/notes.md"] == "modified"
    assert count_reads == []


def test_a_file_removed_upstream_leaves_the_copy_alone(tmp_path, source):
    sync = make_sync(tmp_path)
    sync.copy_all()
    (source / ID).unlink()
    response = results_by_id(sync.copy_all())
    assert ID not in response and ID not in statuses(sync)
    assert copy_path(tmp_path, ID).read_bytes() == V1
    manifest = json.loads(
        (tmp_path / "home" / "examples" / IMAGE / ".jupyter-tk-manifest.json").read_bytes()
    )
    assert ID in manifest["copies"] and ID not in manifest["sources"]
    with pytest.raises(ExamplesRequestError, match="unknown example id"):
        sync.reset([ID])
    (source / ID).write_bytes(V2)  # back upstream, changed: the old record still applies
    assert statuses(sync)[ID] == "update-available"


# ---- start-up sync ---------------------------------------------------------------------------


def test_background_sync_copies_and_reports(tmp_path, source):
    sync = make_sync(tmp_path)
    future = sync.start_background_sync()
    future.result(timeout=30)
    status = sync.sync_status()
    assert status["running"] is False and status["error"] is None
    assert status["copied"] == 3 and status["finished_at"] is not None
    assert set(statuses(sync).values()) == {"unchanged"}
    sync.close()


def test_background_sync_errors_are_kept_not_raised(tmp_path):
    sync = make_sync(tmp_path, image_name="bad/name")
    (tmp_path / "source").mkdir()
    sync.start_background_sync().result(timeout=30)
    assert "cannot be a folder name" in sync.sync_status()["error"]
    sync.close()


def test_a_bad_request_leaves_the_sync_status_alone(tmp_path, source):
    sync = make_sync(tmp_path)
    sync.copy_all()
    before = sync.sync_status()
    with pytest.raises(ExamplesRequestError):
        sync.copy(["nope"])
    assert sync.sync_status() == before


def test_sync_on_start_false_does_nothing(tmp_path, source):
    sync = make_sync(tmp_path, sync_on_start=False)
    assert sync.start_background_sync() is None
    assert not (tmp_path / "home").exists()
