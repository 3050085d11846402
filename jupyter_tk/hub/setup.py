"""One call wires jupyter-tk into a JupyterHub config (docs/wiring.md)::

    c = get_config()
    from jupyter_tk.hub.setup import setup_hub

    setup_hub(c, backend="local")  # or "kubernetes"

It names the backend once: the spawner comes from it, and the spawner class names its own
inventory (its ``inventory_class``), which the form, validation and ``/hub/api/tk/resources``
share through one registry (``jupyter_tk.hub.registry``). It also defines the scope that guards
the resources endpoint and grants it to every user.

The endpoint lives in the hub process because the inventory does: a JupyterHub service would
run in another process (or behind its own login) with a second watch of the cluster. It is
routed in when JupyterHub builds its routes (`add_hub_routes`), not through
``c.JupyterHub.extra_handlers``, which JupyterHub deprecates (docs/wiring.md says why and how).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from typing import Any

from traitlets.utils.importstring import import_item

from jupyter_tk.hub.handlers import RESOURCES_ROUTE, RESOURCES_SCOPE, ResourcesHandler
from jupyter_tk.hub.inventory import Inventory, get_inventory

__all__ = ["BACKENDS", "add_hub_routes", "configured_inventory_class", "setup_hub"]

#: Backend name -> the spawner (a ``jupyterhub.spawners`` entry point of this package).
BACKENDS = {"kubernetes": "tk-kubernetes", "local": "tk-local"}

Routes = Sequence[tuple]


def setup_hub(c: Any, backend: str, *, grant_resources_to_users: bool = True) -> None:
    """Wire jupyter-tk into the JupyterHub config `c` for `backend` (``"kubernetes"`` or
    ``"local"``).

    Sets ``c.JupyterHub.spawner_class``; defines the custom scope `RESOURCES_SCOPE` and, with
    `grant_resources_to_users`, adds it to the ``user`` role (``extra_user_scopes``); routes
    ``/hub/api/tk/resources`` into the hub and starts the inventory as the hub starts, so the
    first form already finds a synced cache. Everything else stays configurable after the call
    (``c.TkKubeSpawner.*``, ``c.KubernetesInventory.*``, ``c.Policy.*``, roles, ...).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(sorted(BACKENDS))}, not {backend!r}")
    c.JupyterHub.spawner_class = BACKENDS[backend]
    c.JupyterHub.custom_scopes.update(
        {
            RESOURCES_SCOPE: {
                "description": "Read the free resources of every node (GET /hub/api/tk/resources)."
            }
        }
    )
    if grant_resources_to_users:
        _grant_to_users(c, RESOURCES_SCOPE)
    add_hub_routes(c, _resources_routes)


def add_hub_routes(c: Any, routes: Routes | Callable[[Any], Routes]) -> None:
    """Serve `routes` (tornado rules, paths relative to the hub prefix) from the hub loading `c`.

    `routes` may be a function of the `JupyterHub` application, called once the whole
    configuration is loaded, when the hub builds its routes. The rules (or the function) are
    kept in ``c.JupyterTk.hub_routes``, where a test of a config can find them; a starting hub
    serves them ahead of its own.
    """
    if callable(routes):
        c.JupyterTk.hub_routes.append(routes)
    else:
        c.JupyterTk.hub_routes.extend(routes)
    hub = _loading_hub()
    if hub is not None and hub not in _routed_hubs:
        _routed_hubs.add(hub)
        hub.observe(_add_routes, names="handlers")


# Hubs whose route building `_add_routes` observes (one hub per process, in practice).
_routed_hubs: weakref.WeakSet = weakref.WeakSet()


def _add_routes(change: dict) -> None:
    hub = change["owner"]
    entries = hub.config.JupyterTk.get("hub_routes", [])
    if hasattr(entries, "get_value"):  # only appended to, never set: still a lazy value
        entries = entries.get_value([])
    made = []
    for entry in entries:
        made.extend(entry(hub) if callable(entry) else [entry])
    # Ahead of the hub's own rules, whose last ones answer 404 for every unknown path.
    change["new"][:0] = hub.add_url_prefix(hub.hub_prefix, made)


def configured_inventory_class(spawner_class: type, config: Any) -> type[Inventory]:
    """The inventory class spawners of `spawner_class` use under `config`: the most specific
    config section that sets ``inventory_class`` (as traitlets resolves it), else the class's
    own default."""
    for klass in spawner_class.mro():
        section = config.get(klass.__name__, {})
        if "inventory_class" in section:
            value = section["inventory_class"]
            break
    else:
        trait = spawner_class.class_traits().get("inventory_class")
        if trait is None:
            raise TypeError(
                f"{spawner_class.__name__} is not a jupyter-tk spawner (no inventory_class): "
                f"use setup_hub's backends {', '.join(sorted(BACKENDS))}"
            )
        value = trait.default_value
    return import_item(value) if isinstance(value, str) else value


def _resources_routes(hub: Any) -> Routes:
    inventory_class = configured_inventory_class(hub.spawner_class, hub.config)
    # Started now, inside the hub's event loop, so the first page view finds a synced cache.
    get_inventory(inventory_class, config=hub.config, log=hub.log)
    return [(RESOURCES_ROUTE, ResourcesHandler, {"inventory_class": inventory_class})]


def _grant_to_users(c: Any, scope: str) -> None:
    from jupyterhub.app import JupyterHub

    if "extra_user_scopes" in JupyterHub.class_traits():  # JupyterHub 6 and later
        c.JupyterHub.extra_user_scopes.add(scope)
    else:
        # JupyterHub 5: the user role redefined with its one default scope plus ours.
        c.JupyterHub.load_roles.append({"name": "user", "scopes": ["self", scope]})


def _loading_hub() -> Any:
    """The JupyterHub application loading this configuration, or None."""
    from jupyterhub.app import JupyterHub

    return JupyterHub.instance() if JupyterHub.initialized() else None
