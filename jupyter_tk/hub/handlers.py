"""Hub REST endpoints of jupyter-tk, registered with `c.JupyterHub.extra_handlers`."""

from __future__ import annotations

import asyncio
import secrets

from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from jupyter_tk.hub.inventory import Inventory, get_inventory

__all__ = ["ResourcesHandler", "tk_extra_handlers"]

# Versions restart at 0 with the hub: this tag keeps an ETag from before a restart from
# matching a different snapshot after it.
_PROCESS_TAG = secrets.token_hex(4)


class ResourcesHandler(APIHandler):
    """GET /hub/api/tk/resources: per-node availability from the shared inventory cache."""

    def initialize(self, inventory_class: type[Inventory]) -> None:
        self.inventory_class = inventory_class

    def _inventory(self) -> Inventory:
        return get_inventory(self.inventory_class, config=self.config, log=self.log)

    def get(self) -> None:
        # Any logged-in user or service may look: the data is cluster-wide, not anyone's own.
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        inventory = self._inventory()
        etag = f'"{inventory.source}-{_PROCESS_TAG}-{inventory.version}"'
        self.set_header("Cache-Control", "no-cache")
        self.set_header("ETag", etag)
        known = _etags(self.request.headers.get("If-None-Match", ""))
        if etag in known or "*" in known:
            self.set_status(304)
            return
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.write(inventory.snapshot_json())

    def compute_etag(self) -> None:
        # The ETag comes from the inventory version above, not from hashing the body.
        return None


def _etags(header: str) -> set[str]:
    tags = set()
    for tag in header.split(","):
        tag = tag.strip()
        tags.add(tag[2:] if tag.startswith("W/") else tag)
    return tags


def tk_extra_handlers(inventory_class: type[Inventory]) -> list[tuple]:
    """Routes to add to `c.JupyterHub.extra_handlers` (paths relative to the hub prefix).

    Also schedules the inventory to start as soon as the hub has loaded its configuration, so
    the first page view already finds a synced cache.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        loop.call_soon(_start_with_hub_config, inventory_class)
    return [(r"/api/tk/resources", ResourcesHandler, {"inventory_class": inventory_class})]


def _start_with_hub_config(inventory_class: type[Inventory]) -> None:
    # Runs after the config file finished loading (JupyterHub loads it inside its event loop).
    from jupyterhub.app import JupyterHub

    if JupyterHub.initialized():
        hub = JupyterHub.instance()
        get_inventory(inventory_class, config=hub.config, log=hub.log)
