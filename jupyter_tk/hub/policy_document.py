"""The policy document: its frozen data model and a strict parser with path-precise errors.

Pure functions, no I/O except :func:`load_policy_file`. Every error is a :class:`PolicyError`
whose message starts with the path of the offending key, e.g. ``rules[1].max.memory: ...``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from fnmatch import fnmatchcase
from typing import Any

import yaml

from jupyter_tk.hub.image_reference import ImageReference, normalize_registry, parse_image_reference
from jupyter_tk.hub.quantities import parse_quantity

__all__ = [
    "CUSTOM_PROFILE",
    "CustomImages",
    "PolicyDocument",
    "PolicyError",
    "PolicyRule",
    "Preset",
    "ResourceCaps",
    "load_policy_file",
    "parse_policy",
]

#: The form's profile value for a free choice; no preset may take this slug.
CUSTOM_PROFILE = "custom"
#: Largest policy file read; a policy is a few kilobytes, anything near this is a mistake.
MAX_POLICY_FILE_BYTES = 1024 * 1024

_SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", re.ASCII)
# Kubernetes extended resource names: an optional DNS prefix and a name (nvidia.com/mig-1g.10gb).
_RESOURCE_RE = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*/)?"
    r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,61}[A-Za-z0-9])?",
    re.ASCII,
)
_MATCH_ALL = "*"
# A trait name as KubeSpawner spells them; no leading "_" (private attributes).
_TRAIT_RE = re.compile(r"[a-z][a-z0-9_]{0,63}", re.ASCII)
_MESSAGE_LENGTH_MAX = 500


class PolicyError(ValueError):
    """The policy document is invalid; the message names the offending key."""


@dataclass(frozen=True)
class ResourceCaps:
    """Per-server maximums: ``cpu`` in cores, ``memory`` in bytes, ``gpus`` as a count.

    ``gpus`` counts any GPU resource, MIG slices included.
    """

    cpu: float
    memory: int
    gpus: int

    def covers(self, cpu: float, memory: int, gpus: int) -> bool:
        """Whether a request of ``cpu`` cores, ``memory`` bytes and ``gpus`` GPUs is within caps."""
        return cpu <= self.cpu and memory <= self.memory and gpus <= self.gpus


@dataclass(frozen=True)
class CustomImages:
    """Whether users may type their own image, and from which registries (``"*"``: any)."""

    allowed: bool = False
    registries: tuple[str, ...] = ()


@dataclass(frozen=True)
class Preset:
    """A quick choice on the form: ``cpu`` in cores, ``memory`` in bytes, optional GPUs."""

    slug: str
    display_name: str
    description: str
    cpu: float
    memory: int
    gpu_resource: str | None = None
    gpu_count: int = 0
    #: Spawner traits this preset sets (``kubespawner_override`` in the file): volumes,
    #: environment, node_selector, ... Only the policy file sets them, never a user.
    spawner_overrides: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class PolicyRule:
    """One rule of the policy; ``presets`` holds only the presets within ``max``."""

    groups: tuple[str, ...]
    max: ResourceCaps
    images: tuple[str, ...] = (_MATCH_ALL,)
    custom_images: CustomImages = CustomImages()
    nodes: tuple[str, ...] = (_MATCH_ALL,)
    presets: tuple[Preset, ...] = ()
    #: Shown on the form to users of this rule, e.g. "For GPU access, please contact your
    #: administrator."; empty for none.
    message: str = ""

    def matches(self, user_groups: Iterable[str]) -> bool:
        """Whether this rule applies to a user in ``user_groups``."""
        return _MATCH_ALL in self.groups or not set(self.groups).isdisjoint(user_groups)

    def allows_image(self, name: str) -> bool:
        """Whether the catalog image called ``name`` may be used (globs, case-sensitive)."""
        return any(fnmatchcase(name, pattern) for pattern in self.images)

    def allows_node(self, name: str) -> bool:
        """Whether the user may pick the node called ``name`` (globs, case-sensitive)."""
        return any(fnmatchcase(name, pattern) for pattern in self.nodes)

    def allows_registry(self, ref: ImageReference | str) -> bool:
        """Whether a custom image ``ref`` may be used: custom images allowed, registry listed.

        ``ref`` is an :class:`ImageReference` or a reference string; an invalid string is not
        allowed. Registries compare exactly (host and port), case-insensitively; bare names
        such as ``ubuntu`` are on ``docker.io``.
        """
        if not self.custom_images.allowed:
            return False
        try:
            if isinstance(ref, str):
                ref = parse_image_reference(ref)
            registry = normalize_registry(ref.registry)
        except ValueError:
            return False
        registries = self.custom_images.registries
        return _MATCH_ALL in registries or registry in registries

    def preset(self, slug: str) -> Preset | None:
        """The preset called ``slug`` if this rule offers it."""
        return next((preset for preset in self.presets if preset.slug == slug), None)


@dataclass(frozen=True)
class PolicyDocument:
    """A whole parsed policy; ``presets`` are all presets, before any rule's filtering."""

    rules: tuple[PolicyRule, ...]
    presets: tuple[Preset, ...]
    source: str


def load_policy_file(path: str, *, default_presets: Sequence[Any] = ()) -> PolicyDocument:
    """Read and parse a policy file (JSON when the name ends in ``.json``, else YAML).

    ``default_presets`` apply when the file has no ``presets`` key. Raises PolicyError.
    """
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_POLICY_FILE_BYTES + 1)
    except OSError as e:
        raise PolicyError(f"policy file {path} cannot be read: {e.strerror or e}") from e
    if len(raw) > MAX_POLICY_FILE_BYTES:
        raise PolicyError(f"policy file {path} is larger than {MAX_POLICY_FILE_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
        data = json.loads(text) if path.endswith(".json") else yaml.safe_load(text)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as e:
        raise PolicyError(f"policy file {path} is not valid {_format_name(path)}: {e}") from e
    if data is None:
        raise PolicyError(f"policy file {path} is empty")
    if isinstance(data, Mapping) and "presets" not in data:
        data = {**data, "presets": list(default_presets)}
    try:
        return parse_policy(data, source=path)
    except PolicyError as e:
        raise PolicyError(f"policy file {path}: {e}") from e


def parse_policy(data: Any, *, source: str = "<policy>") -> PolicyDocument:
    """Parse a policy document (``{"rules": [...], "presets": [...]}``); raises PolicyError."""
    _check_keys(data, "", required={"rules"}, optional={"presets"})
    presets = _parse_presets(data.get("presets") or [], "presets")
    by_slug = {preset.slug: preset for preset in presets}
    rules_data = _list(data["rules"], "rules")
    if not rules_data:
        raise PolicyError("rules: at least one rule is needed")
    rules = tuple(
        _parse_rule(item, f"rules[{index}]", by_slug) for index, item in enumerate(rules_data)
    )
    return PolicyDocument(rules=rules, presets=presets, source=source)


# -- parts -------------------------------------------------------------------------------------


def _parse_rule(data: Any, path: str, presets_by_slug: Mapping[str, Preset]) -> PolicyRule:
    _check_keys(
        data,
        path,
        required={"groups", "max"},
        optional={"images", "custom_images", "nodes", "presets", "message"},
    )
    groups = _strings(data["groups"], f"{path}.groups", non_empty=True)
    caps = _parse_caps(data["max"], f"{path}.max")
    images = _strings(data.get("images", [_MATCH_ALL]), f"{path}.images")
    nodes = _strings(data.get("nodes", [_MATCH_ALL]), f"{path}.nodes")
    custom = _parse_custom_images(data.get("custom_images", {}), f"{path}.custom_images")
    message = _text(data.get("message", ""), f"{path}.message").strip()
    if len(message) > _MESSAGE_LENGTH_MAX:
        raise PolicyError(f"{path}.message: longer than {_MESSAGE_LENGTH_MAX} characters")

    if "presets" in data:
        slugs = _strings(data["presets"], f"{path}.presets")
        for index, slug in enumerate(slugs):
            if slug not in presets_by_slug:
                raise PolicyError(f"{path}.presets[{index}]: no preset has the slug {slug!r}")
        offered = [presets_by_slug[slug] for slug in slugs]
    else:
        offered = list(presets_by_slug.values())
    # Presets over this rule's caps would only produce a refusal at submit, so they are not shown.
    within_caps = tuple(p for p in offered if caps.covers(p.cpu, p.memory, p.gpu_count))
    return PolicyRule(
        groups=groups,
        max=caps,
        images=images,
        custom_images=custom,
        nodes=nodes,
        presets=within_caps,
        message=message,
    )


def _parse_caps(data: Any, path: str) -> ResourceCaps:
    _check_keys(data, path, required={"cpu", "memory"}, optional={"gpus"})
    return ResourceCaps(
        cpu=_cpu(data["cpu"], f"{path}.cpu"),
        memory=_memory(data["memory"], f"{path}.memory"),
        gpus=_count(data.get("gpus", 0), f"{path}.gpus"),
    )


def _parse_custom_images(data: Any, path: str) -> CustomImages:
    _check_keys(data, path, required=set(), optional={"allowed", "registries"})
    allowed = data.get("allowed", False)
    if not isinstance(allowed, bool):
        raise PolicyError(f"{path}.allowed: expected true or false, got {allowed!r}")
    entries = _strings(data.get("registries", []), f"{path}.registries")
    registries = []
    for index, entry in enumerate(entries):
        if entry == _MATCH_ALL:
            registries.append(entry)
            continue
        try:
            registries.append(normalize_registry(entry))
        except ValueError as e:
            raise PolicyError(f"{path}.registries[{index}]: {e}") from e
    if allowed and not registries:
        raise PolicyError(
            f"{path}.registries: list the registries custom images may come from "
            '(e.g. [nvcr.io, "localhost:5000"]), or ["*"] for any registry'
        )
    return CustomImages(allowed=allowed, registries=tuple(registries))


def _parse_presets(data: Any, path: str) -> tuple[Preset, ...]:
    presets: list[Preset] = []
    seen: set[str] = set()
    for index, item in enumerate(_list(data, path)):
        item_path = f"{path}[{index}]"
        _check_keys(
            item,
            item_path,
            required={"slug", "cpu", "memory"},
            optional={"display_name", "description", "gpu", "kubespawner_override"},
        )
        slug = item["slug"]
        if not isinstance(slug, str) or not _SLUG_RE.fullmatch(slug):
            raise PolicyError(
                f"{item_path}.slug: {slug!r} is not a slug (lowercase letters, digits and '-', "
                "at most 63 characters)"
            )
        if slug == CUSTOM_PROFILE:
            raise PolicyError(f"{item_path}.slug: {CUSTOM_PROFILE!r} is reserved for free choices")
        if slug in seen:
            raise PolicyError(f"{item_path}.slug: {slug!r} is used by an earlier preset")
        seen.add(slug)
        gpu_resource, gpu_count = _parse_preset_gpu(item.get("gpu"), f"{item_path}.gpu")
        cpu = _cpu(item["cpu"], f"{item_path}.cpu")
        memory = _memory(item["memory"], f"{item_path}.memory")
        if cpu <= 0:
            raise PolicyError(f"{item_path}.cpu: a preset needs more than 0 cores")
        if memory <= 0:
            raise PolicyError(f"{item_path}.memory: a preset needs more than 0 bytes")
        presets.append(
            Preset(
                slug=slug,
                display_name=_text(item.get("display_name", slug), f"{item_path}.display_name"),
                description=_text(item.get("description", ""), f"{item_path}.description"),
                cpu=cpu,
                memory=memory,
                gpu_resource=gpu_resource,
                gpu_count=gpu_count,
                spawner_overrides=_parse_overrides(
                    item.get("kubespawner_override", {}), f"{item_path}.kubespawner_override"
                ),
            )
        )
    return tuple(presets)


def _parse_overrides(data: Any, path: str) -> dict[str, Any]:
    """Spawner trait name -> value. Names only: which traits exist is the spawner's to say
    (KubeSpawner refuses an unknown one when it applies them), values are taken as written."""
    if not isinstance(data, Mapping):
        raise PolicyError(
            f"{path}: expected a mapping of spawner trait to value, got {_kind(data)}"
        )
    for name in data:
        if not isinstance(name, str) or not _TRAIT_RE.fullmatch(name):
            raise PolicyError(
                f"{path}: {name!r} is not a spawner trait name (e.g. volumes, environment, "
                "node_selector)"
            )
    try:
        # Plain JSON values only, copied, so nothing outside the policy can change them.
        return json.loads(json.dumps(dict(data), allow_nan=False))
    except (TypeError, ValueError) as e:
        raise PolicyError(f"{path}: values must be plain JSON data ({e})") from None


def _parse_preset_gpu(data: Any, path: str) -> tuple[str | None, int]:
    if data is None:
        return None, 0
    _check_keys(data, path, required={"resource", "count"}, optional=set())
    resource, count = data["resource"], _count(data["count"], f"{path}.count")
    if not isinstance(resource, str) or not _RESOURCE_RE.fullmatch(resource):
        raise PolicyError(
            f"{path}.resource: {resource!r} is not a Kubernetes resource name "
            "(e.g. nvidia.com/gpu or nvidia.com/mig-1g.10gb)"
        )
    return (resource, count) if count else (None, 0)


# -- scalar helpers ----------------------------------------------------------------------------


def _check_keys(data: Any, path: str, *, required: set[str], optional: set[str]) -> None:
    if not isinstance(data, Mapping):
        where = f"{path}: expected" if path else "the policy must be"
        raise PolicyError(f"{where} a mapping, got {_kind(data)}")
    allowed = required | optional
    for key in data:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            raise PolicyError(
                f"{path + '.' if path else ''}{key}: unknown key (expected {expected})"
            )
    for key in sorted(required):
        if key not in data:
            raise PolicyError(f"{path + '.' if path else ''}{key}: required")


def _list(data: Any, path: str) -> list[Any]:
    if not isinstance(data, list | tuple):
        raise PolicyError(f"{path}: expected a list, got {_kind(data)}")
    return list(data)


def _strings(data: Any, path: str, *, non_empty: bool = False) -> tuple[str, ...]:
    items = _list(data, path)
    if non_empty and not items:
        raise PolicyError(f"{path}: expected at least one entry")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not item:
            raise PolicyError(f"{path}[{index}]: expected a non-empty string, got {item!r}")
    return tuple(items)


def _text(data: Any, path: str) -> str:
    if not isinstance(data, str):
        raise PolicyError(f"{path}: expected a string, got {_kind(data)}")
    return data


def _quantity(data: Any, path: str) -> Decimal:
    # bool is an int in Python; "cpu: yes" in YAML must not become 1 core.
    if isinstance(data, bool) or not isinstance(data, str | int | float):
        raise PolicyError(f"{path}: expected a number or a quantity string, got {_kind(data)}")
    try:
        value = parse_quantity(data)
    except ValueError as e:
        raise PolicyError(f"{path}: {e}") from e
    if not value.is_finite():
        raise PolicyError(f"{path}: {data!r} is not a finite amount")
    if value < 0:
        raise PolicyError(f"{path}: {data!r} is negative")
    return value


def _cpu(data: Any, path: str) -> float:
    cores = float(_quantity(data, path))
    if not math.isfinite(cores):
        raise PolicyError(f"{path}: {data!r} is too large")
    return cores


def _memory(data: Any, path: str) -> int:
    # Kubernetes rounds fractional bytes up; so do we.
    return math.ceil(_quantity(data, path))


def _count(data: Any, path: str) -> int:
    if isinstance(data, bool) or not isinstance(data, int | float):
        raise PolicyError(f"{path}: expected a whole number, got {_kind(data)}")
    if isinstance(data, float) and not data.is_integer():
        raise PolicyError(f"{path}: expected a whole number, got {data!r}")
    if data < 0:
        raise PolicyError(f"{path}: {data!r} is negative")
    return int(data)


def _kind(data: Any) -> str:
    if data is None:
        return "nothing (null)"
    if isinstance(data, str):
        return f"the string {data[:60]!r}"
    return f"{type(data).__name__} {data!r}"[:80]


def _format_name(path: str) -> str:
    return "JSON" if path.endswith(".json") else "YAML"
