"""Which folders of this server last, from ``$JUPYTER_TK_STORAGE`` (set by the spawner).

The hub's StorageLayout (hub/kubernetes/storage.py) passes ``{"<absolute folder>": "<tier>"}``;
this turns it into folders relative to the server's root, as JupyterLab's file browser names
them. Folders outside the root are left out; without the variable (one machine, no layout)
there are no folders and Lab shows nothing.
"""

from __future__ import annotations

import json
import os
import posixpath
from typing import Any

__all__ = ["STORAGE_ENV", "TIERS", "StorageConfigError", "storage_folders"]

STORAGE_ENV = "JUPYTER_TK_STORAGE"
TIERS = ("persistent", "shared", "read-only", "ephemeral")


class StorageConfigError(ValueError):
    """``$JUPYTER_TK_STORAGE`` is not what the spawner writes."""


def _parse(text: str) -> dict[str, str]:
    try:
        document: Any = json.loads(text)
    except ValueError as error:
        raise StorageConfigError(f"${STORAGE_ENV} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise StorageConfigError(f"${STORAGE_ENV} must be an object of folder -> tier")
    for path, tier in document.items():
        if not path.startswith("/"):
            raise StorageConfigError(f"${STORAGE_ENV}: {path!r} is not an absolute path")
        if tier not in TIERS:
            raise StorageConfigError(
                f"${STORAGE_ENV}: {path!r} has tier {tier!r}, not one of {list(TIERS)}"
            )
    return document


def storage_folders(root_dir: str, environ: dict[str, str] | None = None) -> list[dict]:
    """``[{"path": "<relative to root_dir, "" for the root>", "tier": ...}]``, outermost first.

    Raises StorageConfigError when the variable is malformed.
    """
    text = (os.environ if environ is None else environ).get(STORAGE_ENV, "").strip()
    if not text:
        return []
    root = os.path.realpath(os.path.expanduser(root_dir))
    inside: dict[str, str] = {}
    # Folders that contain the root: the innermost one is the root's own tier.
    around: list[tuple[int, str]] = []
    for path, tier in _parse(text).items():
        # Both sides resolved: the root may be reached through a link.
        folder = os.path.realpath(path)
        if folder == root or folder.startswith(root.rstrip("/") + "/"):
            relative = posixpath.relpath(folder, root)
            inside["" if relative == "." else relative] = tier
        elif root.startswith(folder.rstrip("/") + "/"):
            around.append((folder.count("/"), tier))
    if around and "" not in inside:
        inside[""] = max(around)[1]
    folders = [{"path": path, "tier": tier} for path, tier in inside.items()]
    return sorted(folders, key=lambda f: (f["path"].count("/") if f["path"] else -1, f["path"]))
