"""Keep a local copy of one kind of Kubernetes object in sync: list once, then watch.

A compact cousin of kubespawner's `ResourceReflector`, which does not fit here: it keeps whole
objects (hundreds of MB at 50,000 pods), relists on every reconnect, and gives up (KubeSpawner
then calls `sys.exit`) when the API server stays away for about a minute. This one

- lists in pages (`limit`/`continue`) so parsing never blocks the event loop for long, and hands
  every object to a `compact` function so only the fields the caller needs are kept;
- watches from the listed resourceVersion, resumes from the last seen one when a watch ends or
  the connection drops, and relists only on `410 Gone` (or every `resync_seconds`);
- retries forever with capped exponential backoff, reporting "live" / "lost" to its owner.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["ListWatch", "ListWatchTiming", "ResourceGone"]


class ResourceGone(Exception):
    """The API server no longer has the history asked for (HTTP 410): relist."""


@dataclass(frozen=True)
class ListWatchTiming:
    """Timeouts and backoff of one list+watch loop, all in seconds (page size in objects)."""

    request_timeout: float = 30.0
    watch_timeout: int = 60
    resync: float = 0.0
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    page_size: int = 500


class ListWatch:
    """One list+watch loop; run it with `await run()` inside a task and cancel it to stop.

    `list_func` is a kubernetes_asyncio list method (e.g. `CoreV1Api.list_node`).
    `compact(obj)` turns an API object into what the caller stores (or None to skip it);
    `replace(dict key -> compact)` swaps in a full relist; `apply(event_type, key, compact|None)`
    applies one watch event (`compact` is None for DELETED); `set_live(live, since)` reports
    whether the watch is connected and in sync (when it is not: `since` is the wall-clock time
    the data was last known current).
    """

    def __init__(
        self,
        *,
        kind: str,
        list_func: Callable[..., Awaitable[Any]],
        compact: Callable[[dict], Any],
        replace: Callable[[dict[str, Any]], None],
        apply: Callable[[str, str, Any], None],
        set_live: Callable[[bool, float], None],
        log: logging.Logger | logging.LoggerAdapter,
        timing: ListWatchTiming,
        field_selector: str = "",
        label_selector: str = "",
    ) -> None:
        self.kind = kind
        self._list_func = list_func
        self._compact = compact
        self._replace = replace
        self._apply = apply
        self._set_live = set_live
        self.log = log
        self.timing = timing
        self._selectors = {}
        if field_selector:
            self._selectors["field_selector"] = field_selector
        if label_selector:
            self._selectors["label_selector"] = label_selector
        #: How many full lists this loop made (a relist after 410 counts); for tests and stats.
        self.list_count = 0
        #: Wall-clock time this loop was last known in sync with the API server.
        self.last_contact = time.time()

    async def run(self) -> None:
        """List and watch until cancelled; never raises anything but CancelledError."""
        resource_version: str | None = None
        listed_at = 0.0
        delay = self.timing.backoff_initial
        while True:
            try:
                resync_due = (
                    self.timing.resync and time.monotonic() - listed_at > self.timing.resync
                )
                if resource_version is None or resync_due:
                    resource_version = await self._relist()
                    listed_at = time.monotonic()
                watch_started = time.monotonic()
                resource_version = await self._watch(resource_version)
                delay = self.timing.backoff_initial
                if time.monotonic() - watch_started < self.timing.backoff_initial:
                    # A server that ends watches at once must not be hammered in a tight loop.
                    await asyncio.sleep(self.timing.backoff_initial)
            except asyncio.CancelledError:
                raise
            except ResourceGone as gone:
                self.log.info("%s watch: %s; listing again", self.kind, gone)
                resource_version = None
            except Exception as error:
                # Whatever the cluster does, the hub keeps running and keeps serving the cache.
                self._set_live(False, self.last_contact)
                self.log.warning(
                    "%s watch failed (%s); retrying in %.1fs", self.kind, _describe(error), delay
                )
                await asyncio.sleep(delay * random.uniform(0.8, 1.2))  # noqa: S311 - jitter only
                delay = min(delay * 2, self.timing.backoff_max)

    async def _relist(self) -> str:
        started = time.monotonic()
        items: dict[str, Any] = {}
        continue_token = ""
        while True:
            page = await self._request_json(
                limit=self.timing.page_size,
                _continue=continue_token or None,
                _request_timeout=self.timing.request_timeout,
            )
            for obj in page.get("items") or ():
                value = self._compact(obj)
                if value is not None:
                    items[_object_key(obj)] = value
            metadata = page.get("metadata") or {}
            continue_token = metadata.get("continue") or ""
            if not continue_token:
                break
        self._replace(items)
        self.list_count += 1
        self.last_contact = time.time()
        self.log.info(
            "Inventory listed %d %s in %.1fs", len(items), self.kind, time.monotonic() - started
        )
        return metadata.get("resourceVersion") or "0"

    async def _request_json(self, **params: Any) -> dict:
        params = {k: v for k, v in params.items() if v is not None}
        response = await self._list_func(**self._selectors, **params, _preload_content=False)
        try:
            body = await response.read()
        finally:
            response.release()
        _raise_for_status(response.status, body)
        return json.loads(body)

    async def _watch(self, resource_version: str) -> str:
        # The server ends the watch after `watch_timeout`; a silent connection is given up a
        # little later than that, so a dead network is noticed without waiting forever.
        read_timeout = self.timing.watch_timeout + max(10.0, self.timing.request_timeout)
        response = await self._list_func(
            **self._selectors,
            watch=True,
            resource_version=resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.timing.watch_timeout,
            _request_timeout=(self.timing.request_timeout, read_timeout),
            _preload_content=False,
        )
        try:
            if response.status != 200:
                _raise_for_status(response.status, await response.read())
            self._set_live(True, time.time())
            buffer = b""
            try:
                async for chunk in response.content.iter_any():
                    buffer += chunk
                    *lines, buffer = buffer.split(b"\n")
                    for line in lines:
                        if line.strip():
                            event = json.loads(line)
                            resource_version = self._handle_event(event, resource_version)
            finally:
                # Connected until now (a clean end or a broken connection alike).
                self.last_contact = time.time()
            return resource_version
        finally:
            response.release()

    def _handle_event(self, event: dict, resource_version: str) -> str:
        event_type = event.get("type")
        obj = event.get("object") or {}
        if event_type == "ERROR":
            _raise_for_status(obj.get("code") or 500, json.dumps(obj).encode())
        new_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
        if event_type == "BOOKMARK":
            return new_version
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            self.log.debug("%s watch: ignoring event type %r", self.kind, event_type)
            return resource_version
        key = _object_key(obj)
        self._apply(event_type, key, None if event_type == "DELETED" else self._compact(obj))
        return new_version


def _object_key(obj: dict) -> str:
    metadata = obj.get("metadata") or {}
    namespace = metadata.get("namespace")
    name = metadata.get("name") or ""
    return f"{namespace}/{name}" if namespace else name


def _raise_for_status(status: int, body: bytes) -> None:
    if 200 <= status < 300:
        return
    try:
        message = json.loads(body).get("message") or ""
    except (ValueError, AttributeError):
        message = body[:200].decode("utf-8", "replace")
    if status == 410:
        raise ResourceGone(message or "410 Gone")
    raise ApiException(status=status, reason=message or "HTTP error")


def _describe(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"HTTP {error.status}: {error.reason}"
    if isinstance(error, aiohttp.ClientConnectorError):
        return f"cannot connect: {error.os_error}"
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
