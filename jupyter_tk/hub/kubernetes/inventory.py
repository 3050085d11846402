"""`KubernetesInventory`: per-node free CPU, memory and GPUs from one watch of nodes and pods.

Two list+watch loops (`listwatch.ListWatch`) feed small stores: per node its allocatable
resources, readiness, cordon, taints and GPU labels; per pod only its node and its request
totals. Per-node request sums are kept up to date on every pod event, so a snapshot costs
O(nodes) and is memoized until the next change. Needs RBAC to list/watch nodes and pods in all
namespaces (see `share/kubernetes/rbac.yaml`).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubernetes_asyncio import client, config
from traitlets import Float, Int, List, Unicode, default

from jupyter_tk.hub.gpu_metrics import GpuMetrics
from jupyter_tk.hub.inventory import Inventory
from jupyter_tk.hub.inventory.model import (
    add_into,
    from_storage,
    pod_storage_requests,
    to_storage,
)
from jupyter_tk.hub.kubernetes.gpus import GPU_LABEL_PREFIXES, describe_gpus
from jupyter_tk.hub.kubernetes.listwatch import ListWatch, ListWatchTiming
from jupyter_tk.hub.placement import (
    ResourceRequest,
    fit_checker,
    scheduling_amounts,
    why_nothing_fits,
)
from jupyter_tk.hub.quantities import parse_quantity

__all__ = ["KubernetesInventory", "NoRoom", "NodeState"]

# What the API server keeps out of the pod watch: finished pods hold no resources.
ACTIVE_PODS_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"


class NoRoom(Exception):
    """`KubernetesInventory.reserve` found no node with room; ``str()`` says why."""


@dataclass(slots=True)
class Reservation:
    """Room held on `node` for a pod this hub is creating, until the watch shows the pod bound
    (then it counts as a pod), it goes away, the spawn ends without it, or `expires`."""

    node: str
    shape: tuple  # (resource, amount in storage units) pairs, "pods": 1 included
    expires: float  # time.monotonic()
    # A pod of the same name was still counted when the room was taken: events for the key
    # belong to that old pod until it is deleted.
    old_pod_present: bool


@dataclass(frozen=True, slots=True)
class NodeState:
    """The few fields of a Node object the inventory needs (amounts in storage units)."""

    name: str
    ready: bool
    unschedulable: bool
    allocatable: dict[str, int]
    taints: tuple[tuple[str, str | None, str], ...]
    gpu_labels: dict[str, str]


def node_state(node: dict) -> NodeState:
    """Reduce a Node API object to a `NodeState`."""
    metadata = node.get("metadata") or {}
    spec = node.get("spec") or {}
    status = node.get("status") or {}
    allocatable = {}
    for resource, value in (status.get("allocatable") or {}).items():
        try:
            allocatable[sys.intern(resource)] = to_storage(resource, parse_quantity(value))
        except ValueError:
            continue  # an unparsable amount is not something anyone can request either
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )
    taints = tuple(
        (t.get("key") or "", t.get("value"), t.get("effect") or "")
        for t in spec.get("taints") or ()
    )
    labels = metadata.get("labels") or {}
    gpu_labels = {k: v for k, v in labels.items() if k.startswith(GPU_LABEL_PREFIXES)}
    return NodeState(
        name=sys.intern(metadata.get("name") or ""),
        ready=ready,
        unschedulable=bool(spec.get("unschedulable")),
        allocatable=allocatable,
        taints=taints,
        gpu_labels=gpu_labels,
    )


class KubernetesInventory(Inventory):
    """Live per-node availability of a Kubernetes cluster, from a shared watch."""

    source = "kubernetes"

    kubeconfig = Unicode(
        config=True,
        help="""Path of the kubeconfig file to use (default: $KUBECONFIG).

        Empty: the in-cluster service account when running in a pod, else ~/.kube/config.
        Example: "/etc/jupyterhub/kubeconfig".
        """,
    )

    @default("kubeconfig")
    def _default_kubeconfig(self) -> str:
        return os.environ.get("KUBECONFIG", "")

    kube_context = Unicode(
        "",
        config=True,
        help="""kubeconfig context to use; empty for the file's current context. Example: "lab".""",
    )

    node_selector = Unicode(
        "",
        config=True,
        help="""Label selector limiting which nodes are listed; empty for all nodes.

        Kubernetes selector syntax. Example: "node-role.kubernetes.io/notebooks=true".
        """,
    )

    extra_gpu_resources = List(
        Unicode(),
        config=True,
        help="""Extended resource names to list as GPUs besides NVIDIA, AMD and Intel ones.

        Example: ["habana.ai/gaudi"].
        """,
    )

    request_timeout_seconds = Float(
        30.0,
        config=True,
        help="""Seconds before one list page request or a watch connection attempt gives up.""",
    )

    watch_timeout_seconds = Int(
        60,
        config=True,
        help="""Seconds the API server keeps one watch open; it is then resumed without a relist.

        A connection that stays silent this long plus `request_timeout_seconds` counts as lost.
        Example: 60.
        """,
    )

    resync_seconds = Float(
        900.0,
        config=True,
        help="""Seconds between full relists as a safety net against missed events; 0 disables.

        Errors and `410 Gone` always relist. Example: 900 (15 minutes).
        """,
    )

    backoff_max_seconds = Float(
        30.0,
        config=True,
        help="""Longest wait in seconds between reconnect attempts while the API is unreachable
        (the wait doubles from 0.5 s up to this). Example: 30.""",
    )

    probe_interval_seconds = Float(
        config=True,
        help="""Seconds without a word from the API server after which it is probed.

        Watches can stay silent for minutes on a quiet cluster, and a hung API server keeps its
        connections open, so silence alone proves nothing: a cheap request (list one node)
        checks that it still answers. Keep this plus `probe_timeout_seconds` below
        `stale_after_seconds` so that a hung API shows as stale on time. Default: a third of
        `stale_after_seconds`, at most 3. Example: 3.
        """,
    )

    @default("probe_interval_seconds")
    def _default_probe_interval(self) -> float:
        return min(3.0, self.stale_after_seconds / 3)

    probe_timeout_seconds = Float(
        config=True,
        help="""Seconds a probe of the API server (see `probe_interval_seconds`) may take
        before the API counts as unreachable. Default: a third of `stale_after_seconds`, at
        most 3. Example: 3.""",
    )

    @default("probe_timeout_seconds")
    def _default_probe_timeout(self) -> float:
        return min(3.0, self.stale_after_seconds / 3)

    list_page_size = Int(
        500,
        config=True,
        help="""Objects per page when listing; smaller pages keep the hub responsive.

        Example: 500.
        """,
    )

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._node_states: dict[str, NodeState] = {}
        # pod key -> (node name, request shape): a shape is a sorted tuple of (resource, amount)
        # pairs in storage units, "pods": 1 included. Identical shapes are one shared object,
        # and tuples of strings and ints are not tracked by the garbage collector, so 50,000
        # pods add neither much memory nor GC work to the hub.
        self._pods: dict[str, tuple[str, tuple]] = {}
        self._requested: dict[str, dict[str, int]] = {}
        self._request_shapes: dict[tuple, tuple] = {}
        self._node_rows: dict[str, dict] = {}
        self._dirty_nodes: set[str] = set()
        self._live_parts = {"nodes": False, "pods": False}
        # Wall-clock time of the last answered probe; None while the last probe failed.
        self._probe_answered: float | None = time.time()
        self._probe_failure: str | None = None
        self._api_client: client.ApiClient | None = None
        self.watches: dict[str, ListWatch] = {}
        # pod key -> room held for it; node -> the sum of what is held there.
        self._reservations: dict[str, Reservation] = {}
        self._reserved: dict[str, dict[str, int]] = {}
        # Live GPU use from Prometheus (dcgm-exporter), when c.GpuMetrics.prometheus_url is set.
        self.gpu_metrics = GpuMetrics(parent=self, on_change=self._data_changed)
        if not self.gpu_metrics.enabled:
            self.gpu_metrics = None

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the background task that connects and then keeps the cache in sync."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())
        if self.gpu_metrics is not None:
            self.gpu_metrics.start()

    async def stop(self) -> None:
        """Stop watching and close the API client; the last snapshot stays readable."""
        await self._stop_task()
        if self.gpu_metrics is not None:
            await self.gpu_metrics.stop()
        if self._api_client is not None:
            await self._api_client.close()
            self._api_client = None
        self._set_part_live("nodes", False)

    async def _run(self) -> None:
        api = client.CoreV1Api(await self._connect())
        timing = ListWatchTiming(
            request_timeout=self.request_timeout_seconds,
            watch_timeout=self.watch_timeout_seconds,
            resync=self.resync_seconds,
            backoff_max=self.backoff_max_seconds,
            page_size=self.list_page_size,
        )
        self.watches = {
            "nodes": ListWatch(
                kind="nodes",
                list_func=api.list_node,
                compact=node_state,
                replace=self._replace_nodes,
                apply=self._apply_node,
                set_live=lambda live, since: self._set_part_live("nodes", live, since),
                log=self.log,
                timing=timing,
                label_selector=self.node_selector,
            ),
            "pods": ListWatch(
                kind="pods",
                list_func=api.list_pod_for_all_namespaces,
                compact=self._compact_pod,
                replace=self._replace_pods,
                apply=self._apply_pod,
                set_live=lambda live, since: self._set_part_live("pods", live, since),
                log=self.log,
                timing=timing,
                field_selector=ACTIVE_PODS_FIELD_SELECTOR,
            ),
        }
        await asyncio.gather(*(watch.run() for watch in self.watches.values()), self._probe(api))

    def last_heard(self) -> float:
        """Wall-clock time the API server last answered (a list, a watch line, a probe)."""
        heard = [watch.last_contact for watch in self.watches.values()]
        return max([*heard, self._probe_answered or 0.0])

    async def _probe(self, api: client.CoreV1Api) -> None:
        """Ask the API server for one node whenever a watch has been silent for a while, so that
        freshness means "the API answered recently", not "a connection is open"."""
        while True:
            await asyncio.sleep(self.probe_interval_seconds)
            self._expire_reservations()
            if not all(self._live_parts.values()):
                continue  # already known to be lost; a reconnecting watch is the better probe
            quietest = min((w.last_contact for w in self.watches.values()), default=0.0)
            last_probe = self._probe_answered or 0.0
            if time.time() - max(quietest, last_probe) < self.probe_interval_seconds:
                continue
            try:
                response = await asyncio.wait_for(
                    api.list_node(
                        limit=1,
                        label_selector=self.node_selector or None,
                        _request_timeout=self.probe_timeout_seconds,
                        _preload_content=False,
                    ),
                    self.probe_timeout_seconds,
                )
                try:
                    await asyncio.wait_for(response.read(), self.probe_timeout_seconds)
                finally:
                    response.release()
                if response.status >= 500:
                    raise RuntimeError(f"HTTP {response.status}")
            except asyncio.CancelledError:
                raise
            except Exception as error:
                reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
                if self._probe_failure is None:
                    self.log.warning(
                        "Kubernetes API did not answer a probe within %gs (%s); the free "
                        "resources shown are from %s",
                        self.probe_timeout_seconds,
                        reason,
                        time.strftime("%H:%M:%S", time.localtime(self.last_heard())),
                    )
                self._probe_failure = reason
                self._probe_answered = None
            else:
                if self._probe_failure is not None:
                    self.log.info("Kubernetes API answers again")
                self._probe_failure = None
                self._probe_answered = time.time()
            self._update_live()

    async def _connect(self) -> client.ApiClient:
        """Load the cluster credentials, retrying while they are missing or broken."""
        delay = 0.5
        while True:
            configuration = client.Configuration()
            try:
                if self.kubeconfig or "KUBERNETES_SERVICE_HOST" not in os.environ:
                    await config.load_kube_config(
                        config_file=self.kubeconfig or None,
                        context=self.kube_context or None,
                        client_configuration=configuration,
                        persist_config=False,
                    )
                else:
                    config.load_incluster_config(client_configuration=configuration)
            except Exception as error:
                self.log.error("Cannot load Kubernetes credentials (%s); retrying", error)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max_seconds)
                continue
            self._api_client = client.ApiClient(configuration)
            return self._api_client

    def _set_part_live(self, part: str, live: bool, since: float | None = None) -> None:
        self._live_parts[part] = live
        self._update_live()

    def _update_live(self) -> None:
        if all(self._live_parts.values()) and self._probe_failure is None:
            self._source_live()
        else:
            self._source_lost(self.last_heard())

    # -- nodes ---------------------------------------------------------------------------------

    def _replace_nodes(self, states: dict[str, NodeState]) -> None:
        self._dirty_nodes.update(self._node_states)
        self._node_states = states
        self._dirty_nodes.update(states)
        self._data_changed()

    def _apply_node(self, event_type: str, name: str, state: NodeState | None) -> None:
        old = self._node_states.get(name)
        if state is None:
            self._node_states.pop(name, None)
        elif state == old:
            return  # a heartbeat or a status field we do not keep
        else:
            self._node_states[name] = state
        self._dirty_nodes.add(name)
        self._data_changed()

    # -- pods ----------------------------------------------------------------------------------

    def _compact_pod(self, pod: dict) -> tuple[str, tuple] | None:
        spec = pod.get("spec") or {}
        node = spec.get("nodeName")
        if not node or (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return None
        try:
            requests = pod_storage_requests(pod)
        except ValueError as error:
            self.log.warning("Ignoring requests of pod %s: %s", _pod_name(pod), error)
            requests = {}
        requests["pods"] = 1
        shape = tuple(sorted((sys.intern(k), v) for k, v in requests.items()))
        return sys.intern(node), self._request_shapes.setdefault(shape, shape)

    def _replace_pods(self, pods: dict[str, tuple[str, tuple]]) -> None:
        requested: dict[str, dict[str, int]] = {}
        for node, amounts in pods.values():
            add_into(requested.setdefault(node, {}), amounts)
        self._dirty_nodes.update(self._requested)
        self._dirty_nodes.update(requested)
        self._pods = pods
        self._requested = requested
        self._request_shapes = {shape: shape for _, shape in pods.values()}
        for key, reservation in list(self._reservations.items()):
            if reservation.old_pod_present:
                reservation.old_pod_present = key in pods
            elif key in pods:
                self._drop_reservation(key)
        self._data_changed()

    # -- room held for pods being created --------------------------------------------------------

    def reserve(
        self,
        key: str,
        request: ResourceRequest,
        *,
        node: str | None,
        ratio: float,
        tolerations: Sequence[Mapping],
        allowed_node: Callable[[str], bool] = lambda name: True,
        hold_seconds: float,
    ) -> str:
        """Check that `request` fits (on `node`, or on any allowed node) and hold the room for
        the pod `key` ("namespace/name") in the same step; returns the node held on.

        Call it without awaiting anything between the fit check the user was shown and this,
        so two spawns can never both take the last GPU. What is held counts as requested in
        every snapshot until the pod shows up bound in the watch, goes away, `release(key)` is
        called (the spawn failed), or `hold_seconds` pass. Raises `NoRoom`.
        """
        self.release(key)
        nodes = self.snapshot()["nodes"]
        unfit = fit_checker(request, ratio=ratio, tolerations=tolerations)
        if node:
            candidates = [n for n in nodes if n["name"] == node]
        else:
            candidates = [n for n in nodes if allowed_node(n["name"])]
        reasons = [unfit(candidate) for candidate in candidates]
        fitting = [c for c, reason in zip(candidates, reasons, strict=True) if reason is None]
        if not fitting:
            if node:
                raise NoRoom(reasons[0] if reasons else f"there is no node called {node}")
            raise NoRoom(
                why_nothing_fits(candidates, request, ratio=ratio, tolerations=tolerations)
            )
        chosen = fitting[0]
        cpu, memory = scheduling_amounts(request, ratio)
        amounts = {"cpu": to_storage("cpu", Decimal(str(cpu))), "memory": memory, "pods": 1}
        if request.wants_gpu:
            amounts[request.gpu_resource] = request.gpu_count
        name = chosen["name"]
        reservation = Reservation(
            node=name,
            shape=tuple(sorted(amounts.items())),
            expires=time.monotonic() + hold_seconds,
            old_pod_present=key in self._pods,
        )
        self._reservations[key] = reservation
        add_into(self._reserved.setdefault(name, {}), reservation.shape)
        self._dirty_nodes.add(name)
        self._data_changed()
        return name

    def release(self, key: str) -> None:
        """Give back the room held for pod `key`, if any (its spawn failed or was cancelled)."""
        if key in self._reservations:
            self._drop_reservation(key)
            self._data_changed()

    def reservations(self) -> dict[str, str]:
        """Pod key -> node, for the pods room is held for right now."""
        return {key: r.node for key, r in self._reservations.items()}

    def _drop_reservation(self, key: str) -> None:
        reservation = self._reservations.pop(key)
        add_into(self._reserved[reservation.node], reservation.shape, sign=-1)
        self._dirty_nodes.add(reservation.node)

    def _expire_reservations(self) -> None:
        now = time.monotonic()
        expired = [key for key, r in self._reservations.items() if r.expires <= now]
        for key in expired:
            self.log.warning("Room held for pod %s expired before the pod was seen", key)
            self._drop_reservation(key)
        if expired:
            self._data_changed()

    def _apply_pod(self, event_type: str, key: str, entry: tuple | None) -> None:
        reservation = self._reservations.get(key)
        if reservation is not None:
            if reservation.old_pod_present:
                reservation.old_pod_present = event_type != "DELETED"
            elif entry is not None or event_type == "DELETED":
                # Bound (it counts as a pod from this very event on) or gone.
                self._drop_reservation(key)
        old = self._pods.pop(key, None)
        if entry is not None:
            self._pods[key] = entry
        if old == entry:
            return  # e.g. a status update that does not change what the pod holds
        if old is not None:
            add_into(self._requested[old[0]], old[1], sign=-1)
            self._dirty_nodes.add(old[0])
        if entry is not None:
            add_into(self._requested.setdefault(entry[0], {}), entry[1])
            self._dirty_nodes.add(entry[0])
        self._data_changed()

    # -- snapshot ------------------------------------------------------------------------------

    def _collect_nodes(self) -> list[dict]:
        for name in self._dirty_nodes:
            state = self._node_states.get(name)
            if state is None:
                self._node_rows.pop(name, None)
            else:
                self._node_rows[name] = self._node_row(state)
        self._dirty_nodes.clear()
        return [self._node_rows[name] for name in sorted(self._node_rows)]

    def _node_row(self, state: NodeState) -> dict:
        requested = self._requested.get(state.name, {})
        reserved = self._reserved.get(state.name)
        if reserved:
            # Pods this hub is creating count as requested before the watch shows them.
            requested = dict(requested)
            add_into(requested, reserved.items())
        free = {r: max(0, a - requested.get(r, 0)) for r, a in state.allocatable.items()}
        shown_requested = {r: requested.get(r, 0) for r in state.allocatable}
        shown_requested.update({r: a for r, a in requested.items() if a})
        return {
            "name": state.name,
            "ready": state.ready,
            "schedulable": state.ready and not state.unschedulable,
            "unschedulable": state.unschedulable,
            "allocatable": _json_amounts(state.allocatable),
            "requested": _json_amounts(shown_requested),
            "free": _json_amounts(free),
            "gpus": describe_gpus(
                state.gpu_labels, state.allocatable, free, self.extra_gpu_resources
            ),
            "taints": [
                {"key": key, "value": value, "effect": effect}
                for key, value, effect in state.taints
            ],
        }


def _json_amounts(amounts: dict[str, int]) -> dict[str, float | int]:
    return {resource: from_storage(resource, amount) for resource, amount in amounts.items()}


def _pod_name(pod: dict) -> str:
    metadata = pod.get("metadata") or {}
    return f"{metadata.get('namespace')}/{metadata.get('name')}"
