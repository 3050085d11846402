"""``tk-kubernetes``: KubeSpawner with the jupyter-tk form.

The form, parsing and validation are shared through :class:`TkSpawnerMixin`
(``hub/spawner_mixin.py``); this spawner only applies a :class:`ValidatedOptions` by setting
KubeSpawner's own traits (image, cpu/memory limits and guarantees, extended resources, node
affinity, tolerations, environment), and fails a spawn that stays unschedulable with the
scheduler's reason.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Float, List, default

from jupyter_tk.hub.kubernetes.inventory import KubernetesInventory
from jupyter_tk.hub.kubernetes.storage import StorageLayout
from jupyter_tk.hub.kubernetes.unschedulable import ServerUnschedulable, UnschedulableWatch
from jupyter_tk.hub.placement import ResourceRequest, scheduling_amounts
from jupyter_tk.hub.spawner_mixin import TkSpawnerMixin
from jupyter_tk.hub.validation import ValidatedOptions

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

    @default("inventory_class")
    def _default_inventory_class(self):
        return KubernetesInventory

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
        """KubeSpawner's start, given up early when the pod stays unschedulable."""
        start = asyncio.ensure_future(super()._start())
        watch = UnschedulableWatch(self.unschedulable_timeout)
        ref_key = f"{self.namespace}/{self.pod_name}"
        try:
            while True:
                done, _ = await asyncio.wait([start], timeout=1.0)
                if done:
                    return start.result()
                reflector = self.pod_reflector
                pod = reflector.pods.get(ref_key) if reflector is not None else None
                message = watch.check(pod, self.events)
                if message is not None:
                    # JupyterHub stops (deletes) the pod after a failed start.
                    raise ServerUnschedulable(message)
        finally:
            # Given up here, or cancelled by JupyterHub's start_timeout: stop KubeSpawner too.
            if not start.done():
                start.cancel()


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
