"""What the spawn form shows, computed on the server: the view model handed to the templates.

Pure: from the user's policy rule, the catalog state, the inventory snapshot and the options
of their last spawn, it works out the choices, which of them are selected, which cannot fit
right now and why, the bounds of the controls and the summary line. With JavaScript off this
is the whole form; with it on, ``hub_plugin`` recomputes the same from live data
(``evaluate.ts``); the shared cases in ``tests/vectors/form_rules.json`` check both.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from typing import Any

from jupyter_tk.hub.node_notes import (
    cpu_notes,
    gpu_notes,
    gpu_use_lines,
    live_gpu_lines,
    live_node_label,
    memory_advisory,
    memory_notes,
)
from jupyter_tk.hub.placement import (
    GpuKind,
    ResourceRequest,
    fit_checker,
    gpu_absence,
    gpu_kinds,
    place_name,
)
from jupyter_tk.hub.policy_document import CUSTOM_PROFILE, PolicyRule
from jupyter_tk.hub.quantities import (
    format_bytes,
    format_cores,
    format_gpu_kind,
    format_memory_quantity,
    parse_quantity,
)
from jupyter_tk.hub.validation import (
    InvalidOptions,
    SpawnLimits,
    ValidationContext,
    validate_user_options,
)

__all__ = ["build_form_view", "custom_limits_text", "describe_request", "node_label"]


def node_label(node: Mapping) -> str:
    """``gpu-a — 12 CPU · 40 GiB free · 2/4 NVIDIA-A100 · 80 GiB`` (+ state when not usable).

    A node that does not enforce memory limits says ``memory advisory`` after its memory.
    """
    free = node.get("free") or {}
    parts = [
        f"{format_cores(float(free.get('cpu', 0)))} CPU",
        f"{format_bytes(int(free.get('memory', 0)))} free",
    ]
    if memory_advisory(node):
        parts.append("memory advisory")
    for gpu in node.get("gpus") or ():
        parts.append(f"{gpu.get('free', 0)}/{gpu.get('count', 0)} {format_gpu_kind(gpu)}")
    label = f"{node['name']} — {' · '.join(parts)}"
    if not node.get("ready"):
        label += " (NotReady)"
    elif node.get("unschedulable") or not node.get("schedulable", True):
        label += " (cordoned)"
    return label


def describe_request(request: ResourceRequest, node: str | None, image: str | None) -> str:
    """The summary line: what will be requested, where, with which image."""
    text = f"{format_cores(request.cpu)} CPU, {format_bytes(request.memory)} memory"
    if request.wants_gpu:
        text += f", {request.gpu_count} {request.gpu_resource}"
    else:
        text += ", no GPU"
    where = f"on {node}" if node else "on any node that fits"
    what = f" with {image}" if image else ""
    return f"Will request {text} {where}{what}."


def custom_limits_text(cpu: float, memory: int, gpus: int) -> str:
    """The Custom card's line: ``Up to 16 CPU · 64 GiB · 2 GPUs`` (no GPU part for 0)."""
    text = f"Up to {format_cores(cpu)} CPU · {format_bytes(memory)}"
    if gpus:
        text += f" · {gpus} GPU{'s' if gpus > 1 else ''}"
    return text


def gpu_bound_text(absent: str | None, limit: int, caps_gpus: int) -> str:
    """The help under "GPUs": ``"0 to 2"``, or why there can be none (never a bare "0 to 0")."""
    if caps_gpus == 0:
        return "0 (your group may not use GPUs)"
    if absent is not None:
        return f"{absent[0].upper()}{absent[1:]}"
    return f"0 to {limit}"


def _preset_request(preset: Any) -> ResourceRequest:
    return ResourceRequest(preset.cpu, preset.memory, preset.gpu_resource, preset.gpu_count)


def _float_or(value: Any, fallback: float) -> float:
    try:
        amount = parse_quantity(value)
    except ValueError:
        return fallback
    number = float(amount)
    return number if math.isfinite(number) and number > 0 else fallback


def _memory_or(value: Any, fallback: int) -> int:
    try:
        amount = parse_quantity(value)
    except ValueError:
        return fallback
    return int(amount) if amount.is_finite() and amount > 0 else fallback


class _Selection:
    """The choices to pre-select: the last spawn's options where they still make sense."""

    def __init__(self, last: Mapping, rule: PolicyRule, catalog: Any, limits: SpawnLimits):
        profile = last.get("profile")
        valid_profile = profile == CUSTOM_PROFILE or (
            isinstance(profile, str) and rule.preset(profile) is not None
        )
        default_profile = rule.presets[0].slug if rule.presets else CUSTOM_PROFILE
        self.profile = profile if valid_profile else default_profile

        image = last.get("image") if isinstance(last.get("image"), str) else ""
        listed = catalog.image(image) if image else None
        allowed = [i for i in catalog.images if rule.allows_image(i.name)]
        if listed is not None and rule.allows_image(listed.name):
            self.image, self.custom_image = listed.name, ""
        elif image and rule.custom_images.allowed:
            self.image, self.custom_image = "", image
        else:
            default = next((i for i in allowed if i.default), None) or (allowed or [None])[0]
            self.image = default.name if default else ""
            self.custom_image = ""

        self.node = last.get("node") if isinstance(last.get("node"), str) else ""
        self.cpu = _float_or(last.get("cpu"), limits.default_cpu)
        self.memory = _memory_or(last.get("memory"), limits.default_memory)
        gpu = last.get("gpu") if isinstance(last.get("gpu"), Mapping) else {}
        self.gpu_resource = gpu.get("resource") if isinstance(gpu.get("resource"), str) else ""
        count = gpu.get("count")
        if isinstance(count, str) and count.isascii() and count.isdigit():
            count = int(count)
        self.gpu_count = count if isinstance(count, int) and not isinstance(count, bool) else 0

    def problem(self, rule: PolicyRule, context: ValidationContext) -> str:
        """The refusal submitting this choice would get, or ""."""
        options: dict[str, Any] = {
            "profile": self.profile,
            "image": self.image or self.custom_image or None,
            "node": self.node or None,
        }
        if self.profile == CUSTOM_PROFILE:
            resource = self.gpu_resource if self.gpu_count else None
            options.update(
                cpu=self.cpu,
                memory=self.memory,
                gpu={"resource": resource, "count": self.gpu_count} if resource else None,
            )
        try:
            validate_user_options(options, context)
        except InvalidOptions as e:
            return str(e)
        return ""

    def request(self, rule: PolicyRule) -> ResourceRequest:
        preset = rule.preset(self.profile) if self.profile != CUSTOM_PROFILE else None
        if preset is not None:
            return _preset_request(preset)
        resource = self.gpu_resource if self.gpu_count else None
        return ResourceRequest(self.cpu, self.memory, resource, self.gpu_count if resource else 0)


def build_form_view(
    *,
    context: ValidationContext,
    last_options: Mapping | None,
    resources_url: str,
    refresh_seconds: float,
    notices: Sequence[str] = (),
    refusal: str = "",
) -> dict:
    """The template namespace of ``tk_spawn/form.html``."""
    rule, catalog, snapshot, limits = (
        context.rule,
        context.catalog,
        context.snapshot,
        context.limits,
    )
    chosen = _Selection(last_options or {}, rule, catalog, limits)
    nodes = context.usable_nodes()
    if chosen.node and not any(n["name"] == chosen.node for n in nodes):
        chosen.node = ""
    request = chosen.request(rule)
    ratio = limits.guarantee_ratio
    source = context.source
    size_limits = context.size_limits()

    def checker(req: ResourceRequest):
        return fit_checker(req, ratio=ratio, tolerations=context.tolerations(req.wants_gpu))

    unfit = checker(request)
    reasons = [unfit(node) for node in nodes]
    # Live GPU use from Prometheus, worded by the server (absent without that source).
    gpu_metrics = snapshot.get("gpu_metrics")
    node_rows = []
    for node, reason in zip(nodes, reasons, strict=True):
        node_rows.append(
            {
                "name": node["name"],
                "label": live_node_label(node_label(node), node["name"], gpu_metrics),
                "reason": reason,
                "selected": node["name"] == chosen.node,
                # Only nodes that can take nothing at all are disabled here: without JavaScript
                # the states cannot follow a changed choice, and the server checks the submit.
                # A selected node stays enabled: a disabled option would not be submitted and
                # the choice would silently become "any node".
                "disabled": not _usable(node) and node["name"] != chosen.node,
            }
        )
    selected_node = next((n for n in nodes if n["name"] == chosen.node), None)
    candidates = [selected_node] if selected_node else nodes

    presets = []
    for preset in rule.presets:
        preset_unfit = checker(_preset_request(preset))
        fits = any(preset_unfit(n) is None for n in candidates)
        presets.append(
            {
                "slug": preset.slug,
                "display_name": preset.display_name,
                "description": preset.description,
                "summary": _preset_summary(preset),
                "checked": preset.slug == chosen.profile,
                "reason": (
                    None
                    if fits
                    else preset_reason(preset, nodes, bool(selected_node), source, size_limits)
                ),
            }
        )

    ready = [n for n in candidates if _usable(n)]
    kinds = gpu_kinds(ready)
    all_kinds = gpu_kinds(n for n in nodes if _usable(n))
    # The GPU kind the choice stands for (a preset's own), so greyed fields agree with it.
    shown_resource = request.gpu_resource if request.wants_gpu else chosen.gpu_resource
    kind_rows = _gpu_kind_rows(all_kinds, kinds, shown_resource, chosen.node)
    absent = gpu_absence(nodes, shown_resource or None, source=source)
    if shown_resource and absent and not any(r["resource"] == shown_resource for r in kind_rows):
        kind_rows.append(
            {"resource": shown_resource, "label": f"{shown_resource} — {absent}", "selected": True}
        )
    no_gpus = gpu_absence(nodes, None, source=source)
    bounds = _bounds(size_limits, limits)
    custom_limits = {**size_limits, "text": custom_limits_text(**size_limits)}

    images = [
        {
            "name": image.name,
            "display_name": image.display_name,
            "description": image.description,
            "gpu_required": image.gpu_required,
            "checked": image.name == chosen.image,
        }
        for image in catalog.images
        if rule.allows_image(image.name)
    ]
    chosen_image = next((i for i in images if i["checked"]), None)
    image_text = chosen_image["display_name"] if chosen_image else chosen.custom_image
    age = snapshot.get("age_seconds") or 0.0
    return {
        "presets": presets,
        "profile": chosen.profile,
        "custom_profile": CUSTOM_PROFILE,
        "images": images,
        "custom_images": {
            "allowed": rule.custom_images.allowed,
            "registries": list(rule.custom_images.registries),
            "value": chosen.custom_image,
            "checked": bool(chosen.custom_image) or (not images and rule.custom_images.allowed),
        },
        "nodes": node_rows,
        "node_list_size": min(len(node_rows) + 1, 8),
        "node_any_selected": not chosen.node,
        # What the server refuses this choice for (by the Start button): the refusal of the
        # last submission, else what submitting the shown choice would get; "" when it fits.
        "problem": refusal or chosen.problem(rule, context),
        "cpu": {
            "value": format_cores(chosen.cpu),
            "min": format_cores(limits.min_cpu),
            "max": format_cores(bounds["cpu"]),
        },
        "memory": {
            "value": format_memory_quantity(chosen.memory),
            "min_text": format_bytes(limits.min_memory),
            "max_text": format_bytes(bounds["memory"]),
            # Why memory limits may not hold where the server will run (local machine, no
            # cgroup v2); empty on Kubernetes.
            "note": " ".join(memory_notes(candidates)),
        },
        "gpu_kinds": kind_rows,
        "gpu_use": gpu_use_lines(ready),
        "live_gpus": live_gpu_lines(chosen.node or None, gpu_metrics),
        "gpu_count": {
            "value": request.gpu_count if request.wants_gpu else chosen.gpu_count,
            "max": bounds["gpus"],
            "text": gpu_bound_text(no_gpus, bounds["gpus"], rule.max.gpus),
        },
        # Why there are no GPUs where the inventory knows (e.g. "NVML is not available ...").
        "gpu_notes": gpu_notes(nodes),
        # What free CPU means where the server may run (the local machine: shared or reserved).
        "cpu_notes": cpu_notes(candidates),
        "caps": {
            "cpu": format_cores(rule.max.cpu),
            "memory": format_bytes(rule.max.memory),
            "gpus": rule.max.gpus,
        },
        "custom_limits": custom_limits,
        "summary": describe_request(request, chosen.node or None, image_text),
        "catalog": {
            "error": catalog.error,
            "stale": catalog.stale,
            "empty": not catalog.images,
        },
        "data": {
            "stale": bool(snapshot.get("stale")),
            "age_text": _age_text(age),
            "as_of": snapshot.get("as_of", time.time() - age),
            "source": snapshot.get("source", ""),
        },
        "notices": list(notices),
        "policy_message": rule.message,
        "refusal": refusal,
        "resources_url": resources_url,
        "config": {
            **_front_end_config(context, resources_url, refresh_seconds),
            # Why the last submission was refused: shown by Start until the choice changes.
            "refusal": refusal,
        },
    }


def _usable(node: Mapping) -> bool:
    return bool(node.get("ready")) and node.get("schedulable", True)


def _preset_summary(preset: Any) -> str:
    text = f"{format_cores(preset.cpu)} CPU · {format_bytes(preset.memory)}"
    if preset.gpu_resource and preset.gpu_count:
        text += f" · {preset.gpu_count} {preset.gpu_resource}"
    return text


def _gpu_kind_rows(
    every: Sequence[GpuKind], on_candidates: Sequence[GpuKind], selected: str, node: str
) -> list[dict]:
    """Every GPU kind of the nodes the user may use; with a node chosen, those not on it say so
    and the others count only that node's free GPUs (the front end also disables them)."""
    here = {kind.resource: kind for kind in on_candidates}
    rows = []
    for kind in every:
        shown = here.get(kind.resource, kind)
        absent = bool(node) and kind.resource not in here
        rows.append(
            {
                "resource": kind.resource,
                "label": shown.label + (f" — not on {node}" if absent else ""),
                "selected": kind.resource == selected,
            }
        )
    return rows


def preset_reason(
    preset: Any, nodes: Sequence[Mapping], chosen_node: bool, source: str, limits: Mapping
) -> str:
    """Why a preset cannot be started: its GPU exists nowhere or it is larger than any node
    (said as such: waiting will not help), or no node / the chosen node has room right now."""
    if preset.gpu_resource and preset.gpu_count:
        absent = gpu_absence(nodes, preset.gpu_resource, source=source)
        if absent:
            return absent
    if preset.cpu > limits["cpu"] or preset.memory > limits["memory"]:
        return f"more than {place_name(source)} can hold"
    if chosen_node:
        return "does not fit the chosen node right now"
    return "no node has room right now"


def _bounds(size_limits: Mapping, limits: SpawnLimits) -> dict:
    """The largest CPU / memory / GPU count the controls offer: the size limits, the numbers the
    Custom card and a refusal show (never what is free right now: a disabled field must not
    read "GPUs: 1" next to "0 to 0"; the fit check says what does not fit now)."""
    return {
        "cpu": max(size_limits["cpu"], limits.min_cpu),
        "memory": max(size_limits["memory"], limits.min_memory),
        "gpus": size_limits["gpus"],
    }


def _age_text(age: float) -> str:
    if age < 1:
        return "just now"
    if age < 120:
        return f"{int(age)} s ago"
    return f"{int(age // 60)} min ago"


def _front_end_config(context: ValidationContext, resources_url: str, refresh: float) -> dict:
    """What ``hub_plugin`` needs to recompute the form from live data (no secrets in here)."""
    rule, limits = context.rule, context.limits
    return {
        "resourcesUrl": resources_url,
        "refreshSeconds": refresh,
        "guaranteeRatio": limits.guarantee_ratio,
        "tolerations": {
            "cpu": list(context.tolerations(False)),
            "gpu": list(context.tolerations(True)),
        },
        "caps": {"cpu": rule.max.cpu, "memory": rule.max.memory, "gpus": rule.max.gpus},
        "minimum": {"cpu": limits.min_cpu, "memory": limits.min_memory},
        "defaults": {"cpu": limits.default_cpu, "memory": limits.default_memory},
        "nodeGlobs": list(rule.nodes),
        "customProfile": CUSTOM_PROFILE,
        "presets": [
            {
                "slug": p.slug,
                "displayName": p.display_name,
                "cpu": p.cpu,
                "memory": p.memory,
                "gpu": {"resource": p.gpu_resource, "count": p.gpu_count}
                if p.gpu_resource and p.gpu_count
                else None,
            }
            for p in rule.presets
        ],
        "images": [
            {"name": i.name, "displayName": i.display_name, "gpuRequired": i.gpu_required}
            for i in context.catalog.images
            if rule.allows_image(i.name)
        ],
        "customImages": {
            "allowed": rule.custom_images.allowed,
            "registries": list(rule.custom_images.registries),
        },
    }
