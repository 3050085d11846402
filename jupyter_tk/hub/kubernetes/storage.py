"""Where users' files live in a notebook pod, and how long they last.

A site describes its folders once, in ``c.StorageLayout.folders`` (paths relative to the home
folder, each with a *tier*); :meth:`StorageLayout.pod_storage` turns that into what KubeSpawner
puts in the pod: volumes, volume mounts, an init container that creates each user's own
subdirectory (as the user, never as root), and two environment variables. One of them,
``JUPYTER_TK_STORAGE``, tells the single-user server which folder has which tier, so JupyterLab
can show it and warn before work is saved where it will be lost with the pod.

Tiers:

- ``persistent``: the user's own files, kept across servers (a per-user subdirectory of a claim).
- ``shared``: a claim everyone (or a team) reads and writes, kept.
- ``read-only``: a claim mounted read only (e.g. the examples repository).
- ``ephemeral``: an ``emptyDir``, deleted with the pod. The home folder, when it is not a folder
  of the layout, is the container's own filesystem and is reported as ephemeral too.
"""

from __future__ import annotations

import json
import posixpath
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from traitlets import Dict, List, TraitError, Unicode, validate
from traitlets.config import LoggingConfigurable

__all__ = [
    "STORAGE_ENV",
    "TIERS",
    "USER_DIR_ENV",
    "PodStorage",
    "StorageFolder",
    "StorageLayout",
    "parse_folder",
    "safe_user_dir",
]

TIERS = ("persistent", "shared", "read-only", "ephemeral")
# Read by jupyter_tk.server.storage in the notebook container.
STORAGE_ENV = "JUPYTER_TK_STORAGE"
# The user's subdirectory name, expanded by Kubernetes in ``subPathExpr: $(...)``.
USER_DIR_ENV = "JUPYTER_TK_STORAGE_USER"
INIT_CONTAINER_NAME = "tk-storage-init"
# Where the init container sees the volumes it prepares.
INIT_MOUNT_ROOT = "/tk-storage"
# Jupyter Docker Stacks' jovyan, used when KubeSpawner's uid/gid are not plain numbers.
DEFAULT_UID = 1000
DEFAULT_GID = 100

_FOLDER_KEYS = {"path", "tier", "claim", "sub_path", "per_user", "size_limit", "medium"}
# One path component: no "/", never "." or "..", nothing a shell or Kubernetes treats specially.
_COMPONENT_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_USER_DIR_RE = re.compile(r"[a-z0-9]([a-z0-9._-]*[a-z0-9])?")
_CLAIM_RE = re.compile(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
_QUANTITY_RE = re.compile(r"[0-9]+(\.[0-9]+)?([KMGTPE]i?|[kmu]|e[0-9]+)?")


@dataclass(frozen=True)
class StorageFolder:
    """One folder of the layout, validated. ``path`` is relative to home ("." is home)."""

    path: str
    tier: str
    claim: str | None = None
    sub_path: str = ""
    per_user: bool = False
    size_limit: str | None = None
    medium: str = ""


@dataclass
class PodStorage:
    """What one pod gets: KubeSpawner trait values (plain Kubernetes dicts) and environment."""

    volumes: list[dict] = field(default_factory=list)
    volume_mounts: list[dict] = field(default_factory=list)
    init_containers: list[dict] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)


def _relative_path(value: Any, what: str, *, allow_home: bool) -> str:
    """A path below home (or home itself, "."), every component plain: never escapes."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty path relative to the home folder")
    path = value.strip().strip("/") if not value.startswith("/") else None
    if path is None:
        raise ValueError(f"{what} {value!r} must be relative to the home folder, not absolute")
    if path in ("", "."):
        if allow_home:
            return "."
        raise ValueError(f"{what} {value!r} must name a folder below the home folder")
    for component in path.split("/"):
        if not _COMPONENT_RE.fullmatch(component):
            raise ValueError(
                f"{what} {value!r}: {component!r} is not a plain folder name (letters, digits,"
                " '.', '_', '-'; not starting with '.' or '-')"
            )
    return path


def parse_folder(entry: Any) -> StorageFolder:
    """Validate one ``c.StorageLayout.folders`` entry; ValueError says what is wrong."""
    if not isinstance(entry, Mapping):
        raise ValueError(f"a storage folder must be an object, got {entry!r}")
    unknown = set(entry) - _FOLDER_KEYS
    if unknown:
        raise ValueError(
            f"storage folder {entry.get('path')!r}: unknown keys {sorted(unknown)}"
            f" (known: {sorted(_FOLDER_KEYS)})"
        )
    path = _relative_path(entry.get("path"), "storage folder path", allow_home=True)
    tier = entry.get("tier")
    if tier not in TIERS:
        raise ValueError(
            f"storage folder {path!r}: tier must be one of {list(TIERS)}, got {tier!r}"
        )
    claim = entry.get("claim")
    if claim is not None and (not isinstance(claim, str) or not _CLAIM_RE.fullmatch(claim)):
        raise ValueError(f"storage folder {path!r}: claim {claim!r} is not a PVC name")
    if (claim is None) != (tier == "ephemeral"):
        raise ValueError(
            f"storage folder {path!r}: an ephemeral folder is an emptyDir (no 'claim'); the"
            " other tiers need a 'claim' (a PersistentVolumeClaim in the notebook namespace)"
        )
    sub_path = entry.get("sub_path") or ""
    if sub_path:
        sub_path = _relative_path(sub_path, f"storage folder {path!r}: sub_path", allow_home=False)
    per_user = entry.get("per_user", False)
    if not isinstance(per_user, bool):
        raise ValueError(f"storage folder {path!r}: per_user must be true or false")
    if per_user and tier not in ("persistent", "shared"):
        raise ValueError(f"storage folder {path!r}: per_user needs a persistent or shared claim")
    size_limit = entry.get("size_limit")
    if size_limit is not None:
        size_limit = str(size_limit)
        if claim is not None or not _QUANTITY_RE.fullmatch(size_limit):
            raise ValueError(
                f"storage folder {path!r}: size_limit {size_limit!r} must be a Kubernetes"
                " quantity (e.g. '20Gi') on an ephemeral folder"
            )
    medium = entry.get("medium") or ""
    if medium not in ("", "Memory") or (medium and claim is not None):
        raise ValueError(f"storage folder {path!r}: medium must be 'Memory' on an ephemeral folder")
    return StorageFolder(path, tier, claim, sub_path, per_user, size_limit, medium)


def safe_user_dir(name: str) -> str:
    """``name`` (KubeSpawner's slug of the user name) if it is one plain folder name.

    KubeSpawner's slugs are lowercase letters, digits and '-' already; checking again here
    means no configuration (e.g. an older slug scheme) can make a user's folder another one.
    """
    if not isinstance(name, str) or not _USER_DIR_RE.fullmatch(name) or ".." in name:
        raise ValueError(f"{name!r} cannot be a user's folder name")
    return name


def _volume_name(index: int, path: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", "home" if path == "." else path.lower()).strip("-")
    return f"tk-{index}-{slug}"[:63].rstrip("-")


class StorageLayout(LoggingConfigurable):
    """The folders of a notebook pod and their tiers (see the module docstring)."""

    folders = List(
        Dict(),
        config=True,
        help="""Folders of the notebook pod, each an object with:

        path (relative to home_dir, "." for home itself), tier ("persistent", "shared",
        "read-only" or "ephemeral"), claim (a PersistentVolumeClaim in the notebook namespace;
        none for "ephemeral", which is an emptyDir), sub_path (a folder inside the claim),
        per_user (true: each user gets <claim>/<sub_path>/<user> via subPathExpr, created
        with the user's uid/gid before the server starts), size_limit (an emptyDir's limit,
        e.g. "20Gi") and medium ("Memory" for a RAM-backed emptyDir). Empty (the default):
        nothing is mounted and JupyterLab shows no tiers. Example:
        [{"path": "Persist", "tier": "persistent", "claim": "home", "per_user": true},
         {"path": "scratch", "tier": "ephemeral", "size_limit": "20Gi"}]
        """,
    )

    links = Dict(
        Unicode(),
        config=True,
        help="""Symbolic links created in the home folder before the server starts:
        name -> target, both relative to home. Needs home ("." in folders) to be a volume,
        since the links are made there by the init container. Example: {"Save": "Persist"}
        """,
    )

    home_dir = Unicode(
        "/home/jovyan",
        config=True,
        help="""The user's home folder in the notebook image (an absolute path); folder paths
        are relative to it. Example: "/home/jovyan" (Jupyter Docker Stacks).""",
    )

    @validate("folders")
    def _validate_folders(self, proposal):
        try:
            parsed = [parse_folder(entry) for entry in proposal.value]
        except ValueError as error:
            raise TraitError(f"StorageLayout.folders: {error}") from None
        paths = [folder.path for folder in parsed]
        duplicates = sorted({p for p in paths if paths.count(p) > 1})
        if duplicates:
            raise TraitError(f"StorageLayout.folders: folders listed twice: {duplicates}")
        return proposal.value

    @validate("links")
    def _validate_links(self, proposal):
        try:
            for name, target in proposal.value.items():
                _relative_path(name, "link name", allow_home=False)
                _relative_path(target, f"link {name!r} target", allow_home=False)
        except ValueError as error:
            raise TraitError(f"StorageLayout.links: {error}") from None
        return proposal.value

    @validate("home_dir")
    def _validate_home_dir(self, proposal):
        home = proposal.value
        if not home.startswith("/") or posixpath.normpath(home) != home.rstrip("/") or home == "/":
            raise TraitError(
                f"StorageLayout.home_dir {home!r} must be an absolute, normalized folder path"
            )
        return home.rstrip("/")

    def parsed_folders(self) -> list[StorageFolder]:
        """Folders outermost first, so a folder inside home is mounted after home."""
        parsed = [parse_folder(entry) for entry in self.folders]
        return sorted(parsed, key=lambda f: 0 if f.path == "." else f.path.count("/") + 1)

    def absolute(self, path: str) -> str:
        return self.home_dir if path == "." else f"{self.home_dir}/{path}"

    def tiers(self) -> dict[str, str]:
        """Absolute folder path -> tier, what ``JUPYTER_TK_STORAGE`` carries."""
        folders = self.parsed_folders()
        if not folders:
            return {}
        tiers = {self.absolute(f.path): f.tier for f in folders}
        # Home outside the layout is the container's filesystem: gone with the pod.
        tiers.setdefault(self.home_dir, "ephemeral")
        return tiers

    def pod_storage(self, *, user_dir: str, image: str, uid: Any, gid: Any) -> PodStorage:
        """Volumes, mounts, init container and environment for one user's pod.

        ``user_dir`` is the user's folder name (KubeSpawner's slug), ``image`` the notebook
        image (the init container uses its shell, so no other image is pulled).
        """
        folders = self.parsed_folders()
        if self.links and not any(f.path == "." for f in folders):
            raise ValueError(
                "StorageLayout.links needs the home folder in StorageLayout.folders"
                ' (e.g. {"path": ".", "tier": "ephemeral"}): links are made in that volume'
            )
        if not folders:
            return PodStorage()
        user_dir = safe_user_dir(user_dir)
        storage = PodStorage()
        init_mounts: list[dict] = []
        commands = ["set -eu", "umask 0027"]
        for index, folder in enumerate(folders):
            name = _volume_name(index, folder.path)
            mount: dict[str, Any] = {"name": name, "mountPath": self.absolute(folder.path)}
            if folder.claim is None:
                empty_dir: dict[str, str] = {}
                if folder.size_limit:
                    empty_dir["sizeLimit"] = folder.size_limit
                if folder.medium:
                    empty_dir["medium"] = folder.medium
                storage.volumes.append({"name": name, "emptyDir": empty_dir})
            else:
                storage.volumes.append(
                    {
                        "name": name,
                        "persistentVolumeClaim": {
                            "claimName": folder.claim,
                            "readOnly": folder.tier == "read-only",
                        },
                    }
                )
            if folder.per_user:
                prefix = f"{folder.sub_path}/" if folder.sub_path else ""
                # Expanded by the kubelet from the container's environment, never by a shell.
                mount["subPathExpr"] = f"{prefix}$({USER_DIR_ENV})"
                # The init container sees the parent folder and makes the user's one in it.
                init_mount = {"name": name, "mountPath": f"{INIT_MOUNT_ROOT}/{name}"}
                if folder.sub_path:
                    init_mount["subPath"] = folder.sub_path
                init_mounts.append(init_mount)
                target = shlex.quote(f"{INIT_MOUNT_ROOT}/{name}/{user_dir}")
                commands.append(f"mkdir -p -- {target}")
            elif folder.sub_path:
                mount["subPath"] = folder.sub_path
            if folder.tier == "read-only":
                mount["readOnly"] = True
            storage.volume_mounts.append(mount)
            if folder.path == "." and self.links:
                init_mounts.append({"name": name, "mountPath": f"{INIT_MOUNT_ROOT}/{name}"})
                for link, target in sorted(self.links.items()):
                    where = f"{INIT_MOUNT_ROOT}/{name}/{link}"
                    if "/" in link:
                        commands.append(f"mkdir -p -- {shlex.quote(posixpath.dirname(where))}")
                    commands.append(f"ln -sfn -- {shlex.quote(target)} {shlex.quote(where)}")

        storage.environment = {
            STORAGE_ENV: json.dumps(self.tiers(), sort_keys=True),
            USER_DIR_ENV: user_dir,
        }
        if init_mounts:
            run_as_user = uid if isinstance(uid, int) and uid > 0 else DEFAULT_UID
            run_as_group = gid if isinstance(gid, int) and gid >= 0 else DEFAULT_GID
            storage.init_containers.append(
                {
                    "name": INIT_CONTAINER_NAME,
                    "image": image,
                    "command": ["sh", "-c", "\n".join(commands)],
                    "volumeMounts": init_mounts,
                    # The user's own uid/gid: their folders get the right owner, and nothing
                    # in the pod runs as root.
                    "securityContext": {
                        "runAsUser": run_as_user,
                        "runAsGroup": run_as_group,
                        "runAsNonRoot": True,
                        "allowPrivilegeEscalation": False,
                        "capabilities": {"drop": ["ALL"]},
                        # Allowed in namespaces that enforce the "restricted" Pod Security level.
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "resources": {
                        "requests": {"cpu": "10m", "memory": "16Mi"},
                        "limits": {"cpu": "500m", "memory": "64Mi"},
                    },
                }
            )
        return storage
