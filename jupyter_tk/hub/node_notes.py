"""What the form says about nodes beyond their free amounts: advisory memory and live GPU use.

Both come from additive fields of the resources snapshot that only some inventories fill in
(the local one: ``memory_enforced`` / ``memory_note`` on the node, a ``devices`` list on each GPU
kind; the Kubernetes inventory's ``devices`` is a number, the GPUs behind the resource).
A node without them (every Kubernetes node) adds nothing. The front end mirrors this file in
``hub_plugin/src/notes.ts``; ``tests/vectors/form_rules.json`` checks that both agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from jupyter_tk.hub.quantities import format_bytes

__all__ = [
    "cpu_notes",
    "gpu_notes",
    "gpu_use_lines",
    "live_gpu_lines",
    "live_node_label",
    "memory_advisory",
    "memory_notes",
]

_DEFAULT_MEMORY_NOTE = "Memory limits are advisory on this node: a server may use more."


def memory_advisory(node: Mapping) -> bool:
    """True when the node says it does not enforce memory limits (absent means it does)."""
    return node.get("memory_enforced") is False


def memory_notes(nodes: Iterable[Mapping]) -> list[str]:
    """The distinct notes of ``nodes`` that do not enforce memory limits, in node order.

    With several nodes saying different things, each note is prefixed by the node's name.
    """
    noted = [
        (str(node.get("name", "")), node.get("memory_note") or _DEFAULT_MEMORY_NOTE)
        for node in nodes
        if memory_advisory(node)
    ]
    texts = list(dict.fromkeys(note for _, note in noted))
    if len(texts) <= 1:
        return texts
    return list(dict.fromkeys(f"{name}: {note}" for name, note in noted))


def _distinct_notes(nodes: Iterable[Mapping], key: str) -> list[str]:
    noted = [(str(node.get("name", "")), node[key]) for node in nodes if node.get(key)]
    texts = list(dict.fromkeys(note for _, note in noted))
    if len(texts) <= 1:
        return texts
    return list(dict.fromkeys(f"{name}: {note}" for name, note in noted))


def gpu_notes(nodes: Iterable[Mapping]) -> list[str]:
    """The distinct ``gpu_note`` of ``nodes`` (why a node shows no GPUs, e.g. "NVML is not
    available on this machine: ..."), in node order; with several, prefixed by the node's name."""
    return _distinct_notes(nodes, "gpu_note")


def cpu_notes(nodes: Iterable[Mapping]) -> list[str]:
    """The distinct ``cpu_note`` of ``nodes`` (what free CPU means on the local machine: shared
    or reserved), in node order; with several, prefixed by the node's name."""
    return _distinct_notes(nodes, "cpu_note")


def _device_text(device: Mapping, name: str) -> str:
    if device.get("error"):
        return f"{name}: unavailable ({device['error']})"
    holders = [str(holder) for holder in device.get("taken_by") or ()]
    parts = [f"in use by {', '.join(holders)}" if holders else "free"]
    if device.get("utilization_gpu") is not None:
        parts.append(f"{device['utilization_gpu']}% busy")
    used, total = device.get("memory_used"), device.get("memory_total")
    if used is not None and total:
        parts.append(f"{format_bytes(used)} of {format_bytes(total)} used")
    return f"{name}: {', '.join(parts)}"


def _device_names(devices: Sequence[Mapping]) -> list[str]:
    """``GPU 0``, ``GPU 1``; MIG instances (which share their parent's index) ``GPU 2 slice 1``."""
    names = []
    slices: dict[str, int] = {}
    for device in devices:
        name = f"GPU {device.get('index', '?')}"
        parent = device.get("parent_uuid")
        if parent:
            slices[parent] = slices.get(parent, 0) + 1
            name += f" slice {slices[parent]}"
        names.append(name)
    return names


def gpu_use_lines(nodes: Sequence[Mapping]) -> list[dict]:
    """Per node and GPU kind with live per-device use: ``{"resource", "text"}``.

    ``text`` reads ``"nvidia.com/gpu — GPU 0: free, 3% busy, 1 GiB of 80 GiB used; GPU 1: in
    use by alice, …"``; with several such nodes the node's name comes first. Words, not colour,
    say which GPU is taken.
    """
    # Only a list is per-device use; the Kubernetes inventory's `devices` is a count (GFD label).
    with_devices = [
        (node, gpu)
        for node in nodes
        for gpu in node.get("gpus") or ()
        if isinstance(gpu.get("devices"), list) and gpu["devices"]
    ]
    several_nodes = len({id(node) for node, _ in with_devices}) > 1
    lines = []
    for node, gpu in with_devices:
        devices = list(gpu["devices"])
        described = [
            _device_text(device, name)
            for device, name in zip(devices, _device_names(devices), strict=True)
        ]
        where = f"{node.get('name')} · " if several_nodes else ""
        lines.append(
            {
                "resource": gpu["resource"],
                "text": f"{where}{gpu['resource']} — {'; '.join(described)}",
            }
        )
    return lines


def live_node_label(label: str, name: str, gpu_metrics: Mapping | None) -> str:
    """A node's list label with its live GPU summary from Prometheus, when there is one."""
    live = ((gpu_metrics or {}).get("nodes") or {}).get(name)
    return f"{label} · {live['summary']}" if live else label


def live_gpu_lines(selected: str | None, gpu_metrics: Mapping | None) -> list[dict]:
    """Live per-GPU use of the chosen node (the server words it: ``gpu_metrics.py``), and why
    the figures are missing or old; nothing without a Prometheus source."""
    if not gpu_metrics:
        return []
    lines = []
    if gpu_metrics.get("message"):
        lines.append({"resource": "live", "text": gpu_metrics["message"]})
    live = (gpu_metrics.get("nodes") or {}).get(selected) if selected else None
    if live:
        lines.append({"resource": "live", "text": f"{selected} GPUs right now — {live['text']}"})
    return lines
