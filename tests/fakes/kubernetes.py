"""A simulated Kubernetes API server speaking real HTTP on 127.0.0.1, for tests and benchmarks.

Stable API (the form helper's KubeSpawner tests rely on it):

In process::

    from tests.fakes.clusters import make_cluster, make_node, make_pod
    api = SimulatedKubernetes(make_cluster("small"), history_window=10_000)
    await api.start()                  # port=0 picks a free port; api.url, api.port
    api.write_kubeconfig(path)         # cluster server http://127.0.0.1:PORT, dummy token
    api.add_node(node) / api.update_node(node) / api.delete_node(name)
    api.add_pod(pod)                   # stored as given if it names a node, else scheduled
    api.delete_pod(namespace, name) / api.set_pod_phase(namespace, name, "Succeeded")
    api.pods(namespace=None)           # current pods;  api.created_pods: pods POSTed via HTTP
    api.events(namespace=None)         # current Event objects (e.g. FailedScheduling)
    api.force_gone()                   # every open watch gets a 410 ERROR; history forgotten
    api.watch_gone = "status"          # every watch answers HTTP 410 ("event": a 410 ERROR
                                       # event in a 200 stream; None: normal) until reset
    api.hang() / api.resume()          # requests get no answer and open watches fall silent
    api.create_failure = (403, "Forbidden", "message")   # pod creation answers this Status
    api.stats()                        # {"list": {plural: n}, "watch": {...}, "open_watches": n}
    await api.stop(); await api.start(port=api.port)   # restart on the same port, state kept

As a process (prints "READY <url>" once listening)::

    python -m tests.fakes.kubernetes --port P --cluster small|gpu-lab|large \
        [--nodes 1000 --pods 30000] --kubeconfig PATH

HTTP served (core/v1 only): list (with `limit`/`continue`, `labelSelector`, `fieldSelector`) and
watch (`watch=true`, `resourceVersion`, `timeoutSeconds`, `allowWatchBookmarks`) of nodes,
namespaces, pods, events, secrets, services, persistentvolumeclaims, configmaps, serviceaccounts
and endpoints, cluster-wide and per namespace; get/create/replace/merge-patch/delete of single
objects. A watch from a resourceVersion older than the last `history_window` changes gets `410`.
POSTed pods are scheduled at once (see `kube_scheduler.find_node`): bound pods run with podIP
127.0.0.1; others stay Pending with PodScheduled=False/Unschedulable and a FailedScheduling Event.
Test-only endpoints: `POST /_sim/gone` (= force_gone), `GET /_sim/stats` (= stats()),
`POST /_sim/mode` with JSON `{"watch_gone": ..., "hang": bool, "create_failure": [code, reason,
message] | null}` (any subset; the attributes above, for a simulated API in another process).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import json
import pathlib
import secrets

import yaml
from aiohttp import web

from .clusters import Cluster, make_cluster
from .kube_scheduler import FieldSelector, LabelSelector
from .kube_store import CLOSE, KINDS, ApiError, Store, Watcher, encode_event, gone_status

__all__ = ["SimulatedKubernetes"]

_MAX_CONTINUATIONS = 64


class SimulatedKubernetes:
    """The simulated API server; see the module docstring for its API."""

    def __init__(self, cluster: Cluster | None = None, *, history_window: int = 10_000) -> None:
        self.store = Store(history_window=history_window)
        self.store.put("namespaces", {"metadata": {"name": "default"}})
        # The cluster's objects are taken over as they are (no copy): 50,000 pods load fast.
        for node in cluster.nodes if cluster else ():
            self.store.put("nodes", node, take=True)
        for pod in cluster.pods if cluster else ():
            self.store.put("pods", pod, take=True)
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._continuations: collections.OrderedDict[str, tuple[list, str]] = (
            collections.OrderedDict()
        )
        #: None, "status" (watches answer HTTP 410) or "event" (a 410 ERROR event, then EOF).
        self.watch_gone: str | None = None
        #: (code, reason, message): pod creation answers this Status instead of creating.
        self.create_failure: tuple[int, str, str] | None = None
        # Cleared while hung: requests wait for it, open watches stop writing.
        self._answering = asyncio.Event()
        self._answering.set()

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int | None = None) -> str:
        """Listen on 127.0.0.1 (`port` 0 or None: a free one; or the previous one again)."""
        app = web.Application(middlewares=[self._hang_middleware])
        app.router.add_get("/version", self._version)
        app.router.add_get("/api", self._api_versions)
        app.router.add_post("/_sim/gone", self._sim_gone)
        app.router.add_get("/_sim/stats", self._sim_stats)
        app.router.add_post("/_sim/mode", self._sim_mode)
        app.router.add_route("*", "/api/v1/namespaces/{namespace}/{plural}", self._collection)
        app.router.add_route("*", "/api/v1/namespaces/{namespace}/{plural}/{name}", self._single)
        app.router.add_route("*", "/api/v1/{plural}", self._collection)
        app.router.add_route("*", "/api/v1/{plural}/{name}", self._single)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or 0, reuse_address=True)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self.url

    async def stop(self) -> None:
        """Close every watch and stop listening; objects and history are kept."""
        self.store.close_watchers()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def write_kubeconfig(self, path: str | pathlib.Path) -> pathlib.Path:
        path = pathlib.Path(path)
        path.write_text(yaml.safe_dump(kubeconfig_for(self.url)))
        return path

    # -- test helpers --------------------------------------------------------------------------

    def add_node(self, node: dict) -> dict:
        stored = self.store.put("nodes", node)
        self.store.schedule_pending()
        return stored

    update_node = add_node

    def delete_node(self, name: str) -> dict:
        return self.store.delete("nodes", name)

    def add_pod(self, pod: dict) -> dict:
        if (pod.get("spec") or {}).get("nodeName"):
            return self.store.put("pods", pod)
        return self.store.create_pod(pod)

    def delete_pod(self, namespace: str, name: str) -> dict:
        return self.store.delete("pods", f"{namespace}/{name}")

    def set_pod_phase(self, namespace: str, name: str, phase: str) -> dict:
        pod = copy.deepcopy(self.store.get("pods", f"{namespace}/{name}"))
        pod.setdefault("status", {})["phase"] = phase
        return self.store.put("pods", pod)

    def pods(self, namespace: str | None = None) -> list[dict]:
        return self.store.select("pods", namespace, LabelSelector(), FieldSelector())

    def events(self, namespace: str | None = None) -> list[dict]:
        return self.store.select("events", namespace, LabelSelector(), FieldSelector())

    @property
    def created_pods(self) -> list[dict]:
        return self.store.created_pods

    def force_gone(self) -> None:
        self.store.force_gone()

    def hang(self) -> None:
        """Stop answering: new requests wait, open watches send nothing (until `resume`)."""
        self._answering.clear()

    def resume(self) -> None:
        self._answering.set()

    def stats(self) -> dict:
        counts: dict[str, dict[str, int]] = {}
        for key, value in self.store.calls.items():
            verb, plural = key.split(" ", 1)
            counts.setdefault(verb, {})[plural] = value
        return {**counts, "open_watches": len(self.store.watchers)}

    # -- HTTP ----------------------------------------------------------------------------------

    async def _version(self, request: web.Request) -> web.Response:
        return web.json_response({"major": "1", "minor": "31", "gitVersion": "v1.31.0-sim"})

    async def _api_versions(self, request: web.Request) -> web.Response:
        return web.json_response({"kind": "APIVersions", "versions": ["v1"]})

    async def _sim_gone(self, request: web.Request) -> web.Response:
        self.force_gone()
        return web.json_response({"resourceVersion": str(self.store.resource_version)})

    async def _sim_stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.stats())

    async def _sim_mode(self, request: web.Request) -> web.Response:
        body = await request.json()
        if "watch_gone" in body:
            self.watch_gone = body["watch_gone"]
        if "create_failure" in body:
            failure = body["create_failure"]
            self.create_failure = tuple(failure) if failure else None
        if "hang" in body:
            self.hang() if body["hang"] else self.resume()
        return web.json_response({"watch_gone": self.watch_gone, "hang": self.hung})

    @property
    def hung(self) -> bool:
        return not self._answering.is_set()

    @web.middleware
    async def _hang_middleware(self, request: web.Request, handler) -> web.StreamResponse:
        if not request.path.startswith("/_sim/"):
            await self._answering.wait()
        return await handler(request)

    def _count(self, verb: str, plural: str) -> None:
        key = f"{verb} {plural}"
        self.store.calls[key] = self.store.calls.get(key, 0) + 1

    def _resolve(self, request: web.Request) -> tuple[str, str | None]:
        plural = request.match_info["plural"]
        namespace = request.match_info.get("namespace")
        if plural not in KINDS or (namespace is not None and not KINDS[plural][0]):
            raise ApiError(404, "NotFound", f"the server could not find the resource {plural}")
        return plural, namespace

    async def _collection(self, request: web.Request) -> web.StreamResponse:
        try:
            plural, namespace = self._resolve(request)
            if request.method == "GET":
                if request.query.get("watch", "").lower() in ("true", "1"):
                    return await self._watch(request, plural, namespace)
                return self._list(request, plural, namespace)
            if request.method == "POST":
                return await self._create(request, plural, namespace)
            raise ApiError(405, "MethodNotAllowed", f"{request.method} not allowed")
        except ApiError as error:
            return _status_response(error)

    async def _single(self, request: web.Request) -> web.Response:
        try:
            plural, namespace = self._resolve(request)
            name = request.match_info["name"]
            key = f"{namespace}/{name}" if namespace else name
            if request.method == "GET":
                return web.json_response(self.store.get(plural, key))
            if request.method == "DELETE":
                self._count("delete", plural)
                return web.json_response(self.store.delete(plural, key))
            if request.method in ("PUT", "PATCH"):
                body = await _json_body(request)
                obj = copy.deepcopy(self.store.get(plural, key))
                obj = _merge(obj, body) if request.method == "PATCH" else body
                obj.setdefault("metadata", {}).update(name=name)
                if namespace:
                    obj["metadata"]["namespace"] = namespace
                stored = self.store.put(plural, obj)
                if plural == "nodes":
                    self.store.schedule_pending()
                return web.json_response(stored)
            raise ApiError(405, "MethodNotAllowed", f"{request.method} not allowed")
        except ApiError as error:
            return _status_response(error)

    async def _create(self, request: web.Request, plural: str, namespace: str | None):
        self._count("create", plural)
        if plural == "pods" and self.create_failure is not None:
            raise ApiError(*self.create_failure)
        obj = await _json_body(request)
        if namespace:
            obj.setdefault("metadata", {})["namespace"] = namespace
        if plural == "pods":
            stored = self.store.create_pod(obj)
        else:
            stored = self.store.put(plural, obj, create=True)
        return web.json_response(stored, status=201)

    def _list(self, request: web.Request, plural: str, namespace: str | None) -> web.Response:
        self._count("list", plural)
        query = request.query
        token = query.get("continue")
        if token:
            if token not in self._continuations:
                raise ApiError(410, "Expired", "the provided continue parameter is too old")
            items, version = self._continuations.pop(token)
        else:
            labels = LabelSelector(query.get("labelSelector", ""))
            fields = FieldSelector(query.get("fieldSelector", ""))
            items = self.store.select(plural, namespace, labels, fields)
            version = str(self.store.resource_version)
        metadata = {"resourceVersion": version}
        limit = int(query.get("limit") or 0)
        if limit and len(items) > limit:
            items, rest = items[:limit], items[limit:]
            next_token = secrets.token_urlsafe(12)
            self._continuations[next_token] = (rest, version)
            while len(self._continuations) > _MAX_CONTINUATIONS:
                self._continuations.popitem(last=False)
            metadata.update(**{"continue": next_token, "remainingItemCount": len(rest)})
        kind = KINDS[plural][1]
        body = {"kind": f"{kind}List", "apiVersion": "v1", "metadata": metadata, "items": items}
        return web.Response(
            body=json.dumps(body, separators=(",", ":")), content_type="application/json"
        )

    async def _watch(
        self, request: web.Request, plural: str, namespace: str | None
    ) -> web.StreamResponse:
        self._count("watch", plural)
        query = request.query
        store = self.store
        watcher = Watcher(
            plural,
            namespace,
            LabelSelector(query.get("labelSelector", "")),
            FieldSelector(query.get("fieldSelector", "")),
        )
        since = query.get("resourceVersion") or "0"
        if not since.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion: {since!r}")
        timeout = float(query.get("timeoutSeconds") or 1800)
        if self.watch_gone == "status":
            raise gone_status(int(since))
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if self.watch_gone == "event" or (since != "0" and int(since) < store.oldest_resumable):
            error = gone_status(int(since)).status()
            await response.write(encode_event("ERROR", error))
            return response
        # Registered before the replay: changes made while replaying queue up behind it.
        store.watchers.add(watcher)
        try:
            for line in self._replay(watcher, since):
                await response.write(line)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout
            while True:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    line = await asyncio.wait_for(watcher.queue.get(), remaining)
                except asyncio.TimeoutError:
                    break
                if line is CLOSE:
                    break
                await self._answering.wait()
                await response.write(line)
            await self._answering.wait()  # a hung server does not end the stream either
        except (ConnectionResetError, asyncio.CancelledError):
            pass  # the client went away
        finally:
            store.watchers.discard(watcher)
        return response

    def _replay(self, watcher: Watcher, since: str) -> list[bytes]:
        if since == "0":
            # "Any" version: the current state as ADDED events, like the API server.
            objects = self.store.select(
                watcher.plural, watcher.namespace, watcher.labels, watcher.fields
            )
            return [encode_event("ADDED", obj) for obj in objects]
        lines = []
        for version, plural, event_type, old, new in list(self.store.history):
            if plural == watcher.plural and version > int(since):
                event = watcher.event_for(event_type, old, new)
                if event is not None:
                    lines.append(encode_event(*event))
        return lines


def kubeconfig_for(url: str) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "sim", "cluster": {"server": url}}],
        "users": [{"name": "sim", "user": {"token": "simulated-token"}}],
        "contexts": [{"name": "sim", "context": {"cluster": "sim", "user": "sim"}}],
        "current-context": "sim",
    }


def _merge(base: dict, patch: dict) -> dict:
    """JSON merge patch (RFC 7386)."""
    for key, value in patch.items():
        if value is None:
            base.pop(key, None)
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _merge(base[key], value)
        else:
            base[key] = value
    return base


async def _json_body(request: web.Request) -> dict:
    try:
        body = await request.json()
    except ValueError as error:
        raise ApiError(400, "BadRequest", f"invalid JSON body: {error}") from error
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "body must be a JSON object")
    return body


def _status_response(error: ApiError) -> web.Response:
    return web.json_response(error.status(), status=error.code)


async def _serve(args: argparse.Namespace) -> None:
    sizes = {}
    if args.nodes is not None:
        sizes["nodes"] = args.nodes
    if args.pods is not None:
        sizes["pods"] = args.pods
    api = SimulatedKubernetes(make_cluster(args.cluster, **sizes))
    await api.start(args.port)
    if args.kubeconfig:
        api.write_kubeconfig(args.kubeconfig)
    print(f"READY {api.url}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await api.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    parser.add_argument("--cluster", default="small", help="small, gpu-lab or large")
    parser.add_argument("--nodes", type=int, help="node count (large cluster)")
    parser.add_argument("--pods", type=int, help="pod count (large cluster)")
    parser.add_argument("--kubeconfig", help="write a kubeconfig pointing here to this path")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
