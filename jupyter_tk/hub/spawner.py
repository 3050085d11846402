"""Spawners with the jupyter-tk form: a mixin shared by every backend, and ``tk-kubernetes``.

:class:`TkSpawnerMixin` knows nothing about Kubernetes. It renders the form, turns a submitted
form or deep link into validated ``user_options`` and validates them again when the server
starts (the REST API and saved options skip the form), then hands a :class:`ValidatedOptions`
to :meth:`~TkSpawnerMixin.apply_validated_options`, which each backend implements.
:class:`TkKubeSpawner` applies them by setting KubeSpawner's own traits (image, cpu/memory
limits and guarantees, extended resources, node affinity, tolerations, environment), and fails
a spawn that stays unschedulable with the scheduler's reason.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from jupyterhub.spawner import Spawner
from jupyterhub.utils import url_path_join
from kubespawner import KubeSpawner
from traitlets import Bool, Dict, Float, List, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from .catalog import CatalogError, ImageCatalog
from .form import FORM_TEMPLATE, UNAVAILABLE_TEMPLATE, FormAssets, render_template
from .form_view import build_form_view
from .inventory import Inventory, get_inventory
from .inventory.kubernetes import KubernetesInventory
from .inventory.local import LocalInventory
from .inventory.model import parse_quantity
from .local_process import LocalRequest, LocalResourceSpawner
from .placement import ResourceRequest, scheduling_amounts
from .policy import Policy
from .unschedulable import ServerUnschedulable, UnschedulableWatch
from .validation import (
    InvalidOptions,
    SpawnLimits,
    SpawnNotAllowed,
    ValidatedOptions,
    ValidationContext,
    parse_form,
    validate_user_options,
)

__all__ = ["TkKubeSpawner", "TkLocalSpawner", "TkSpawnerMixin"]

# Policy and catalog are per hub process, like the inventory: one file watch, one cache.
_shared: dict[type, Any] = {}
_assets = FormAssets()


def _shared_instance(cls: type, spawner: Spawner) -> Any:
    instance = _shared.get(cls)
    if instance is None:
        instance = _shared[cls] = cls(config=spawner.config, log=spawner.log)
    return instance


class TkSpawnerMixin(LoggingConfigurable):
    """The jupyter-tk spawn form and validation, for any spawner (put it first in the bases).

    A Configurable rather than a Spawner (JupyterHub refuses Spawner subclasses without
    start/stop/poll); it relies on the Spawner it is mixed into for ``user``, ``user_options``,
    ``orm_spawner`` and ``hub``.
    """

    inventory_class = Type(
        Inventory,
        klass=Inventory,
        config=True,
        help="""The inventory (live free resources) the form shows and validation checks.

        One instance per hub process, shared with `/hub/api/tk/resources`. Each spawner sets
        its own default. Example: jupyter_tk.hub.inventory.kubernetes.KubernetesInventory
        """,
    )

    policy_class = Type(
        Policy,
        klass=Policy,
        config=True,
        help="The group policy class (configure it as c.Policy.*). Example: "
        "jupyter_tk.hub.policy.Policy",
    )

    catalog_class = Type(
        ImageCatalog,
        klass=ImageCatalog,
        config=True,
        help="The image catalog class (configure it as c.ImageCatalog.*). Example: "
        "jupyter_tk.hub.catalog.ImageCatalog",
    )

    form_template_paths = List(
        Unicode(),
        config=True,
        help="""Folders searched for the form's Jinja2 templates before the built-in ones.

        A file there named like a built-in one (tk_spawn/form.html, tk_spawn/nodes.html, ...)
        replaces it; templates are autoescaped. Example: ["/etc/jupyterhub/templates"]
        """,
    )

    refresh_seconds = Float(
        5.0,
        config=True,
        help="Seconds between refreshes of the live resource data while the form is open "
        "(the request is cheap: unchanged data answers 304). Example: 5",
    )

    inventory_wait_seconds = Float(
        5.0,
        config=True,
        help="Seconds the first form after hub start waits for the inventory's first sync "
        "before rendering with what it has. Example: 5",
    )

    min_cpu = Float(
        0.1,
        config=True,
        help="Smallest CPU limit a user may request, in cores. Example: 0.5",
    )

    min_memory = Unicode(
        "256Mi",
        config=True,
        help="Smallest memory limit a user may request, a Kubernetes quantity. Example: 512Mi",
    )

    default_cpu = Float(
        1.0,
        config=True,
        help="CPU limit in cores for a custom size that does not say (e.g. a deep link with "
        "only ?image=...). Example: 2",
    )

    default_memory = Unicode(
        "2Gi",
        config=True,
        help="Memory limit for a custom size that does not say, a Kubernetes quantity. "
        "Example: 4Gi",
    )

    #: The options of the current spawn once validated (None before the first start).
    tk_options: ValidatedOptions | None = None

    # -- shared state -----------------------------------------------------------------------

    @property
    def tk_policy(self) -> Policy:
        return _shared_instance(self.policy_class, self)

    @property
    def tk_catalog(self) -> ImageCatalog:
        return _shared_instance(self.catalog_class, self)

    @property
    def tk_inventory(self) -> Inventory:
        return get_inventory(self.inventory_class, config=self.config, log=self.log)

    def spawn_limits(self) -> SpawnLimits:
        """Bounds and defaults from this spawner's configuration."""
        return SpawnLimits(
            min_cpu=self.min_cpu,
            min_memory=int(parse_quantity(self.min_memory)),
            default_cpu=self.default_cpu,
            default_memory=int(parse_quantity(self.default_memory)),
            guarantee_ratio=self.placement_ratio(),
        )

    def placement_ratio(self) -> float:
        """Fraction of the limits the server reserves on its node (1 unless a backend says)."""
        return 1.0

    def scheduling_tolerations(self, wants_gpu: bool) -> list[dict]:
        """Tolerations the server will carry (backends with taints override this)."""
        return []

    def _user_groups(self) -> list[str]:
        return [group.name for group in getattr(self.user, "groups", None) or ()]

    async def validation_context(self) -> ValidationContext:
        """Read policy, catalog and inventory once; raises SpawnNotAllowed / InvalidOptions."""
        policy = self.tk_policy
        groups = self._user_groups()
        rule = policy.rule_for(groups)
        if rule is None:
            shown = ", ".join(groups) if groups else "none"
            detail = f" ({policy.error})" if policy.error else ""
            raise SpawnNotAllowed(
                f"You are not allowed to start a server: no policy rule matches your groups "
                f"({shown}){detail}. Ask an administrator to add you to a group that may."
            )
        try:
            catalog = await self.tk_catalog.get()
        except CatalogError as e:
            raise InvalidOptions(
                f"Servers cannot be started right now: {e}.", status_code=503
            ) from None
        inventory = self.tk_inventory
        await inventory.wait_synced(timeout=self.inventory_wait_seconds)
        return ValidationContext(
            rule=rule,
            catalog=catalog,
            snapshot=inventory.snapshot(),
            limits=self.spawn_limits(),
            tolerations=self.scheduling_tolerations,
        )

    # -- the form ---------------------------------------------------------------------------

    @default("options_form")
    def _default_options_form(self):
        return self.render_spawn_form

    @default("options_from_form")
    def _default_options_from_form(self):
        return self.tk_options_from_form

    def resources_url(self) -> str:
        """`/hub/api/tk/resources` under this hub's base URL."""
        hub = getattr(self, "hub", None)
        base = hub.base_url if hub is not None else "/hub/"
        return url_path_join(base, "api/tk/resources")

    async def render_spawn_form(self, spawner: Spawner | None = None) -> str:
        """The options form's HTML (JupyterHub calls this with the spawner as argument)."""
        try:
            context = await self.validation_context()
        except InvalidOptions as e:
            return render_template(
                UNAVAILABLE_TEMPLATE,
                {"style": _assets.style, "title": "Cannot start a server", "message": str(e)},
                self.form_template_paths,
            )
        notices = []
        if self.tk_policy.error:
            notices.append(f"The policy in force is an older one: {self.tk_policy.error}")
        last = self.user_options or getattr(self.orm_spawner, "user_options", None) or {}
        view = build_form_view(
            context=context,
            last_options=last,
            resources_url=self.resources_url(),
            refresh_seconds=self.refresh_seconds,
            notices=notices,
        )
        view.update(style=_assets.style, script=_assets.script)
        return render_template(FORM_TEMPLATE, view, self.form_template_paths)

    async def tk_options_from_form(self, form_data: dict) -> dict:
        """Form data or deep-link query -> canonical ``user_options``; InvalidOptions if bad.

        Free of side effects: it reads the policy, catalog and inventory, and changes nothing.
        Checking here (not only at start) makes a bad submission re-render the form with the
        message at once, before any spawn begins.
        """
        options = parse_form(form_data)
        context = await self.validation_context()
        return validate_user_options(options, context).user_options()

    # -- at start ---------------------------------------------------------------------------

    async def load_user_options(self) -> None:
        """Validate ``self.user_options`` again (REST calls and saved options skip the form)
        and apply them; raises InvalidOptions (HTTP 400) before anything is created."""
        context = await self.validation_context()
        validated = validate_user_options(self.user_options, context)
        self.tk_options = validated
        self.apply_validated_options(validated)

    def apply_validated_options(self, options: ValidatedOptions) -> None:
        """Configure this spawner for ``options`` (each backend implements it)."""
        raise NotImplementedError


# KubeSpawner traits that apply_validated_options extends; their configured values are kept
# aside on first use so that a later, smaller spawn does not inherit an earlier GPU or node.
_EXTENDED_TRAITS = (
    "extra_resource_limits",
    "extra_resource_guarantees",
    "node_affinity_required",
    "tolerations",
    "environment",
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
        environment["JUPYTER_TK_PROFILE"] = options.profile
        environment["JUPYTER_IMAGE"] = options.image
        if not options.gpu_count and self.hide_gpus_without_request:
            environment["NVIDIA_VISIBLE_DEVICES"] = "void"
        self.environment = environment

    async def _start(self):
        """KubeSpawner's start, given up early when the pod stays unschedulable."""
        start = asyncio.ensure_future(super()._start())
        watch = UnschedulableWatch(self.unschedulable_timeout)
        ref_key = f"{self.namespace}/{self.pod_name}"
        while True:
            done, _ = await asyncio.wait([start], timeout=1.0)
            if done:
                return start.result()
            reflector = self.pod_reflector
            pod = reflector.pods.get(ref_key) if reflector is not None else None
            message = watch.check(pod, self.events)
            if message is not None:
                start.cancel()
                # JupyterHub stops (deletes) the pod after a failed start.
                raise ServerUnschedulable(message)


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


class TkLocalSpawner(TkSpawnerMixin, LocalResourceSpawner):
    """A local process with the jupyter-tk form (entry point ``tk-local``); see local_process."""

    @default("inventory_class")
    def _default_inventory_class(self):
        return LocalInventory

    def apply_validated_options(self, options: ValidatedOptions) -> None:
        self.local_request = LocalRequest(
            cpu=options.cpu,
            memory=options.memory,
            gpu_resource=options.gpu_resource,
            gpu_count=options.gpu_count,
            image=options.image,
            image_name=options.image_name or options.image,
            profile=options.profile,
        )

    async def start(self):
        await self.load_user_options()
        return await super().start()
