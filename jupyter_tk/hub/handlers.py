"""Hub REST endpoints of jupyter-tk (routed into the hub by ``jupyter_tk.hub.setup``).

``GET /hub/api/tk/resources`` answers with the shared inventory's snapshot (the contract:
``jupyter_tk.hub.contract.ResourcesSnapshot``). It needs the custom scope `RESOURCES_SCOPE`,
which ``setup_hub`` grants to JupyterHub's ``user`` role; who holds a device (``taken_by``) is
shown only to callers that may read that user's name (``read:users:name``), others see
`OTHER_USER`.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Collection
from typing import Any

from jupyterhub import scopes
from jupyterhub.apihandlers.base import APIHandler
from tornado import web

from jupyter_tk.hub.inventory import Inventory, get_inventory

__all__ = [
    "OTHER_USER",
    "RESOURCES_ROUTE",
    "RESOURCES_SCOPE",
    "ResourcesHandler",
    "hidden_holders",
    "redact_holders",
    "snapshot_for_user",
]

#: The custom scope that lets a user, service or token read `/hub/api/tk/resources`.
RESOURCES_SCOPE = "custom:jupyter-tk:resources"
#: The route of the snapshot, relative to the hub prefix.
RESOURCES_ROUTE = r"/api/tk/resources"
#: What a caller sees in ``taken_by`` instead of a user name it may not read.
OTHER_USER = "another user"

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
        if self.current_user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        # Checked here, not with @needs_scope: a custom scope exists only once the hub has
        # loaded its configuration, after this module was imported.
        if not self.has_scope(RESOURCES_SCOPE):
            raise web.HTTPError(
                403, f"Reading the free resources needs the scope {RESOURCES_SCOPE}."
            )
        inventory = self._inventory()
        hidden = sorted(
            hidden_holders(inventory, lambda name: self.has_scope(_read_name_scope(name)))
        )
        # The body depends on the snapshot version and on which names this caller may not see.
        etag = f"{inventory.source}-{_PROCESS_TAG}-{inventory.version}"
        if hidden:
            etag += "-" + hashlib.sha256("\0".join(hidden).encode()).hexdigest()[:12]
        etag = f'"{etag}"'
        self.set_header("Cache-Control", "no-cache")
        self.set_header("ETag", etag)
        known = _etags(self.request.headers.get("If-None-Match", ""))
        if etag in known or "*" in known:
            self.set_status(304)
            return
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        if not hidden:
            self.write(inventory.snapshot_json())
            return
        snapshot = inventory.snapshot()
        snapshot["nodes"] = redact_holders(snapshot["nodes"], frozenset(hidden).__contains__)
        self.write(snapshot)

    def compute_etag(self) -> None:
        # The ETag comes from the inventory version above, not from hashing the body.
        return None


def hidden_holders(inventory: Inventory, may_read: Callable[[str], bool]) -> frozenset[str]:
    """The names in the inventory's ``taken_by`` lists that `may_read` refuses."""
    return frozenset(name for name in inventory.holder_names() if not may_read(name))


def snapshot_for_user(inventory: Inventory, user: Any) -> dict:
    """The inventory's snapshot as `user` (a ``jupyterhub.user.User``) may see it: the names of
    holders that user may not read replaced by `OTHER_USER` (what the spawn form renders)."""
    snapshot = inventory.snapshot()
    if not inventory.holder_names():
        return snapshot
    have = scopes.parse_scopes(scopes.get_scopes_for(user.orm_user))
    hidden = hidden_holders(
        inventory, lambda name: scopes.has_scope(_read_name_scope(name), have, db=user.db)
    )
    if hidden:
        snapshot["nodes"] = redact_holders(snapshot["nodes"], hidden.__contains__)
    return snapshot


def _read_name_scope(name: str) -> str:
    return f"read:users:name!user={name}"


def redact_holders(nodes: list[dict], hide: Callable[[str], bool]) -> list[dict]:
    """`nodes` with each ``taken_by`` name for which `hide(name)` is true replaced by
    `OTHER_USER`. Rows without such a name are returned as they are (shared, not copied)."""
    shown = []
    for node in nodes:
        gpus = [_redacted_kind(kind, hide) for kind in node.get("gpus") or ()]
        if any(new is not old for new, old in zip(gpus, node.get("gpus") or (), strict=True)):
            node = {**node, "gpus": gpus}
        shown.append(node)
    return shown


def _redacted_kind(kind: dict, hide: Callable[[str], bool]) -> dict:
    devices = kind.get("devices")
    if not isinstance(devices, list) or not any(
        hide(name) for device in devices for name in device.get("taken_by") or ()
    ):
        return kind
    return {
        **kind,
        "devices": [
            {**device, "taken_by": _names(device.get("taken_by") or (), hide)} for device in devices
        ],
    }


def _names(names: Collection[str], hide: Callable[[str], bool]) -> list[str]:
    return [OTHER_USER if hide(name) else name for name in names]


def _etags(header: str) -> set[str]:
    tags = set()
    for tag in header.split(","):
        tag = tag.strip()
        tags.add(tag[2:] if tag.startswith("W/") else tag)
    return tags
