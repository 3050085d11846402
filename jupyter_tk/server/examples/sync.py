"""Examples copying that never loses an edit: ``ExamplesSync`` lists, copies and resets.

The examples repository is a read-only clone with one folder per category (``common/``,
``ml-gpu/``, ...). Each image gets the categories that fit it, copied to
``<destination>/<image>/<category>/...`` where the user may edit them. A manifest remembers
which source version every copy was made from (manifest.py), so each file gets one status
(scan.py) and only files the user did not edit are ever refreshed; opening or running a
notebook is not an edit (edits.py). The filesystem work is symlink-proof and atomic (fs.py,
writer.py).
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from traitlets import Bool, Dict, Enum, Float, Integer, List, Unicode, default
from traitlets.config import LoggingConfigurable

from jupyter_tk.server.examples.fs import (
    FolderLock,
    UnsafePathError,
    open_root,
    open_subdir,
    remove_stale_temps,
)
from jupyter_tk.server.examples.layout import (
    Layout,
    choose_categories,
    repository_name,
    resolve_layout,
)
from jupyter_tk.server.examples.manifest import ManifestStore
from jupyter_tk.server.examples.request import (
    ExamplesRequestError,
    ExamplesUnavailableError,
    check_ids,
    check_known,
    read_request,
)
from jupyter_tk.server.examples.scan import Classifier, HashCache, compile_excludes, scan
from jupyter_tk.server.examples.writer import BatchWriter, Limits, Outcome, plan

LOCK_NAME = ".jupyter-tk.lock"

__all__ = [
    "ExamplesRequestError",
    "ExamplesSync",
    "ExamplesUnavailableError",
    "read_request",
    "repository_name",
]


class ExamplesSync(LoggingConfigurable):
    """Per-image copies of the examples that are refreshed only where the user did not edit."""

    source_dir = Unicode(
        config=True,
        help="""Folder of the examples repository clone (read only), with one subfolder per
        category. Default: $JUPYTER_TK_EXAMPLES_SOURCE, else the examples shipped with
        jupyter-tk, <sys.prefix>/share/jupyter-tk/examples. Example: "/opt/examples".""",
    )
    destination_dir = Unicode(
        config=True,
        help="""Folder the user's copies go to, as <destination>/<image-name>/<category>/...
        Best inside the server's root folder. Default: $JUPYTER_TK_EXAMPLES_DEST, else
        ~/examples. Example: "~/work/examples".""",
    )
    image_name = Unicode(
        config=True,
        help="""Name of this notebook image, used as a folder name and to choose categories.
        Default: the repository name of $JUPYTER_IMAGE (or $JUPYTER_IMAGE_SPEC), e.g.
        "registry:5000/library/tk-jupyter-ml-gpu:latest" -> "tk-jupyter-ml-gpu"; "local"
        when neither is set. Example: "tk-jupyter-ml-gpu".""",
    )
    categories = Dict(
        key_trait=Unicode(),
        value_trait=List(Unicode()),
        config=True,
        help="""Category folders to copy per image name; the key "*" applies to images not
        listed. Images not covered get "common" plus the longest dash-suffix of the image
        name that is a folder of the source ("tk-jupyter-ml-gpu" -> "ml-gpu").
        Example: {"tk-jupyter-ml-gpu": ["common", "ml-gpu", "fine-tuning"]}.""",
    )
    sync_on_start = Bool(
        True,
        config=True,
        help="""Copy new examples and refresh unedited ones in the background when the server
        starts (never blocks or fails the start). Example: false.""",
    )
    exclude = List(
        Unicode(),
        [".git", ".ipynb_checkpoints", "__pycache__"],
        config=True,
        help="""Glob patterns of source files and folders never copied, matched against each
        name and against the whole id (category/path). Example: [".git", "*.ckpt", "data/*"].""",
    )
    max_file_bytes = Integer(
        100 << 20,
        min=0,
        config=True,
        help="""Largest single example file copied, in bytes; larger files are listed as
        skipped. Default 100 MiB. Example: 52428800 (50 MiB).""",
    )
    max_total_bytes = Integer(
        2 << 30,
        min=0,
        config=True,
        help="""Largest total size, in bytes, of this image's copies in the destination;
        files that would pass it are not copied and say why. Default 2 GiB.
        Example: 536870912 (512 MiB).""",
    )
    min_free_bytes = Integer(
        100 << 20,
        min=0,
        config=True,
        help="""Free space, in bytes, that must remain on the destination's filesystem after
        a copy; files that would eat into it are not copied. Default 100 MiB.
        Example: 1073741824 (1 GiB).""",
    )
    copy_threads = Integer(
        4,
        min=1,
        config=True,
        help="""Threads that copy and hash files in parallel during a sync. Example: 8.""",
    )
    flush = Enum(
        ["batch", "file"],
        "batch",
        config=True,
        help="""How copies are made durable before they get their names. "batch": one syncfs
        of the destination filesystem per batch of files (fastest when the volume is the
        user's own; falls back to "file" where syncfs does not exist). "file": an fsync per
        file (better when many users share one busy filesystem, since syncfs also waits for
        their writes). Example: "file".""",
    )
    lock_timeout = Float(
        120.0,
        min=0.0,
        config=True,
        help="""Seconds a copy waits for another sync of the same destination (in this or
        another process) to finish before it gives up. Example: 30.""",
    )
    root_dir = Unicode(
        config=True,
        help="""Folder that ITEM.path values are relative to. Default: the server's
        ServerApp.root_dir (the current folder when run outside a server). Example: "~".""",
    )

    @default("source_dir")
    def _default_source_dir(self):
        shipped = os.path.join(sys.prefix, "share", "jupyter-tk", "examples")
        return os.environ.get("JUPYTER_TK_EXAMPLES_SOURCE", shipped)

    @default("destination_dir")
    def _default_destination_dir(self):
        return os.environ.get("JUPYTER_TK_EXAMPLES_DEST", "~/examples")

    @default("image_name")
    def _default_image_name(self):
        image = os.environ.get("JUPYTER_IMAGE") or os.environ.get("JUPYTER_IMAGE_SPEC") or ""
        return repository_name(image) or "local"

    @default("root_dir")
    def _default_root_dir(self):
        serverapp = getattr(self.parent, "serverapp", None)
        return getattr(serverapp, "root_dir", None) or os.getcwd()

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._manifests = ManifestStore(self.log)
        self._hashes = HashCache()
        # One worker: copies of this process run one after another; the folder lock
        # serialises them with other processes.
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="jupyter-tk-examples")
        self._status_lock = threading.Lock()
        self._status = {"running": False, "error": None, "finished_at": None, "copied": 0}
        self._status_total = 0

    # ---- public API -------------------------------------------------------------------------

    def sync_status(self) -> dict:
        """The start-up / last sync: running, error, finished_at, copied (and total)."""
        with self._status_lock:
            return {**self._status, "total": self._status_total}

    def start_background_sync(self) -> Future | None:
        """Run the start-up sync on a worker thread; errors are logged and kept in the status."""
        if not self.sync_on_start:
            return None
        return self._executor.submit(self._background_sync)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def list_async(self) -> dict:
        return await asyncio.get_running_loop().run_in_executor(None, self.list_examples)

    async def copy_async(self, ids: list[str] | None) -> dict:
        loop = asyncio.get_running_loop()
        if ids is None:
            return await loop.run_in_executor(self._executor, self.copy_all)
        return await loop.run_in_executor(self._executor, self.copy, ids)

    async def reset_async(self, ids: list[str]) -> dict:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self.reset, ids)

    def list_examples(self) -> dict:
        """The GET jupyter-tk/api/examples document (reads only; never writes)."""
        document = {
            "image": self.image_name,
            "source": os.path.expanduser(self.source_dir),
            "destination": os.path.expanduser(self.destination_dir),
            "categories": [],
            "items": [],
            "source_exists": False,
            "skipped": [],
            "error": None,
            "sync": self.sync_status(),
        }
        try:
            layout = self._layout()
            document["source_exists"] = True
            with layout.open_source() as source_fd, layout.open_image() as image:
                image_fd, problem = image
                manifest = self._manifests.load(image_fd, layout.image_path).clone()
                result = self._scan(
                    layout, source_fd, image_fd, problem, Classifier(manifest, self._hashes)
                )
        except (ExamplesUnavailableError, OSError) as error:
            document["source_exists"] = os.path.isdir(os.path.expanduser(self.source_dir))
            document["error"] = str(error)
            return document
        document["categories"] = result.categories
        document["skipped"] = [{"id": i, "reason": r} for i, r in result.skipped]
        document["items"] = [
            {
                "id": entry.id,
                "category": entry.parts[0],
                "path": layout.item_path(entry.parts),
                "status": entry.status,
                "size": entry.source.st_size,
                "error": entry.error,
            }
            for entry in result.entries.values()
        ]
        return document

    def copy(self, ids: list[str]) -> dict:
        """Copy these examples: new and deleted ones are created, unedited ones refreshed."""
        return self._change(check_ids(ids), "copy")

    def copy_all(self) -> dict:
        """Create every new example and refresh every unedited one (deleted ones stay deleted)."""
        return self._change(None, "copy")

    def reset(self, ids: list[str]) -> dict:
        """Restore the originals, keeping each edited copy beside it as ``name.mine-…``.

        Copy and copy-all keep a copy the same way when they update one the user ran but did
        not edit (its outputs are the user's).
        """
        return self._change(check_ids(ids), "reset")

    # ---- internals --------------------------------------------------------------------------

    def _background_sync(self) -> None:
        try:
            self.copy_all()
        except (ExamplesUnavailableError, OSError, UnsafePathError) as error:
            self.log.warning("jupyter-tk: examples start-up sync did not run: %s", error)
        except Exception:  # a bug must show in the log and the panel, never kill the server
            self.log.exception("jupyter-tk: examples start-up sync failed")

    def _layout(self) -> Layout:
        return resolve_layout(
            image=self.image_name,
            source_dir=self.source_dir,
            destination_dir=self.destination_dir,
            root_dir=self.root_dir,
        )

    def _scan(self, layout, source_fd, image_fd, problem, classify, on_dest_folder=None):
        return scan(
            source_fd,
            image_fd,
            problem,
            choose_categories(layout.image, self.categories, source_fd),
            classify=classify,
            exclude=compile_excludes(self.exclude),
            max_file_bytes=self.max_file_bytes,
            on_dest_folder=on_dest_folder,
        )

    def _change(self, ids: list[str] | None, mode: str) -> dict:
        before = self.sync_status()
        started = self._begin()
        outcomes: list[Outcome] = []
        moved_aside: list[tuple[str, str]] = []  # (id, path of the user's version)
        try:
            layout = self._layout()
            with layout.open_source() as source_fd:
                # Everything that can refuse the request is checked before anything is created.
                choose_categories(layout.image, self.categories, source_fd)
                if ids is not None:
                    known = self._scan(layout, source_fd, None, None, _no_status).entries
                    check_known(ids, known)
                results = self._change_locked(
                    layout,
                    source_fd,
                    ids,
                    mode,
                    outcomes,
                    lambda item_id, parts: moved_aside.append((item_id, layout.item_path(parts))),
                )
        except ExamplesRequestError:
            with self._status_lock:  # a bad request says nothing about the last sync
                self._status.update({k: before[k] for k in self._status})
                self._status_total = before["total"]
            raise
        except (OSError, UnsafePathError) as error:
            message = f"examples could not be copied: {error}{_where_kept(moved_aside)}"
            self._end(started, outcomes, message)
            raise ExamplesUnavailableError(message) from None
        except BaseException as error:
            self._end(started, outcomes, str(error))
            raise
        self._end(started, outcomes, None)
        return {"results": results}

    def _change_locked(self, layout, source_fd, ids, mode, outcomes, on_moved_aside) -> list[dict]:
        os.makedirs(layout.destination, exist_ok=True)
        root_fd = open_root(layout.destination)
        try:
            image_fd = open_subdir(root_fd, layout.image, create=True, shown_as=layout.image)
        finally:
            os.close(root_fd)
        try:
            with FolderLock(image_fd, LOCK_NAME, timeout=self.lock_timeout):
                remove_stale_temps(image_fd)
                manifest = self._manifests.load(image_fd, layout.image_path).clone()
                classifier = Classifier(manifest, self._hashes)
                result = self._scan(
                    layout, source_fd, image_fd, None, classifier, remove_stale_temps
                )
                if ids is not None:
                    check_known(ids, result.entries)
                if manifest.sources.keys() - result.entries.keys():  # a cache: drop the gone
                    manifest.sources = {
                        i: r for i, r in manifest.sources.items() if i in result.entries
                    }
                    classifier.changed = True
                if ids is None:
                    selected = list(result.entries.values())
                else:
                    selected = [result.entries[item_id] for item_id in ids]
                jobs, skipped = plan(selected, mode, explicit=ids is not None)
                with self._status_lock:
                    self._status_total = len(jobs)
                writer = BatchWriter(
                    source_fd,
                    image_fd,
                    layout.image_path,
                    limits=Limits(self.max_file_bytes, self.max_total_bytes, self.min_free_bytes),
                    threads=self.copy_threads,
                    used_bytes=sum(
                        e.dest.stat.st_size for e in result.entries.values() if e.dest.stat
                    ),
                    on_placed=self._count_copied,
                    on_moved_aside=on_moved_aside,
                    batch_flush=self.flush == "batch",
                )
                outcomes.extend(writer.run(jobs))
                for outcome in outcomes:
                    if outcome.record:
                        manifest.copies[outcome.id] = outcome.record
                    if outcome.source_record:
                        manifest.sources[outcome.id] = outcome.source_record
                if classifier.changed or any(outcome.record for outcome in outcomes):
                    self._manifests.save(image_fd, layout.image_path, manifest)
        except TimeoutError as error:  # the lock: nothing was written
            raise ExamplesUnavailableError(str(error)) from None
        finally:
            os.close(image_fd)
        done = {outcome.id: outcome for outcome in [*outcomes, *skipped]}
        return [self._result(layout, done[entry.id]) for entry in selected]

    def _result(self, layout: Layout, outcome: Outcome) -> dict:
        return {
            "id": outcome.id,
            "status": outcome.status,
            "action": outcome.action,
            "message": outcome.message,
            "backup": layout.item_path(outcome.backup) if outcome.backup else None,
        }

    def _begin(self) -> float:
        with self._status_lock:
            self._status.update(running=True, error=None, copied=0)
            self._status_total = 0
        return time.time()

    def _count_copied(self) -> None:
        with self._status_lock:
            self._status["copied"] += 1

    def _end(self, started: float, outcomes: list[Outcome], error: str | None) -> None:
        failures = [outcome for outcome in outcomes if outcome.action == "error"]
        if error is None and failures:
            error = f"{len(failures)} file(s) not copied; {failures[0].id}: {failures[0].message}"
        if error:
            self.log.warning("jupyter-tk examples: %s", error)
        with self._status_lock:
            self._status.update(running=False, error=error, finished_at=time.time())
        self.log.debug("jupyter-tk examples: sync took %.3f s", time.time() - started)


def _where_kept(moved_aside: list[tuple[str, str]]) -> str:
    """What an error must add when it came after users' files were moved aside."""
    if not moved_aside:
        return ""
    shown = "; ".join(f"{item_id} is now {path}" for item_id, path in moved_aside[:5])
    more = f" (and {len(moved_aside) - 5} more .mine- files)" if len(moved_aside) > 5 else ""
    return f". Your versions were kept: {shown}{more}"


def _no_status(entry, source_fd, dest_fd) -> None:
    """Classifier for scans that only need to know which ids exist."""
