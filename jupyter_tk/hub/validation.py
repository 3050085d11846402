"""Turning what a user sent into a server request we are willing to start, or a clear 400.

:func:`validate_user_options` (free of side effects) checks ``user_options`` from any path
(form, deep link, REST ``POST /hub/api/users/{name}/server``, or the options saved from the
last spawn) against the user's policy rule, the image catalog and the live inventory snapshot,
and returns a :class:`ValidatedOptions`. Form data becomes ``user_options`` first, in
:func:`.form.parse_form`.

Every refusal is an :class:`InvalidOptions` (a ``tornado.web.HTTPError`` 400) carrying one
sentence the hub shows above the re-rendered form; nothing else escapes, whatever the input.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tornado.web import HTTPError

from jupyter_tk.hub.image_reference import parse_image_reference
from jupyter_tk.hub.placement import (
    ResourceRequest,
    fit_checker,
    gpu_absence,
    node_unfit_reason,
    place_name,
    size_limits,
    why_nothing_fits,
)
from jupyter_tk.hub.policy_document import CUSTOM_PROFILE, PolicyRule
from jupyter_tk.hub.quantities import (
    format_bytes,
    format_cores,
    format_memory_quantity,
    parse_quantity,
)

__all__ = [
    "CUSTOM_PROFILE",
    "USER_OPTION_KEYS",
    "InvalidOptions",
    "SpawnLimits",
    "SpawnNotAllowed",
    "ValidatedOptions",
    "ValidationContext",
    "validate_user_options",
]

USER_OPTION_KEYS = frozenset({"profile", "image", "node", "cpu", "memory", "gpu"})
_SIZE_KEYS = ("cpu", "memory", "gpu")

_SHOWN_LENGTH = 60
_COUNT_RE = re.compile(r"[0-9]{1,6}", re.ASCII)
_CPU_STEP = Decimal("0.001")
_MAX_GPU_COUNT = 1024


class InvalidOptions(HTTPError):
    """The request cannot be started as sent (HTTP 400); ``str(message)`` says why."""

    def __init__(self, message: str, status_code: int = 400) -> None:
        super().__init__(status_code, "%s", message)
        self.message = message
        # JupyterHub shows this instead of "HTTP 400: Bad Request (...)" on the form and in
        # REST error bodies.
        self.jupyterhub_message = message

    def __str__(self) -> str:
        return self.message


class SpawnNotAllowed(InvalidOptions):
    """No policy rule matches the user's groups (HTTP 403)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_code=403)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_LENGTH else text[: _SHOWN_LENGTH - 3] + "..."


# -- user_options -> ValidatedOptions ----------------------------------------------------------


@dataclass(frozen=True)
class SpawnLimits:
    """Bounds and defaults that come from the spawner's configuration, not the policy."""

    min_cpu: float = 0.1
    min_memory: int = 256 * 1024**2
    default_cpu: float = 1.0
    default_memory: int = 2 * 1024**3
    #: The fraction of the limits the pod requests (reserves) on its node.
    guarantee_ratio: float = 1.0


@dataclass(frozen=True)
class ValidationContext:
    """Everything a decision depends on, read once per request."""

    rule: PolicyRule
    catalog: Any  # catalog.CatalogState
    snapshot: Mapping
    limits: SpawnLimits = SpawnLimits()
    #: tolerations the pod will carry, given whether it requests a GPU.
    tolerations: Callable[[bool], Sequence[Mapping]] = lambda wants_gpu: ()

    def usable_nodes(self) -> list[Mapping]:
        """The snapshot's nodes this user's rule lets them pick."""
        return [n for n in self.snapshot.get("nodes") or () if self.rule.allows_node(n["name"])]

    @property
    def source(self) -> str:
        """Where servers run: ``"local"`` (the hub's machine) or ``"kubernetes"``."""
        return str(self.snapshot.get("source") or "")

    def size_limits(self) -> dict:
        """The most a custom size may ask for (see :func:`.placement.size_limits`)."""
        return size_limits(self.rule.max, self.usable_nodes(), ratio=self.limits.guarantee_ratio)


@dataclass(frozen=True)
class ValidatedOptions:
    """A request that passed every check; what the spawner applies to the server."""

    profile: str
    image: str  # the reference the container runtime pulls
    image_name: str | None  # catalog name; None for a custom image
    node: str | None
    cpu: float  # cores (limit)
    memory: int  # bytes (limit)
    gpu_resource: str | None
    gpu_count: int
    #: Spawner traits the chosen preset sets (``kubespawner_override`` in the policy file);
    #: never from what a user sends.
    spawner_overrides: dict = field(default_factory=dict)

    @property
    def request(self) -> ResourceRequest:
        return ResourceRequest(self.cpu, self.memory, self.gpu_resource, self.gpu_count)

    def user_options(self) -> dict:
        """The canonical ``user_options`` (contract shape) that reproduce this request."""
        return {
            "profile": self.profile,
            "image": self.image_name or self.image,
            "node": self.node,
            "cpu": self.cpu,
            "memory": format_memory_quantity(self.memory),
            "gpu": (
                {"resource": self.gpu_resource, "count": self.gpu_count}
                if self.gpu_resource
                else None
            ),
        }


def validate_user_options(user_options: Any, context: ValidationContext) -> ValidatedOptions:
    """Check ``user_options`` (any JSON value) and return what to start; else InvalidOptions."""
    if user_options is None:
        user_options = {}
    if not isinstance(user_options, Mapping):
        raise InvalidOptions("user_options must be a JSON object.")
    unknown = sorted(str(key) for key in user_options if key not in USER_OPTION_KEYS)
    if unknown:
        raise InvalidOptions(
            f"Unknown option {_shown(unknown[0])}; the options are "
            f"{', '.join(sorted(USER_OPTION_KEYS))}."
        )
    rule = context.rule
    sized = [key for key in _SIZE_KEYS if user_options.get(key) is not None]
    profile = _profile(user_options.get("profile"), rule, sized)
    preset = rule.preset(profile) if profile != CUSTOM_PROFILE else None
    # Every size field sent is read strictly, with a preset too: a malformed value is a 400
    # on every path, never silently replaced by the preset's.
    cpu = _cpu(user_options.get("cpu"), context.limits)
    memory = _memory(user_options.get("memory"), context.limits)
    gpu_resource, gpu_count = _gpu(user_options.get("gpu"))
    if preset is not None:
        _check_same_as_preset(preset, sized, cpu, memory, gpu_resource, gpu_count)
        cpu, memory = preset.cpu, preset.memory
        gpu_resource, gpu_count = preset.gpu_resource, preset.gpu_count

    _check_gpu_cap(context.rule, gpu_count)
    # A GPU that exists nowhere is the reason to give before any size: no size would help.
    absent = gpu_absence(context.usable_nodes(), gpu_resource, source=context.source)
    if gpu_resource and gpu_count and absent:
        raise InvalidOptions(_gpu_absent_message(absent, gpu_resource, context))
    _check_size_limits(context, cpu, memory)
    image, image_name, gpu_required = _image(user_options.get("image"), context)
    if gpu_required and not gpu_count:
        if preset is not None:
            raise InvalidOptions(
                f"The image {image_name} needs a GPU, and the preset {preset.slug} has none: "
                f"choose a GPU preset, or {CUSTOM_PROFILE!r} with a GPU."
            )
        raise InvalidOptions(f"The image {image_name} needs a GPU: request at least one GPU.")
    request = ResourceRequest(cpu, memory, gpu_resource, gpu_count)
    node = _node(user_options.get("node"), request, context)
    return ValidatedOptions(
        profile=profile,
        image=image,
        image_name=image_name,
        node=node,
        cpu=cpu,
        memory=memory,
        gpu_resource=gpu_resource if gpu_count else None,
        gpu_count=gpu_count,
        # A copy per spawn: a spawner that changes what it applies changes nothing shared.
        spawner_overrides=copy.deepcopy(dict(preset.spawner_overrides)) if preset else {},
    )


def _profile(value: Any, rule: PolicyRule, sized: Sequence[str]) -> str:
    if value is None or value == "":
        # A size sent without a profile asks for that size (as a deep link ?cpu=4 does);
        # nothing at all (a bare REST call): the first preset, else a free choice.
        if sized or not rule.presets:
            return CUSTOM_PROFILE
        return rule.presets[0].slug
    if not isinstance(value, str):
        raise InvalidOptions(f"profile must be a preset name or {CUSTOM_PROFILE!r}.")
    if value == CUSTOM_PROFILE or rule.preset(value) is not None:
        return value
    offered = ", ".join([p.slug for p in rule.presets] + [CUSTOM_PROFILE])
    raise InvalidOptions(f"Unknown preset {_shown(value)}; your choices are {offered}.")


def _number(value: Any, what: str, example: str) -> Decimal:
    # bool is an int in Python; `"cpu": true` must not become one core.
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise InvalidOptions(f"{what} must be a number, got {_shown(value)}.")
    try:
        # No trimming: JSON is written by programs, and "4Gi\n" there is a bug worth a 400.
        # The form trims what people type (form.parse_form) before it gets here.
        amount = parse_quantity(value)
    except ValueError as e:
        if "too large" in str(e) or "out of range" in str(e):
            raise InvalidOptions(
                f"{what} {_shown(value)} is far more than any server can have."
            ) from None
        raise InvalidOptions(
            f"{what} must be a number such as {example}, got {_shown(value)}."
        ) from None
    if not amount.is_finite() or amount <= 0:
        raise InvalidOptions(f"{what} must be more than 0, got {_shown(value)}.")
    return amount


def _cpu(value: Any, limits: SpawnLimits) -> float:
    if value is None or value == "":
        return limits.default_cpu
    amount = _number(value, "CPU", "2, 0.5 or 500m")
    if amount % _CPU_STEP:
        raise InvalidOptions(f"CPU is counted in steps of 0.001 cores, got {_shown(value)}.")
    cores = float(amount)
    if cores < limits.min_cpu:
        raise InvalidOptions(f"Request at least {format_cores(limits.min_cpu)} CPU.")
    return cores


def _memory(value: Any, limits: SpawnLimits) -> int:
    if value is None or value == "":
        return limits.default_memory
    amount = _number(value, "Memory", "8Gi or 512Mi")
    if amount != amount.to_integral_value():
        raise InvalidOptions(f"Memory must be a whole number of bytes, got {_shown(value)}.")
    if amount < limits.min_memory:
        raise InvalidOptions(f"Request at least {format_bytes(limits.min_memory)} of memory.")
    return int(amount)


def _gpu(value: Any) -> tuple[str | None, int]:
    if value is None:
        return None, 0
    if not isinstance(value, Mapping) or set(value) - {"resource", "count"}:
        raise InvalidOptions('gpu must be null or {"resource": "<GPU kind>", "count": <number>}.')
    resource, count = value.get("resource"), value.get("count", 1)
    if isinstance(count, str) and _COUNT_RE.fullmatch(count):
        count = int(count)
    if isinstance(count, float) and count.is_integer():
        count = int(count)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise InvalidOptions(f"The number of GPUs must be a whole number, got {_shown(count)}.")
    if count > _MAX_GPU_COUNT:
        raise InvalidOptions(f"{count} GPUs is more than any server can have.")
    if not count:
        return None, 0
    if not isinstance(resource, str) or not resource:
        raise InvalidOptions("Choose which kind of GPU to request.")
    return resource, count


def _check_same_as_preset(
    preset: Any, sized: Sequence[str], cpu: float, memory: int, resource: str | None, count: int
) -> None:
    """A preset says the size; a size sent with it must be the same (the saved options are)."""
    sent = {
        "cpu": cpu != preset.cpu,
        "memory": memory != preset.memory,
        "gpu": (resource, count) != (preset.gpu_resource, preset.gpu_count)
        and (count or preset.gpu_count),
    }
    for key in sized:
        if sent[key]:
            raise InvalidOptions(
                f"The preset {preset.slug} sets {key} itself: leave {key} out, or use the "
                f"profile {CUSTOM_PROFILE!r} to choose it."
            )


def limit_message(what: str, amount: str, limit: str, *, cap: bool, source: str) -> str:
    """``"64 CPU is over your limit of 16 CPU."``, or, where no node is that large, ``"… is
    more than this machine can hold (22.5 GiB)."``: the number the form shows as the maximum."""
    if cap:
        return f"{amount}{what} is over your limit of {limit}."
    return f"{amount}{what} is more than {place_name(source)} can hold ({limit})."


def _check_gpu_cap(rule: PolicyRule, gpus: int) -> None:
    if gpus > rule.max.gpus:
        limit = "you may not use GPUs" if not rule.max.gpus else f"your limit is {rule.max.gpus}"
        raise InvalidOptions(f"{gpus} GPU(s) requested, but {limit}.")


def _check_size_limits(context: ValidationContext, cpu: float, memory: int) -> None:
    caps, limits, source = context.rule.max, context.size_limits(), context.source
    if cpu > limits["cpu"]:
        raise InvalidOptions(
            limit_message(
                " CPU",
                format_cores(cpu),
                f"{format_cores(limits['cpu'])} CPU",
                cap=limits["cpu"] >= caps.cpu,
                source=source,
            )
        )
    if memory > limits["memory"]:
        raise InvalidOptions(
            limit_message(
                " of memory",
                format_bytes(memory),
                format_bytes(limits["memory"]),
                cap=limits["memory"] >= caps.memory,
                source=source,
            )
        )


def _gpu_absent_message(absent: str, resource: str, context: ValidationContext) -> str:
    kinds = sorted(
        {gpu["resource"] for node in context.usable_nodes() for gpu in node.get("gpus") or ()}
    )
    if kinds:
        return (
            f"No node you may use offers the GPU kind {_shown(resource)}; "
            f"the kinds you may use are {', '.join(kinds)}."
        )
    return f"{absent[0].upper()}{absent[1:]}: choose a size without a GPU."


def _image(value: Any, context: ValidationContext) -> tuple[str, str | None, bool]:
    """(reference to pull, catalog name or None, gpu_required)."""
    catalog, rule = context.catalog, context.rule
    if value is None or value == "":
        allowed = [image for image in catalog.images if rule.allows_image(image.name)]
        default = next((image for image in allowed if image.default), None)
        chosen = default or (allowed[0] if allowed else None)
        if chosen is None:
            raise InvalidOptions(_no_image_message(catalog))
        return chosen.image, chosen.name, chosen.gpu_required
    if not isinstance(value, str):
        raise InvalidOptions(f"image must be a string, got {_shown(value)}.")
    listed = catalog.image(value)
    if listed is not None:
        if not rule.allows_image(listed.name):
            raise InvalidOptions(f"The image {listed.name} is not available to your group.")
        return listed.image, listed.name, listed.gpu_required
    if not rule.custom_images.allowed:
        hint = f" ({catalog.error})" if catalog.error else ""
        raise InvalidOptions(f"Unknown image {_shown(value)}: pick an image from the list{hint}.")
    try:
        reference = parse_image_reference(value)
    except ValueError as e:
        raise InvalidOptions(
            f"{_shown(value)} is not in the image list and not a valid image reference: {e}."
        ) from None
    if not rule.allows_registry(reference):
        registries = ", ".join(rule.custom_images.registries)
        raise InvalidOptions(
            f"{_shown(value)} is not in the image list, and custom images may only come "
            f"from {registries} (it is on {reference.registry})."
        )
    return value, None, False


def _no_image_message(catalog: Any) -> str:
    if catalog.error:
        return f"No image can be offered: the image list could not be loaded ({catalog.error})."
    return "No image is available to your group; ask an administrator."


def _node(value: Any, request: ResourceRequest, context: ValidationContext) -> str | None:
    nodes = context.usable_nodes()
    if not context.snapshot.get("nodes") and context.snapshot.get("stale", True):
        raise InvalidOptions(
            "The cluster's free resources are not known yet (its API has not answered); "
            "try again in a few seconds.",
            status_code=503,
        )
    ratio = context.limits.guarantee_ratio
    tolerations = context.tolerations(request.wants_gpu)
    if value is None or value == "":
        unfit = fit_checker(request, ratio=ratio, tolerations=tolerations)
        if not any(unfit(n) is None for n in nodes):
            detail = why_nothing_fits(nodes, request, ratio=ratio, tolerations=tolerations)
            raise InvalidOptions(
                f"No node has room for {_describe(request)} right now ({detail}). "
                "Choose less, or try again later."
            )
        return None
    if not isinstance(value, str):
        raise InvalidOptions(f"node must be a node name or null, got {_shown(value)}.")
    if not context.rule.allows_node(value):
        raise InvalidOptions(f"You may not start servers on the node {_shown(value)}.")
    node = next((n for n in nodes if n["name"] == value), None)
    if node is None:
        raise InvalidOptions(f"There is no node called {_shown(value)} in the cluster right now.")
    reason = node_unfit_reason(node, request, ratio=ratio, tolerations=tolerations)
    if reason is not None:
        raise InvalidOptions(
            f"The node {value} cannot take {_describe(request)} right now: {reason}. "
            "Choose another node, “Any node that fits”, or less."
        )
    return value


def _describe(request: ResourceRequest) -> str:
    text = f"{format_cores(request.cpu)} CPU and {format_bytes(request.memory)} of memory"
    if request.wants_gpu:
        text += f" with {request.gpu_count} {request.gpu_resource}"
    return text
