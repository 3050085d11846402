"""Keep a local copy of one kind of Kubernetes object in sync: list once, then watch.

A compact cousin of kubespawner's `ResourceReflector`, which does not fit here: it keeps whole
objects (hundreds of MB at 50,000 pods), relists on every reconnect, and gives up (KubeSpawner
then calls `sys.exit`) when the API server stays away for about a minute. This one

- lists in pages (`limit`/`continue`) so parsing never blocks the event loop for long, and hands
  every object to a `compact` function so only the fields the caller needs are kept;
- watches from the listed resourceVersion, resumes from the last seen one when a watch ends or
  the connection drops, and relists only on `410 Gone` (or every `resync_seconds`);
- retries forever with capped, jittered exponential backoff, reporting "live" / "lost" to its
  owner; a `410 Gone` that comes back right after a fresh list is backed off the same way
  (relisting at once would list the whole cluster in a tight loop);
- logs one line when it runs into trouble and one when it works again, not one per retry.
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

# After 410s that relisting did not cure, a watch open this long without an ERROR works again.
_GONE_RECOVERY_SECONDS = 1.0


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
        #: Wall-clock time the API server last answered this loop (a list, a watch line).
        self.last_contact = time.time()
        #: Watch events received (bookmarks included); a relist that brings none did not help.
        self.event_count = 0
        #: Failed attempts since the loop last worked; `_trouble_state` names the failure.
        self.failures = 0
        self._trouble_state: str | None = None
        self._gone_in_a_row = 0

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
                just_listed = resource_version is None or resync_due
                if just_listed:
                    resource_version = await self._relist()
                    listed_at = time.monotonic()
                events_before = self.event_count
                watch_started = time.monotonic()
                resource_version = await self._watch(resource_version)
                self._recovered()
                self._gone_in_a_row = 0
                delay = self.timing.backoff_initial
                if time.monotonic() - watch_started < self.timing.backoff_initial:
                    # A server that ends watches at once must not be hammered in a tight loop.
                    await asyncio.sleep(self.timing.backoff_initial)
            except asyncio.CancelledError:
                raise
            except ResourceGone as gone:
                resource_version = None
                if just_listed and self.event_count == events_before:
                    self._gone_in_a_row += 1
                else:
                    self._gone_in_a_row = 1
                if self._gone_in_a_row > 1:
                    # Gone again right after a fresh list: relisting does not help (an API
                    # server whose watch cache is broken). Relisting at once would list the
                    # whole cluster in a tight loop, so wait, doubling the wait each time.
                    self._set_live(False, self.last_contact)
                    self._trouble(
                        "gone",
                        "%s watch: the API server answers 410 Gone even right after a fresh "
                        "list (%s); listing again with waits growing up to %gs",
                        self.kind,
                        gone,
                        self.timing.backoff_max,
                    )
                    await asyncio.sleep(_jittered(delay))
                    delay = min(delay * 2, self.timing.backoff_max)
                else:
                    # The usual case: the history moved on (compaction, a long outage).
                    self.log.info("%s watch: %s; listing again", self.kind, gone)
            except Exception as error:
                # Whatever the cluster does, the hub keeps running and keeps serving the cache.
                self._set_live(False, self.last_contact)
                self._trouble(
                    _describe(error),
                    "%s watch failed (%s); retrying with waits growing up to %gs",
                    self.kind,
                    _describe(error),
                    self.timing.backoff_max,
                )
                await asyncio.sleep(_jittered(delay))
                delay = min(delay * 2, self.timing.backoff_max)

    def _trouble(self, state: str, message: str, *args: Any) -> None:
        """Log `message` once when the loop enters a trouble `state`; repeats go to debug."""
        self.failures += 1
        level = logging.DEBUG if state == self._trouble_state else logging.WARNING
        self._trouble_state = state
        self.log.log(level, message, *args)

    def _recovered(self) -> None:
        """The watch works again (it delivered an event or ended cleanly): say so once."""
        if self._trouble_state is not None:
            self.log.info(
                "%s watch: working again after %d failed attempts", self.kind, self.failures
            )
            self._trouble_state = None
            self.failures = 0
        self._set_live(True, time.time())

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
        # While the loop is in trouble every relist would say the same: keep the log quiet.
        self.log.log(
            logging.INFO if self._trouble_state is None else logging.DEBUG,
            "Inventory listed %d %s in %.1fs",
            len(items),
            self.kind,
            time.monotonic() - started,
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
        recovery: asyncio.TimerHandle | None = None
        try:
            if response.status != 200:
                _raise_for_status(response.status, await response.read())
            self.last_contact = time.time()
            if self._trouble_state != "gone":
                self._recovered()  # connected and in sync
            else:
                # After 410s that relisting did not cure, the watch works again once it has
                # stayed open a moment without an ERROR (or delivered an event, or ended).
                recovery = asyncio.get_running_loop().call_later(
                    _GONE_RECOVERY_SECONDS, self._recovered
                )
            buffer = b""
            async for chunk in response.content.iter_any():
                # Anything the server sends (events, bookmarks) shows it is answering.
                self.last_contact = time.time()
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        event = json.loads(line)
                        resource_version = self._handle_event(event, resource_version)
            # The server ended the watch cleanly: it was answering until now. (A connection
            # that broke or timed out proves nothing after its last line.)
            self.last_contact = time.time()
            return resource_version
        finally:
            if recovery is not None:
                recovery.cancel()
            response.release()

    def _handle_event(self, event: dict, resource_version: str) -> str:
        event_type = event.get("type")
        obj = event.get("object") or {}
        if event_type == "ERROR":
            _raise_for_status(obj.get("code") or 500, json.dumps(obj).encode())
        self.event_count += 1
        if self._trouble_state == "gone":
            self._recovered()
        new_version = (obj.get("metadata") or {}).get("resourceVersion") or resource_version
        if event_type == "BOOKMARK":
            return new_version
        if event_type not in ("ADDED", "MODIFIED", "DELETED"):
            self.log.debug("%s watch: ignoring event type %r", self.kind, event_type)
            return resource_version
        key = _object_key(obj)
        self._apply(event_type, key, None if event_type == "DELETED" else self._compact(obj))
        return new_version


def _jittered(delay: float) -> float:
    # Many hubs (or both loops of one) failing together must not retry in lockstep.
    return delay * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security


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
