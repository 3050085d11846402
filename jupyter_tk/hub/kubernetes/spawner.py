"""``tk-kubernetes``: KubeSpawner with the jupyter-tk form.

The form, parsing and validation are shared through :class:`TkSpawnerMixin`
(``hub/spawner_mixin.py``); this spawner only applies a :class:`ValidatedOptions` by setting
KubeSpawner's own traits (image, cpu/memory limits and guarantees, extended resources, node
affinity, tolerations, environment, then the preset's own overrides), holds the room for the
pod in the inventory from admission until the watch sees it, and fails a spawn that stays
unschedulable with the scheduler's reason.
"""

from __future__ import annotations

import asyncio
import copy
import json
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException
from kubespawner import KubeSpawner
from tornado.web import HTTPError
from traitlets import Bool, Dict, Float, List, TraitError, Type

from jupyter_tk.hub.inventory import Inventory
from jupyter_tk.hub.kubernetes.inventory import KubernetesInventory, NoRoom
from jupyter_tk.hub.kubernetes.storage import StorageLayout
from jupyter_tk.hub.kubernetes.unschedulable import ServerUnschedulable, UnschedulableWatch
from jupyter_tk.hub.placement import ResourceRequest, scheduling_amounts
from jupyter_tk.hub.spawner_mixin import TkSpawnerMixin
from jupyter_tk.hub.validation import InvalidOptions, ValidatedOptions

__all__ = ["TkKubeSpawner"]


# KubeSpawner traits that apply_validated_options extends; their configured values are kept
# aside on first use so that a later, smaller spawn does not inherit an earlier GPU or node.
_EXTENDED_TRAITS = (
    "extra_resource_limits",
    "extra_resource_guarantees",
    "node_affinity_required",
    "tolerations",
    "environment",
    "volumes",
    "volume_mounts",
    "init_containers",
)


# KubeSpawner traits that apply_validated_options sets outright on every spawn.
_SET_ON_EVERY_SPAWN = ("image", "cpu_limit", "cpu_guarantee", "mem_limit", "mem_guarantee")


class ClusterRefused(HTTPError):
    """The Kubernetes API refused a request of the spawn; the message is its reason only."""

    def __init__(self, message: str) -> None:
        super().__init__(500, "%s", message)
        self.message = message
        # What JupyterHub shows in the progress event and the REST error.
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.message


def api_error_reason(error: ApiException) -> str:
    """The human part of an API error: the `message` of the Status object the API server sent
    (not the response headers that ``str(ApiException)`` carries)."""
    try:
        status = json.loads(error.body)
    except (TypeError, ValueError):
        status = None
    message = status.get("message") if isinstance(status, dict) else None
    return message or error.reason or f"HTTP {error.status}"


class TkKubeSpawner(TkSpawnerMixin, KubeSpawner):
    """KubeSpawner with the jupyter-tk form (entry point ``tk-kubernetes``)."""

    guarantee_ratio = Float(
        1.0,
        config=True,
        help="""Fraction of the CPU and memory limits requested (reserved) on the node.

        1 (the default) guarantees what the user picked; 0.5 lets nodes be overcommitted two
        to one. GPUs are always requested in full. Example: 0.5
        """,
    )

    gpu_tolerations = List(
        Dict(),
        default_value=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
        config=True,
        help="""Tolerations added to pods that request a GPU (GPU nodes are usually tainted).

        Kubernetes toleration objects. Example:
        [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
        """,
    )

    hide_gpus_without_request = Bool(
        True,
        config=True,
        help="""Set NVIDIA_VISIBLE_DEVICES=void in pods that request no GPU.

        CUDA images ask for all GPUs through that variable; on a GPU node without a request the
        NVIDIA runtime would otherwise hand them GPUs that other users reserved. Example: true
        """,
    )

    unschedulable_timeout = Float(
        60.0,
        config=True,
        help="""Seconds a pod may stay unschedulable before the spawn fails with the reason.

        Counted from when the scheduler first reports it cannot place the pod; a pod placed
        in the meantime (e.g. after another server stopped) starts normally. Example: 60
        """,
    )

    # A class-level default (not a @default method), so the wiring reads it without a spawner.
    inventory_class = Type(
        KubernetesInventory, klass=Inventory, config=True, help=TkSpawnerMixin.inventory_class.help
    )

    def placement_ratio(self) -> float:
        return self.guarantee_ratio

    def _configured(self, name: str) -> Any:
        base = self.__dict__.setdefault("_tk_configured", {})
        if name not in base:
            base[name] = copy.deepcopy(getattr(self, name))
        return copy.deepcopy(base[name])

    def scheduling_tolerations(self, wants_gpu: bool) -> list[dict]:
        tolerations = list(self._configured("tolerations"))
        if wants_gpu:
            tolerations += [t for t in self.gpu_tolerations if t not in tolerations]
        return tolerations

    def apply_validated_options(self, options: ValidatedOptions) -> None:
        request = ResourceRequest(
            options.cpu, options.memory, options.gpu_resource, options.gpu_count
        )
        cpu_guarantee, memory_guarantee = scheduling_amounts(request, self.guarantee_ratio)
        self.image = options.image
        self.cpu_limit = options.cpu
        self.cpu_guarantee = cpu_guarantee
        self.mem_limit = options.memory
        self.mem_guarantee = memory_guarantee

        limits = self._configured("extra_resource_limits")
        guarantees = self._configured("extra_resource_guarantees")
        if options.gpu_resource and options.gpu_count:
            # Extended resources cannot be overcommitted: request == limit.
            limits[options.gpu_resource] = str(options.gpu_count)
            guarantees[options.gpu_resource] = str(options.gpu_count)
        self.extra_resource_limits = limits
        self.extra_resource_guarantees = guarantees

        self.node_affinity_required = _pin_to_node(
            self._configured("node_affinity_required"), options.node
        )
        self.tolerations = self.scheduling_tolerations(bool(options.gpu_count))

        environment = self._configured("environment")
        environment.update(self.apply_storage_layout(options.image))
        environment["JUPYTER_TK_PROFILE"] = options.profile
        environment["JUPYTER_IMAGE"] = options.image
        if not options.gpu_count and self.hide_gpus_without_request:
            environment["NVIDIA_VISIBLE_DEVICES"] = "void"
        self.environment = environment

        self._apply_overrides(options)
        self._hold_room(options)

    def _apply_overrides(self, options: ValidatedOptions) -> None:
        """Set the preset's KubeSpawner traits (from the policy file only) on top of the above.

        Lists are extended (an entry with the same ``mountPath``, else ``name``, is replaced)
        and dicts updated; other values replace the configured one. A trait set by an earlier
        spawn's preset is put back to its configured value first, so nothing leaks.
        """
        # Traits set above on every spawn are current; any other one a preset set before goes
        # back to its configured value.
        rebuilt = (*_EXTENDED_TRAITS, *_SET_ON_EVERY_SPAWN)
        for name in self.__dict__.pop("_tk_overridden", ()):
            if name not in rebuilt:
                setattr(self, name, self._configured(name))
        overrides = getattr(options, "spawner_overrides", None) or {}
        settable = self.traits(config=True)
        overridden = []
        for name, value in overrides.items():
            if name not in settable:
                raise InvalidOptions(
                    f"The preset {options.profile!r} sets {name!r}, which is not a KubeSpawner "
                    "setting; ask an administrator to correct the policy.",
                    status_code=500,
                )
            base = getattr(self, name) if name in rebuilt else self._configured(name)
            try:
                setattr(self, name, _merged(base, copy.deepcopy(value)))
            except TraitError as error:
                raise InvalidOptions(
                    f"The preset {options.profile!r} sets {name!r} to a value KubeSpawner "
                    f"does not accept ({error}); ask an administrator to correct the policy.",
                    status_code=500,
                ) from None
            overridden.append(name)
        self._tk_overridden = overridden

    def _hold_room(self, options: ValidatedOptions) -> None:
        """Hold the room on the cluster for this pod in the same step as the fit check that
        admitted it (validation has just run, with no await since), so that concurrent spawns
        cannot both take the last GPU. Given back when the pod shows up in the inventory's
        watch, or in `_start` when the spawn fails."""
        inventory = self.tk_inventory
        if not isinstance(inventory, KubernetesInventory):
            return
        rule = self.tk_policy.rule_for(self._user_groups())
        try:
            inventory.reserve(
                f"{self.namespace}/{self.pod_name}",
                options.request,
                node=options.node,
                ratio=self.guarantee_ratio,
                tolerations=self.scheduling_tolerations(bool(options.gpu_count)),
                allowed_node=rule.allows_node if rule is not None else (lambda name: True),
                hold_seconds=self.start_timeout + self.k8s_api_request_retry_timeout + 60,
            )
        except NoRoom as reason:
            where = f"the node {options.node}" if options.node else "any node you may use"
            raise InvalidOptions(
                f"Servers starting at this moment have taken the room on {where}: {reason}. "
                "Choose less or another node, or try again later."
            ) from None

    def apply_storage_layout(self, image: str) -> dict[str, str]:
        """Add the site's storage folders (``c.StorageLayout``) to the configured volumes,
        mounts and init containers; returns the environment that tells Lab the tiers."""
        storage = StorageLayout(parent=self).pod_storage(
            user_dir=self._expand_user_properties("{username}"),
            image=image,
            uid=self.uid,
            gid=self.gid,
        )
        self.volumes = self._configured("volumes") + storage.volumes
        self.volume_mounts = self._configured("volume_mounts") + storage.volume_mounts
        self.init_containers = self._configured("init_containers") + storage.init_containers
        # KubeSpawner str.format()s environment values with the user's name: keep JSON's
        # braces literal.
        return {
            name: value.replace("{", "{{").replace("}", "}}")
            for name, value in storage.environment.items()
        }

    async def _start(self):
        """KubeSpawner's start, given up early when the pod stays unschedulable; an API error
        is shown by its reason, and room held for the pod is given back when it fails."""
        start = asyncio.ensure_future(super()._start())
        watch = UnschedulableWatch(self.unschedulable_timeout)
        ref_key = f"{self.namespace}/{self.pod_name}"
        started = False
        try:
            while True:
                done, _ = await asyncio.wait([start], timeout=1.0)
                if done:
                    url = start.result()
                    started = True
                    return url
                reflector = self.pod_reflector
                pod = reflector.pods.get(ref_key) if reflector is not None else None
                message = watch.check(pod, self.events)
                if message is not None:
                    # JupyterHub stops (deletes) the pod after a failed start.
                    raise ServerUnschedulable(message)
        except ApiException as error:
            # str(ApiException) carries the API server's response headers: log them, show
            # the user the Status message only.
            self.log.error("Kubernetes API error while starting %s: %s", ref_key, error)
            raise ClusterRefused(
                f"The cluster refused to start your server: {api_error_reason(error)}"
            ) from None
        finally:
            # Given up here, or cancelled by JupyterHub's start_timeout: stop KubeSpawner too.
            if not start.done():
                start.cancel()
            inventory = self.tk_inventory
            if not started and isinstance(inventory, KubernetesInventory):
                inventory.release(ref_key)


def _identity(item: Any) -> tuple | None:
    """What makes a list entry the same entry: a mount's path, else an object's name."""
    if isinstance(item, dict):
        for key in ("mountPath", "name"):
            if key in item:
                return key, item[key]
    return None


def _merged(base: Any, value: Any) -> Any:
    """`value` laid over the configured `base` (see `_apply_overrides`)."""
    if isinstance(base, dict) and isinstance(value, dict):
        return {**base, **value}
    if isinstance(base, list) and isinstance(value, list):
        merged = list(base)
        for item in value:
            key = _identity(item)
            if key is not None:
                merged = [entry for entry in merged if _identity(entry) != key]
            elif item in merged:
                continue
            merged.append(item)
        return merged
    return value


def _pin_to_node(terms: list[dict], node: str | None) -> list[dict]:
    """Add ``kubernetes.io/hostname In [node]`` to every required node selector term.

    Terms are ORed by Kubernetes, so the expression must go into each of them (ANDed there);
    with no terms it becomes the only one.
    """
    if not node:
        return terms
    expression = {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}
    if not terms:
        return [{"matchExpressions": [expression]}]
    pinned = []
    for term in terms:
        term = dict(term)
        term["matchExpressions"] = [*term.get("matchExpressions", []), expression]
        pinned.append(term)
    return pinned
