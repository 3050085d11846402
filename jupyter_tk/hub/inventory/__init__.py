"""What the cluster (or this machine) can run right now, as one cache per hub process.

Every page view reads the cache; nothing here calls the cluster per request. Subclasses
(`KubernetesInventory`, `LocalInventory`) keep their own state up to date and tell the base class
when it changed (`_data_changed`) and whether their source is reachable (`_source_live` /
`_source_lost`); the base class turns that into the `/hub/api/tk/resources` JSON, memoized per
version.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any, TypeVar

from traitlets import Float
from traitlets.config import LoggingConfigurable

from jupyter_tk.background import cancel_and_wait
from jupyter_tk.hub.registry import shared_instance

__all__ = ["Inventory", "get_inventory"]


class Inventory(LoggingConfigurable):
    """Base class: the snapshot contract, freshness and memoization shared by every source."""

    #: ``"kubernetes"`` or ``"local"``; set by each subclass.
    source: str = ""

    stale_after_seconds = Float(
        10.0,
        config=True,
        help="""Seconds the source may stay unreachable before the snapshot is marked stale.

        While the source is down the last snapshot is still served, with `age_seconds` counting
        from the moment it was lost; once that age reaches this many seconds `stale` turns true.
        Short reconnects (a watch timing out and reconnecting) stay below it. Example: 10.
        """,
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._data_version = 0
        self._live = False
        self._synced_once = False
        self._lost_since = time.time()
        self._synced_event = asyncio.Event()
        self._memo_version = -1
        self._memo_nodes: list[dict] = []
        self._memo_nodes_json = b"[]"
        self._memo_holders: frozenset[str] = frozenset()
        # id(row) -> (row, its JSON): rows a subclass hands back unchanged are not re-encoded.
        self._row_json: dict[int, tuple[dict, bytes]] = {}
        # What a subclass runs to keep its cache up to date; `_stop_task` ends it.
        self._task: asyncio.Task | None = None
        #: Live per-GPU figures (`GpuMetrics`), where a backend offers them; None elsewhere.
        self.gpu_metrics: Any = None

    # -- implemented by subclasses -------------------------------------------------------------

    async def start(self) -> None:
        """Start keeping the cache up to date (returns once started, not once synced)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Stop every background task; the last snapshot stays readable."""
        raise NotImplementedError

    def _collect_nodes(self) -> list[dict]:
        """Return the NODE list of the contract from the current cache (called once per version)."""
        raise NotImplementedError

    # -- called by subclasses ------------------------------------------------------------------

    def _data_changed(self) -> None:
        """Record that the cached data changed, so the next snapshot is rebuilt."""
        self._data_version += 1

    def _source_live(self) -> None:
        """Record that the cache is in sync with its source right now."""
        if not self._live:
            self._live = True
            self._synced_once = True
            self._synced_event.set()
            self._data_changed()

    def _source_lost(self, since: float | None = None) -> None:
        """Record that the source became unreachable; the cache ages from `since` (wall-clock
        time it last answered; default now)."""
        if self._live:
            self._live = False
            self._lost_since = time.time() if since is None else since

    async def _stop_task(self) -> None:
        """Cancel the background task (if any) and wait until it has ended."""
        await cancel_and_wait(self._task)
        self._task = None

    # -- read side -----------------------------------------------------------------------------

    @property
    def stale(self) -> bool:
        """True before the first sync, and once the source has been lost for too long."""
        if self._live:
            return False
        if not self._synced_once:
            return True
        return time.time() - self._lost_since >= self.stale_after_seconds

    @property
    def version(self) -> int:
        """A number that changes whenever the snapshot (other than its timestamps) changes."""
        # `stale` flips with the passage of time, not with an event, so it is folded in here;
        # so do the live GPU figures' (reading their block tells the inventory of a flip).
        if self.gpu_metrics is not None:
            self.gpu_metrics.block()
        return self._data_version * 2 + int(self.stale)

    async def wait_synced(self, timeout: float | None = None) -> bool:
        """Wait until the first sync with the source; False if `timeout` seconds pass first."""
        try:
            await asyncio.wait_for(self._synced_event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        return True

    def _nodes(self) -> list[dict]:
        if self._memo_version != self._data_version:
            self._memo_nodes = self._collect_nodes()
            self._memo_nodes_json = self._encode_rows(self._memo_nodes)
            self._memo_holders = frozenset(_holders(self._memo_nodes))
            self._memo_version = self._data_version
        return self._memo_nodes

    def holder_names(self) -> frozenset[str]:
        """The user names in the snapshot's `taken_by` lists (who holds which device)."""
        self._nodes()
        return self._memo_holders

    def _encode_rows(self, rows: list[dict]) -> bytes:
        cache: dict[int, tuple[dict, bytes]] = {}
        parts = []
        for row in rows:
            hit = self._row_json.get(id(row))
            # The cache holds the row itself, so its id cannot be reused by another object.
            encoded = hit[1] if hit is not None and hit[0] is row else _dumps(row)
            cache[id(row)] = (row, encoded)
            parts.append(encoded)
        self._row_json = cache
        return b"[" + b",".join(parts) + b"]"

    def _header(self) -> dict:
        now = time.time()
        age = 0.0 if self._live else max(0.0, now - self._lost_since)
        return {
            "source": self.source,
            "generated_at": now,
            "age_seconds": round(age, 3),
            "stale": self.stale,
            # When the data was last known current, so a client can age a cached copy itself.
            "as_of": now - age,
        }

    def snapshot(self) -> dict:
        """The `/hub/api/tk/resources` JSON as a dict. The `nodes` list is shared: do not mutate."""
        nodes = self._nodes()
        live = {} if self.gpu_metrics is None else {"gpu_metrics": self.gpu_metrics.block()}
        return {**self._header(), **live, "nodes": nodes}

    def snapshot_json(self) -> bytes:
        """`snapshot()` encoded as JSON; each node row is encoded once while it is unchanged."""
        self._nodes()
        live = b""
        if self.gpu_metrics is not None:
            live = b',"gpu_metrics":' + self.gpu_metrics.block_json()
        return _dumps(self._header())[:-1] + live + b',"nodes":' + self._memo_nodes_json + b"}"


def _holders(nodes: list[dict]) -> Iterator[str]:
    for node in nodes:
        for kind in node.get("gpus") or ():
            for device in kind.get("devices") or ():
                yield from device.get("taken_by") or ()


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


InventoryT = TypeVar("InventoryT", bound=Inventory)

# The task that started each shared inventory: an inventory is started once per process.
_start_tasks: dict[type, asyncio.Task] = {}


def get_inventory(cls: type[InventoryT], *, config: Any = None, log: Any = None) -> InventoryT:
    """Return the hub's shared instance of `cls` (see `jupyter_tk.hub.registry`), creating it
    with `config` on first call; the spawner form and the REST endpoint share this one cache.

    The instance is started as a task on the running event loop as soon as one is running (the
    first call from outside a loop creates it; a later call from inside a loop starts it).
    """
    inventory = shared_instance(cls, config=config, log=log)
    if cls not in _start_tasks:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        if loop is not None:
            _start_tasks[cls] = loop.create_task(_start_logged(inventory))
    return inventory


async def _start_logged(inventory: Inventory) -> None:
    # A failing start must never take the hub down: log it; requests see a stale, empty snapshot.
    try:
        await inventory.start()
    except Exception:
        inventory.log.exception("Could not start %s", type(inventory).__name__)
