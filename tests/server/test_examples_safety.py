"""ExamplesSync safety: symlinks, traversal, odd names, read-only source, full disks, crashes,
concurrent syncs. Faults are injected only at the OS boundary (os/shutil calls, a real tmpfs,
a child process killed with SIGKILL)."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import threading
import time
import unicodedata
from pathlib import Path

import pytest

from jupyter_tk.server.examples.fs import (
    UnsafePathError,
    move_aside,
    open_regular,
    open_root,
    open_subdir,
)
from jupyter_tk.server.examples.sync import (
    ExamplesRequestError,
    ExamplesUnavailableError,
)

from .test_examples_engine import (
    IMAGE,
    V1,
    V2,
    copy_path,
    files_under,
    make_sync,
    results_by_id,
    statuses,
    temp_files_under,
    write_tree,
)

ID = "common/intro.ipynb"
SECRET = b"outside data that must never change"


@pytest.fixture
def source(tmp_path):
    folder = tmp_path / "source"
    write_tree(
        folder,
        {ID: V1, "common/data/notes.md": b"# notes\n", "ml-gpu/train.ipynb": b"gpu v1"},
    )
    return folder


@pytest.fixture
def outside(tmp_path):
    """A folder and a file no sync may ever write to."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_bytes(SECRET)
    return folder


def assert_outside_untouched(outside: Path):
    assert files_under(outside) == {"secret.txt"}
    assert (outside / "secret.txt").read_bytes() == SECRET


# ---- symlinks in the source are skipped, never followed ----------------------------------------


def test_symlinks_in_the_source_are_skipped_and_reported(tmp_path, source, outside):
    (source / "common" / "link-to-file.ipynb").symlink_to(outside / "secret.txt")
    (source / "common" / "link-to-folder").symlink_to(outside)
    (source / "common" / "dangling").symlink_to(tmp_path / "nowhere")
    sync = make_sync(tmp_path)
    document = sync.list_examples()
    skipped = {entry["id"]: entry["reason"] for entry in document["skipped"]}
    assert skipped == {
        "common/dangling": "it is a symbolic link (not followed)",
        "common/link-to-file.ipynb": "it is a symbolic link (not followed)",
        "common/link-to-folder": "it is a symbolic link (not followed)",
    }
    sync.copy_all()
    assert files_under(copy_path(tmp_path, "common")) == {"intro.ipynb", "data/notes.md"}
    with pytest.raises(ExamplesRequestError, match="unknown example id"):
        sync.copy(["common/link-to-file.ipynb"])


def test_a_symlinked_category_is_not_followed(tmp_path, source, outside):
    shutil.rmtree(source / "ml-gpu")
    (source / "ml-gpu").symlink_to(outside)
    sync = make_sync(tmp_path, categories={IMAGE: ["common", "ml-gpu"]})
    document = sync.list_examples()
    assert document["categories"] == ["common"]
    assert {"id": "ml-gpu", "reason": "it is a symbolic link (not followed)"} in document["skipped"]
    sync.copy_all()
    assert not copy_path(tmp_path, "ml-gpu").exists()


def test_special_files_and_unusable_names_are_skipped(tmp_path, source):
    os.mkfifo(source / "common" / "pipe")
    (source / "common" / ".jupyter-tk-tmp-0123456789abcdef").write_bytes(b"x")
    os.close(os.open(os.fsencode(source / "common") + b"/bad-\xff.ipynb", os.O_CREAT | os.O_WRONLY))
    (source / "common" / "new\nline.ipynb").write_bytes(b"x")
    sync = make_sync(tmp_path)
    reasons = sorted(entry["reason"] for entry in sync.list_examples()["skipped"])
    assert reasons == [
        "it is a special file (not followed)",
        "its name contains control characters",
        "its name is not valid UTF-8",
        "its name is reserved for jupyter-tk temporary files",
    ]
    sync.copy_all()  # does not hang on the FIFO
    expected = dict.fromkeys(["common/data/notes.md", ID, "ml-gpu/train.ipynb"], "unchanged")
    assert statuses(sync) == expected


# ---- ids are the only way in: traversal, absolute, NUL, unicode look-alikes -------------------


@pytest.mark.parametrize(
    "bad_id",
    [
        "common/../../outside/secret.txt",
        "../source/common/intro.ipynb",
        "/etc/passwd",
        "common/intro.ipynb\x00.txt",
        "common//intro.ipynb",
        "./common/intro.ipynb",
        "common\\intro.ipynb",
        "common/intro.ipynb/",
        "COMMON/intro.ipynb",
        "common\uff0fintro.ipynb",  # fullwidth solidus
        "",
    ],
)
@pytest.mark.parametrize("operation", ["copy", "reset"])
def test_anything_but_a_listed_id_is_refused_and_nothing_written(
    tmp_path, source, outside, bad_id, operation
):
    sync = make_sync(tmp_path)
    with pytest.raises(ExamplesRequestError):
        getattr(sync, operation)([ID, bad_id])
    assert not (tmp_path / "home").exists()
    assert_outside_untouched(outside)


def test_unicode_normalization_does_not_alias_ids(tmp_path, source):
    composed = unicodedata.normalize("NFC", "common/café.ipynb")
    decomposed = unicodedata.normalize("NFD", composed)
    write_tree(source, {composed: b"cafe"})
    sync = make_sync(tmp_path)
    with pytest.raises(ExamplesRequestError, match="unknown example id"):
        sync.copy([decomposed])
    assert not (tmp_path / "home").exists()
    assert results_by_id(sync.copy([composed]))[composed]["action"] == "copied"
    assert copy_path(tmp_path, composed).read_bytes() == b"cafe"


@pytest.mark.parametrize("name", ["..", ".", "", "a/b", "../outside", "a\x00b"])
def test_the_filesystem_layer_opens_single_names_only(tmp_path, name):
    fd = open_root(str(tmp_path))
    try:
        with pytest.raises(UnsafePathError, match="not a single file or folder name"):
            open_subdir(fd, name, create=True)
        with pytest.raises(UnsafePathError, match="not a single file or folder name"):
            open_regular(fd, name, name)
    finally:
        os.close(fd)
    assert list(tmp_path.iterdir()) == []


# ---- symlinks in the destination are refused ---------------------------------------------------


def test_symlinked_destination_subfolder_is_refused(tmp_path, source, outside):
    sync = make_sync(tmp_path)
    sync.copy_all()
    data = copy_path(tmp_path, "common/data")
    shutil.rmtree(data)
    data.symlink_to(outside)
    (source / "common" / "data" / "notes.md").write_bytes(b"# notes v2\n")
    item = next(i for i in sync.list_examples()["items"] if i["id"] == "common/data/notes.md")
    assert item["status"] == "conflict"
    assert "common/data is a symbolic link" in item["error"]
    for operation in (sync.copy, sync.reset):
        result = results_by_id(operation(["common/data/notes.md"]))["common/data/notes.md"]
        assert result["action"] == "error" and "symbolic link" in result["message"]
    assert results_by_id(sync.copy_all())["common/data/notes.md"]["action"] == "skipped"
    assert_outside_untouched(outside)
    assert data.is_symlink()


def test_symlinked_image_folder_is_refused(tmp_path, source, outside):
    image_folder = tmp_path / "home" / "examples" / IMAGE
    image_folder.parent.mkdir(parents=True)
    image_folder.symlink_to(outside)
    sync = make_sync(tmp_path)
    with pytest.raises(ExamplesUnavailableError, match="symbolic link"):
        sync.copy_all()
    items = sync.list_examples()["items"]
    assert {item["status"] for item in items} == {"conflict"}
    assert all("symbolic link" in item["error"] for item in items)
    assert_outside_untouched(outside)


def test_copy_replaced_by_a_symlink_is_moved_aside_by_reset_only(tmp_path, source, outside):
    sync = make_sync(tmp_path)
    sync.copy_all()
    path = copy_path(tmp_path, ID)
    path.unlink()
    path.symlink_to(outside / "secret.txt")
    assert statuses(sync)[ID] == "conflict"
    assert results_by_id(sync.copy([ID]))[ID]["action"] == "error"
    result = results_by_id(sync.reset([ID]))[ID]
    assert result["action"] == "updated"
    backup = tmp_path / "home" / result["backup"]
    assert backup.is_symlink() and os.readlink(backup) == str(outside / "secret.txt")
    assert not path.is_symlink() and path.read_bytes() == V1
    assert_outside_untouched(outside)


def test_a_folder_in_the_way_is_never_moved(tmp_path, source):
    sync = make_sync(tmp_path)
    sync.copy_all()
    path = copy_path(tmp_path, ID)
    path.unlink()
    path.mkdir()
    (path / "mine.txt").write_bytes(b"keep")
    result = results_by_id(sync.reset([ID]))[ID]
    assert result["action"] == "error" and "is a folder" in result["message"]
    assert (path / "mine.txt").read_bytes() == b"keep"


def test_symlinked_lock_and_manifest_are_not_followed(tmp_path, source, outside):
    sync = make_sync(tmp_path)
    sync.copy_all()
    image_folder = tmp_path / "home" / "examples" / IMAGE
    manifest = image_folder / ".jupyter-tk-manifest.json"
    manifest.unlink()
    manifest.symlink_to(outside / "secret.txt")
    # The planted manifest is ignored: files are compared by content, nothing is overwritten
    assert set(statuses(make_sync(tmp_path)).values()) == {"unchanged"}
    (source / "ml-gpu" / "train.ipynb").write_bytes(b"gpu v2")
    make_sync(tmp_path).copy_all()
    assert not manifest.is_symlink()  # the link itself was replaced, its target left alone
    lock = image_folder / ".jupyter-tk.lock"
    lock.unlink()
    lock.symlink_to(outside / "secret.txt")
    with pytest.raises(ExamplesUnavailableError, match="symbolic link"):
        make_sync(tmp_path).copy_all()
    assert_outside_untouched(outside)


def test_destination_inside_the_source_is_refused(tmp_path, source):
    sync = make_sync(tmp_path, destination_dir=str(source / "copies"))
    with pytest.raises(ExamplesUnavailableError, match="overlap"):
        sync.copy_all()
    assert not (source / "copies").exists()


# ---- ownership and permissions -----------------------------------------------------------------


def test_copies_of_a_read_only_source_are_the_users_and_writable(tmp_path, source):
    write_tree(source, {"common/run.sh": b"#!/bin/sh\necho hi\n"})
    for path in source.rglob("*"):
        if path.is_dir():
            path.chmod(0o555)
        else:
            path.chmod(0o555 if path.name == "run.sh" else 0o444)
    source.chmod(0o555)
    old_umask = os.umask(0o277)  # even a umask that would leave the copy read-only
    try:
        make_sync(tmp_path).copy_all()
    finally:
        os.umask(old_umask)
        for path in [source, *source.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
    for item_id in (ID, "common/data/notes.md", "common/run.sh"):
        st = copy_path(tmp_path, item_id).stat()
        assert st.st_uid == os.getuid()
        assert st.st_mode & 0o600 == 0o600, oct(st.st_mode)
    assert copy_path(tmp_path, "common/run.sh").stat().st_mode & stat.S_IXUSR
    assert not copy_path(tmp_path, ID).stat().st_mode & stat.S_IXUSR


# ---- full disks ----------------------------------------------------------------------------------


def test_low_free_space_copies_nothing_and_says_why(tmp_path, source, monkeypatch):
    real_usage = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=4096))
    sync = make_sync(tmp_path, min_free_bytes=1024)
    results = sync.copy_all()["results"]
    assert {r["action"] for r in results} == {"error"}
    assert all("not enough free space" in r["message"] for r in results)
    assert all("ExamplesSync.min_free_bytes" in r["message"] for r in results)
    assert files_under(tmp_path / "home" / "examples" / IMAGE) <= {".jupyter-tk.lock"}
    monkeypatch.setattr(shutil, "disk_usage", real_usage)
    assert {r["action"] for r in sync.copy_all()["results"]} == {"copied"}


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


def test_a_real_enospc_leaves_no_broken_file(tmp_path, source, tiny_filesystem, monkeypatch):
    write_tree(source, {"common/large.bin": os.urandom(200_000)})
    real_usage = shutil.disk_usage
    # The free-space probe is fooled so the kernel's own ENOSPC is what stops the copy
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real_usage(path)._replace(free=1 << 40))
    sync = make_sync(tmp_path, destination_dir=str(tiny_filesystem / "examples"))
    result = results_by_id(sync.copy_all())["common/large.bin"]
    assert result["action"] == "error"
    assert "No space left on device" in result["message"]
    copied = tiny_filesystem / "examples" / IMAGE / "common"
    assert not (copied / "large.bin").exists()
    assert temp_files_under(tiny_filesystem) == []
    assert (copied / "intro.ipynb").read_bytes() == V1


# ---- crashes between temp write and rename --------------------------------------------------

CRASHING_CHILD = textwrap.dedent(
    """
    import os, signal, sys
    from jupyter_tk.server.examples.sync import ExamplesSync

    call, wanted_name, source, destination, root, image = sys.argv[1:]
    real = getattr(os, call)

    def crash(*args, **kwargs):
        if wanted_name in ("*", args[1]):
            os.kill(os.getpid(), signal.SIGKILL)  # a crash: no cleanup, no finally
        return real(*args, **kwargs)

    setattr(os, call, crash)
    ExamplesSync(source_dir=source, destination_dir=destination, image_name=image,
                 root_dir=root).copy_all()
    """
)


def run_crashing_child(tmp_path, call, wanted_name):
    folders = [tmp_path / "source", tmp_path / "home" / "examples", tmp_path / "home"]
    command = [sys.executable, "-c", CRASHING_CHILD, call, wanted_name, *map(str, folders), IMAGE]
    child = subprocess.run(command, capture_output=True)
    assert child.returncode == -signal.SIGKILL, child.stderr.decode()


def test_crash_before_new_files_are_placed(tmp_path, source):
    # The child dies at its first no-clobber link, after writing and syncing all temp files
    run_crashing_child(tmp_path, "link", "*")
    image_folder = tmp_path / "home" / "examples" / IMAGE
    assert len(temp_files_under(image_folder)) == 3
    assert not any(copy_path(tmp_path, i).exists() for i in (ID, "ml-gpu/train.ipynb"))
    sync = make_sync(tmp_path)
    assert set(statuses(sync).values()) == {"new"}  # temp files are never listed
    assert {r["action"] for r in sync.copy_all()["results"]} == {"copied"}
    assert temp_files_under(image_folder) == []
    assert copy_path(tmp_path, ID).read_bytes() == V1


def test_crash_before_an_update_is_placed_keeps_the_old_copy(tmp_path, source):
    make_sync(tmp_path).copy_all()
    (source / ID).write_bytes(V2)
    run_crashing_child(tmp_path, "replace", "intro.ipynb")
    assert copy_path(tmp_path, ID).read_bytes() == V1
    sync = make_sync(tmp_path)
    assert statuses(sync)[ID] == "update-available"
    assert results_by_id(sync.copy_all())[ID]["action"] == "updated"
    assert copy_path(tmp_path, ID).read_bytes() == V2
    assert temp_files_under(tmp_path / "home") == []


def test_crash_before_the_manifest_is_written(tmp_path, source):
    run_crashing_child(tmp_path, "replace", ".jupyter-tk-manifest.json")
    sync = make_sync(tmp_path)
    assert set(statuses(sync).values()) == {"unchanged"}  # copies equal to the source
    sync.copy_all()
    assert temp_files_under(tmp_path / "home") == []
    assert (tmp_path / "home" / "examples" / IMAGE / ".jupyter-tk-manifest.json").exists()


def test_a_failed_rename_reports_an_error_and_keeps_the_copy(tmp_path, source, monkeypatch):
    sync = make_sync(tmp_path)
    sync.copy_all()
    (source / ID).write_bytes(V2)
    real_replace = os.replace

    def failing_replace(src, dst, **kwargs):
        if dst == "intro.ipynb":
            raise OSError(errno.EIO, "Input/output error")
        return real_replace(src, dst, **kwargs)

    monkeypatch.setattr(os, "replace", failing_replace)
    result = results_by_id(sync.copy_all())[ID]
    assert result["action"] == "error" and "Input/output error" in result["message"]
    assert copy_path(tmp_path, ID).read_bytes() == V1
    assert temp_files_under(tmp_path / "home") == []
    monkeypatch.setattr(os, "replace", real_replace)
    assert statuses(sync)[ID] == "update-available"


# ---- concurrent syncs -------------------------------------------------------------------------


@pytest.fixture
def many_files(tmp_path):
    folder = tmp_path / "source"
    files = {f"common/topic-{i % 10}/f{i:03d}.ipynb": os.urandom(20_000) for i in range(300)}
    write_tree(folder, files)
    return folder


def test_two_threads_sync_at_once_and_each_file_is_copied_once(tmp_path, many_files):
    barrier = threading.Barrier(2)
    responses = []

    def run():
        sync = make_sync(tmp_path)
        barrier.wait()
        responses.append(sync.copy_all())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    actions = [r["action"] for response in responses for r in response["results"]]
    assert actions.count("copied") == 300
    assert actions.count("error") == 0
    assert set(statuses(make_sync(tmp_path)).values()) == {"unchanged"}


CONCURRENT_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from jupyter_tk.server.examples.sync import ExamplesSync
    source, destination, root, image, ready, go = sys.argv[1:]
    sync = ExamplesSync(source_dir=source, destination_dir=destination, image_name=image,
                        root_dir=root)
    open(ready, "w").close()
    while not os.path.exists(go):  # both children start copying at the same moment
        time.sleep(0.001)
    print(json.dumps([r["action"] for r in sync.copy_all()["results"]]))
    """
)


def test_two_processes_sync_at_once_and_each_file_is_copied_once(tmp_path, many_files):
    args = [str(many_files), str(tmp_path / "home" / "examples"), str(tmp_path / "home"), IMAGE]
    go = tmp_path / "go"
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CONCURRENT_CHILD, *args, str(tmp_path / f"ready-{n}"), str(go)],
            stdout=subprocess.PIPE,
        )
        for n in range(2)
    ]
    for n in range(2):
        while not (tmp_path / f"ready-{n}").exists():
            assert children[n].poll() is None, "child failed to start"
            time.sleep(0.01)
    go.touch()
    actions = []
    for child in children:
        out, _ = child.communicate(timeout=120)
        assert child.returncode == 0
        actions += json.loads(out)
    assert actions.count("copied") == 300
    assert actions.count("error") == 0
    assert set(statuses(make_sync(tmp_path)).values()) == {"unchanged"}


def test_a_sync_waits_for_the_lock_then_gives_up_clearly(tmp_path, source):
    make_sync(tmp_path).copy_all()
    (source / ID).write_bytes(V2)
    lock = tmp_path / "home" / "examples" / IMAGE / ".jupyter-tk.lock"
    with open(lock, "rb+") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another process's sync, at the OS level
        with pytest.raises(ExamplesUnavailableError, match="held the lock"):
            make_sync(tmp_path, lock_timeout=0.3).copy_all()
    assert copy_path(tmp_path, ID).read_bytes() == V1


def test_backup_names_are_unique_within_one_second(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    fd = open_root(str(folder))
    try:
        names = []
        for content in (b"one", b"two", b"three"):
            (folder / "nb.ipynb").write_bytes(content)
            names.append(move_aside(fd, "nb.ipynb", 1_700_000_000.0))
    finally:
        os.close(fd)
    assert len(set(names)) == 3
    assert names[0].startswith("nb.mine-") and names[0].endswith(".ipynb")
    assert names[1].endswith("-2.ipynb") and names[2].endswith("-3.ipynb")
    assert [(folder / n).read_bytes() for n in names] == [b"one", b"two", b"three"]
