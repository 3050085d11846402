"""The object store behind the simulated Kubernetes API: resource versions, history, watchers.

Objects are plain dicts that are never mutated once stored (an update stores a new dict), so a
list snapshot can hold references safely. Every change gets the next global resourceVersion and
is kept in a bounded history that watches resume from; a watch asking for a version older than
the history gets `410 Gone`.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal

from jupyter_tk.hub.inventory.model import TERMINAL_PHASES, pod_requests

from .kube_scheduler import FieldSelector, LabelSelector, find_node

#: Kinds the simulated API serves: plural -> (namespaced, Kind).
KINDS = {
    "nodes": (False, "Node"),
    "namespaces": (False, "Namespace"),
    "pods": (True, "Pod"),
    "events": (True, "Event"),
    "secrets": (True, "Secret"),
    "services": (True, "Service"),
    "persistentvolumeclaims": (True, "PersistentVolumeClaim"),
    "configmaps": (True, "ConfigMap"),
    "serviceaccounts": (True, "ServiceAccount"),
    "endpoints": (True, "Endpoints"),
}

CLOSE = object()  # queued to a watcher to end its stream


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def object_key(obj: dict) -> str:
    metadata = obj["metadata"]
    namespace = metadata.get("namespace")
    return f"{namespace}/{metadata['name']}" if namespace else metadata["name"]


class ApiError(Exception):
    """An API error answered as a Kubernetes `Status` object."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message

    def status(self) -> dict:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }


@dataclass(eq=False)
class Watcher:
    """One open watch connection: what it selects and the queue of lines to send."""

    plural: str
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def selects(self, obj: dict | None) -> bool:
        if obj is None:
            return False
        metadata = obj.get("metadata") or {}
        if self.namespace is not None and metadata.get("namespace") != self.namespace:
            return False
        return self.labels.matches(metadata.get("labels")) and self.fields.matches(obj)

    def event_for(self, event_type: str, old: dict | None, new: dict | None) -> tuple | None:
        """The event this watcher sees; objects leaving or entering its selection become
        DELETED / ADDED, like the API server's watch cache does."""
        was, now = self.selects(old), self.selects(new)
        if event_type == "DELETED":
            return ("DELETED", old) if was else None
        if was and now:
            return (event_type, new)
        if now:
            return ("ADDED", new)
        if was:
            return ("DELETED", new)
        return None


class Store:
    """All objects of the simulated cluster, with history, watchers and the scheduler."""

    def __init__(self, history_window: int = 10_000) -> None:
        self.resource_version = 1
        self.objects: dict[str, dict[str, dict]] = {plural: {} for plural in KINDS}
        self.history: deque[tuple[int, str, str, dict | None, dict | None]] = deque(
            maxlen=history_window
        )
        #: Watches may resume from any version >= this; older ones get 410 Gone.
        self.oldest_resumable = 1
        self.watchers: set[Watcher] = set()
        self.pods_by_node: dict[str, set[str]] = {}
        self.requested: dict[str, dict[str, Decimal]] = {}
        self.created_pods: list[dict] = []
        self.calls: dict[str, int] = {}

    # -- reading -----------------------------------------------------------------------------

    def get(self, plural: str, key: str) -> dict:
        obj = self.objects[plural].get(key)
        if obj is None:
            name = key.rsplit("/", 1)[-1]
            raise ApiError(404, "NotFound", f'{plural} "{name}" not found')
        return obj

    def select(
        self, plural: str, namespace: str | None, labels: LabelSelector, fields: FieldSelector
    ) -> list[dict]:
        """Objects matching, sorted by key (uses the node index for spec.nodeName=...)."""
        objects = self.objects[plural]
        node = fields.equality("spec.nodeName") if plural == "pods" else None
        keys = sorted(objects if node is None else self.pods_by_node.get(node, ()))
        probe = Watcher(plural, namespace, labels, fields)
        return [objects[k] for k in keys if probe.selects(objects[k])]

    # -- writing -----------------------------------------------------------------------------

    def _next_version(self) -> str:
        self.resource_version += 1
        return str(self.resource_version)

    def _record(self, plural: str, event_type: str, old: dict | None, new: dict | None) -> None:
        if len(self.history) == self.history.maxlen:
            self.oldest_resumable = self.history[0][0]
        self.history.append((self.resource_version, plural, event_type, old, new))
        encoded: dict[tuple, bytes] = {}
        for watcher in self.watchers:
            if watcher.plural != plural:
                continue
            event = watcher.event_for(event_type, old, new)
            if event is not None:
                cache_key = (event[0], id(event[1]))
                line = encoded.get(cache_key)
                if line is None:
                    line = encoded[cache_key] = encode_event(*event)
                watcher.queue.put_nowait(line)
        if plural == "pods":
            self._index_pod(old, remove=True)
            self._index_pod(new if event_type != "DELETED" else None)

    def _index_pod(self, pod: dict | None, remove: bool = False) -> None:
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        if not node:
            return
        key = object_key(pod)
        if remove:
            self.pods_by_node.get(node, set()).discard(key)
        else:
            self.pods_by_node.setdefault(node, set()).add(key)
        if pod.get("status", {}).get("phase") in TERMINAL_PHASES:
            return
        try:
            requests = pod_requests(pod)
        except ValueError:
            requests = {}  # a real API server refuses such a pod; tests store it on purpose
        totals = self.requested.setdefault(node, {})
        sign = -1 if remove else 1
        for resource, amount in {**requests, "pods": Decimal(1)}.items():
            totals[resource] = totals.get(resource, Decimal(0)) + sign * amount

    def put(self, plural: str, obj: dict, *, create: bool = False, take: bool = False) -> dict:
        """Store a copy of `obj` (or `obj` itself with `take=True`: the caller must never
        mutate it afterwards); returns the stored object."""
        if not take:
            obj = copy.deepcopy(obj)
        metadata = obj.setdefault("metadata", {})
        namespaced, kind = KINDS[plural]
        if namespaced:
            metadata.setdefault("namespace", "default")
        else:
            metadata.pop("namespace", None)
        if not metadata.get("name"):
            if metadata.get("generateName"):
                metadata["name"] = metadata["generateName"] + uuid.uuid4().hex[:5]
            else:
                raise ApiError(422, "Invalid", f"{kind} metadata.name: Required value")
        key = object_key(obj)
        old = self.objects[plural].get(key)
        if create and old is not None:
            raise ApiError(409, "AlreadyExists", f'{plural} "{metadata["name"]}" already exists')
        obj.setdefault("kind", kind)
        obj.setdefault("apiVersion", "v1")
        if old is None:
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault("creationTimestamp", now_iso())
        else:
            metadata["uid"] = old["metadata"]["uid"]
            metadata["creationTimestamp"] = old["metadata"]["creationTimestamp"]
        metadata["resourceVersion"] = self._next_version()
        self.objects[plural][key] = obj
        self._record(plural, "ADDED" if old is None else "MODIFIED", old, obj)
        return obj

    def delete(self, plural: str, key: str) -> dict:
        old = self.get(plural, key)
        del self.objects[plural][key]
        gone = copy.deepcopy(old)
        gone["metadata"]["resourceVersion"] = self._next_version()
        self._record(plural, "DELETED", old, gone)
        if plural == "pods" and (old.get("spec") or {}).get("nodeName"):
            self.schedule_pending()
        return gone

    def force_gone(self) -> None:
        """Forget all history and end every open watch with a 410 ERROR event."""
        self.history.clear()
        self.resource_version += 1
        self.oldest_resumable = self.resource_version
        line = encode_event("ERROR", gone_status(self.resource_version).status())
        for watcher in self.watchers:
            watcher.queue.put_nowait(line)
            watcher.queue.put_nowait(CLOSE)

    def close_watchers(self) -> None:
        for watcher in self.watchers:
            watcher.queue.put_nowait(CLOSE)

    # -- pods and the scheduler ----------------------------------------------------------------

    def create_pod(self, pod: dict) -> dict:
        """What POST .../pods does: store it Pending, then bind it (or say why not)."""
        try:
            pod_requests(pod)
        except ValueError as error:
            raise ApiError(422, "Invalid", f"Pod is invalid: {error}") from error
        pod = copy.deepcopy(pod)
        pod.setdefault("status", {})
        pod["status"].setdefault("phase", "Pending")
        created = self.put("pods", pod, create=True)
        self.created_pods.append(created)
        if (created.get("spec") or {}).get("nodeName"):
            return self._start_pod(created, created["spec"]["nodeName"])
        return self._try_schedule(created)

    def _try_schedule(self, pod: dict) -> dict:
        nodes = list(self.objects["nodes"].values())
        node, message = find_node(pod, nodes, self.requested)
        if node is not None:
            return self._start_pod(pod, node)
        pending = copy.deepcopy(pod)
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": message,
            "lastTransitionTime": now_iso(),
        }
        for known in pending["status"].get("conditions") or ():
            if known.get("type") == "PodScheduled" and known.get("message") == message:
                return pod  # nothing new to say; avoid an event storm on every retry
        pending["status"]["conditions"] = [condition]
        stored = self.put("pods", pending)
        self.add_event(pod, "Warning", "FailedScheduling", message, source="default-scheduler")
        return stored

    def _start_pod(self, pod: dict, node: str) -> dict:
        running = copy.deepcopy(pod)
        running["spec"]["nodeName"] = node
        now = now_iso()
        running["status"] = {
            "phase": "Running",
            "podIP": "127.0.0.1",
            "hostIP": "127.0.0.1",
            "startTime": now,
            "conditions": [
                {"type": t, "status": "True", "lastTransitionTime": now}
                for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
            ],
            "containerStatuses": [
                {
                    "name": c.get("name"),
                    "image": c.get("image"),
                    "imageID": f"{c.get('image')}@sha256:{'0' * 64}",
                    "containerID": f"containerd://{uuid.uuid4().hex}",
                    "ready": True,
                    "restartCount": 0,
                    "started": True,
                    "state": {"running": {"startedAt": now}},
                }
                for c in running["spec"].get("containers") or ()
            ],
        }
        stored = self.put("pods", running)
        self.add_event(pod, "Normal", "Scheduled", f"Successfully assigned to {node}")
        return stored

    def schedule_pending(self) -> None:
        for pod in list(self.objects["pods"].values()):
            spec, status = pod.get("spec") or {}, pod.get("status") or {}
            if not spec.get("nodeName") and status.get("phase") == "Pending":
                self._try_schedule(pod)

    def add_event(
        self, pod: dict, event_type: str, reason: str, message: str, source: str = "kubelet"
    ) -> dict:
        metadata = pod["metadata"]
        now = now_iso()
        return self.put(
            "events",
            {
                "metadata": {
                    "name": f"{metadata['name']}.{uuid.uuid4().hex[:12]}",
                    "namespace": metadata.get("namespace", "default"),
                },
                "involvedObject": {
                    "kind": "Pod",
                    "namespace": metadata.get("namespace", "default"),
                    "name": metadata["name"],
                    "uid": metadata.get("uid"),
                    "apiVersion": "v1",
                },
                "type": event_type,
                "reason": reason,
                "message": message,
                "source": {"component": source},
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            },
        )


def gone_status(resource_version: int) -> ApiError:
    return ApiError(410, "Expired", f"too old resource version: {resource_version}")


def encode_event(event_type: str, obj: dict) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"
