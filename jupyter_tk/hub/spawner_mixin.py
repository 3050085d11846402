"""The jupyter-tk spawn form and validation as a mixin for any JupyterHub spawner.

:class:`TkSpawnerMixin` knows nothing about Kubernetes or processes. It renders the form, turns
a submitted form or deep link into validated ``user_options`` and validates them again when the
server starts (the REST API and saved options skip the form), then hands a
:class:`ValidatedOptions` to :meth:`~TkSpawnerMixin.apply_validated_options`, which each backend
(``spawner.py``) implements.
"""

from __future__ import annotations

import weakref
from typing import Any
from urllib.parse import urlsplit

from jupyterhub.spawner import Spawner
from jupyterhub.utils import url_path_join
from tornado.web import HTTPError
from traitlets import Float, List, Type, Unicode, default
from traitlets.config import LoggingConfigurable

from jupyter_tk.hub.catalog import CatalogError, ImageCatalog
from jupyter_tk.hub.form import (
    FORM_FIELDS,
    FORM_TEMPLATE,
    UNAVAILABLE_TEMPLATE,
    FormAssets,
    parse_form,
    render_template,
    submitted_choice,
)
from jupyter_tk.hub.form_view import build_form_view
from jupyter_tk.hub.handlers import snapshot_for_user
from jupyter_tk.hub.inventory import Inventory, get_inventory
from jupyter_tk.hub.policy import Policy
from jupyter_tk.hub.quantities import parse_quantity
from jupyter_tk.hub.registry import shared_instance
from jupyter_tk.hub.validation import (
    InvalidOptions,
    SpawnLimits,
    SpawnNotAllowed,
    ValidatedOptions,
    ValidationContext,
    validate_user_options,
)

__all__ = ["ShowTheForm", "TkSpawnerMixin"]


class ShowTheForm(HTTPError):
    """Not an error: tells JupyterHub's spawn page to show the form (status 200, no message)."""

    def __init__(self) -> None:
        super().__init__(200)
        self.jupyterhub_message = ""


_assets = FormAssets()
_waited_for: weakref.WeakSet[Inventory] = weakref.WeakSet()


def _shared_instance(cls: type, spawner: Spawner) -> Any:
    # Policy and catalog are per hub process, like the inventory: one file watch, one cache.
    return shared_instance(cls, config=spawner.config, log=spawner.log)


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
        its own default. Example: jupyter_tk.hub.kubernetes.inventory.KubernetesInventory
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
        if inventory not in _waited_for:
            # Only the views until the first sync after hub start wait (all that arrive together,
            # so none of them judges an empty cache); while the cluster is unreachable later
            # views render at once from the last (stale) snapshot.
            await inventory.wait_synced(timeout=self.inventory_wait_seconds)
            _waited_for.add(inventory)
        return ValidationContext(
            rule=rule,
            catalog=catalog,
            # Who holds a GPU is named only to those who may read that user's name.
            snapshot=snapshot_for_user(inventory, self.user),
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
        refused = self.__dict__.pop("_tk_refused_choice", None)
        refusal = self.__dict__.pop("_tk_refusal", "")
        linked = self.__dict__.pop("_tk_linked_choice", None)
        if linked is not None:
            notices.append(
                "A link from outside this hub chose these settings. Check them, then press "
                "Start to start the server."
            )
        last = (
            refused
            or linked
            or self.user_options
            or getattr(self.orm_spawner, "user_options", None)
            or {}
        )
        view = build_form_view(
            context=context,
            last_options=last,
            resources_url=self.resources_url(),
            refresh_seconds=self.refresh_seconds,
            notices=notices,
            refusal=refusal,
        )
        view.update(style=_assets.style, script=_assets.script)
        return render_template(FORM_TEMPLATE, view, self.form_template_paths)

    async def options_from_query(self, query_data: dict) -> dict:
        """A deep link (``/hub/spawn?image=...``): parsed and validated like the form.

        It starts the server at once only when one of the hub's own pages led here; from
        anywhere else (another site, a typed or pasted address) it opens the form filled in
        with its choices, and the user's click on Start starts it. Otherwise any page on the
        web could start (and hold) a GPU server for a logged-in user.

        A query with none of the form's fields (``?_xsrf=...`` left in the address bar after a
        refused submission) shows the form instead of starting a default server.
        """
        known = {key: value for key, value in query_data.items() if key in FORM_FIELDS}
        if not known:
            raise ShowTheForm()
        options = await self.tk_options_from_form(known)
        if not self.request_comes_from_the_hub():
            self._tk_linked_choice = options
            raise ShowTheForm()
        return options

    def request_comes_from_the_hub(self) -> bool:
        """Whether the browser says a page of this hub (same origin, under the hub's base URL)
        led to the current request: its ``Referer``. Browsers send it from the hub's pages
        (same-origin requests keep the full address under the default referrer policy) and
        never let another site forge it; no ``Referer`` counts as not from the hub."""
        handler = getattr(self, "handler", None)
        request = getattr(handler, "request", None)
        referer = request.headers.get("Referer", "") if request is not None else ""
        if not referer:
            return False
        try:
            parts = urlsplit(referer)
        except ValueError:
            return False
        hub = getattr(self, "hub", None)
        base = hub.base_url if hub is not None else "/hub/"
        return (
            parts.scheme == request.protocol
            and parts.netloc == request.host
            and parts.path.startswith(base)
        )

    async def tk_options_from_form(self, form_data: dict) -> dict:
        """Form data or deep-link query -> canonical ``user_options``; InvalidOptions if bad.

        Free of side effects: it reads the policy, catalog and inventory, and changes nothing.
        Checking here (not only at start) makes a bad submission re-render the form with the
        message at once, before any spawn begins.
        """
        try:
            options = parse_form(form_data)
            context = await self.validation_context()
            return validate_user_options(options, context).user_options()
        except InvalidOptions as e:
            # JupyterHub re-renders the form right after this refusal: show what was sent,
            # not the last spawn's options, and the reason by the Start button too.
            self._tk_refused_choice = submitted_choice(form_data)
            self._tk_refusal = str(e)
            raise

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
