"""Selectors and a small scheduler for the simulated Kubernetes API (`tests/fakes/kubernetes.py`).

- `LabelSelector` / `FieldSelector`: the `labelSelector` / `fieldSelector` query syntax
  (`a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`, `a notin (x,y)`; fields by dotted path).
- `find_node(pod, nodes, requested)`: the default scheduler's filters in its order
  (NodeUnschedulable, TaintToleration, NodeAffinity incl. nodeSelector and matchFields on
  `metadata.name`, NodeResourcesFit incl. pod count), returning a node name or a
  kubectl-like message such as `0/3 nodes are available: 3 Insufficient nvidia.com/gpu.`

Resource arithmetic comes from `jupyter_tk.hub.inventory.model` and `jupyter_tk.hub.quantities`,
which have their own table tests.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from decimal import Decimal

from jupyter_tk.hub.inventory.model import pod_requests
from jupyter_tk.hub.quantities import parse_quantity

__all__ = ["FieldSelector", "LabelSelector", "field_value", "find_node", "node_is_ready"]

_SET_REQUIREMENT = re.compile(r"\s*(!?)\s*([^\s=!,()]+)\s+(in|notin)\s+\(([^)]*)\)\s*")


def _split_requirements(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


class LabelSelector:
    """A parsed `labelSelector`; `matches(labels)`."""

    def __init__(self, text: str = "") -> None:
        self.requirements: list[tuple[str, str, tuple[str, ...]]] = []
        for part in _split_requirements(text or ""):
            set_match = _SET_REQUIREMENT.fullmatch(part)
            if set_match:
                values = tuple(v.strip() for v in set_match[4].split(",") if v.strip())
                self.requirements.append((set_match[2], set_match[3], values))
            elif "!=" in part:
                key, value = part.split("!=", 1)
                self.requirements.append((key.strip(), "!=", (value.strip(),)))
            elif "=" in part:
                key, value = part.replace("==", "=", 1).split("=", 1)
                self.requirements.append((key.strip(), "=", (value.strip(),)))
            elif part.startswith("!"):
                self.requirements.append((part[1:].strip(), "!", ()))
            else:
                self.requirements.append((part, "exists", ()))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        for key, op, values in self.requirements:
            present = key in labels
            value = labels.get(key)
            if op == "=" and value != values[0]:
                return False
            if op == "!=" and value == values[0]:
                return False
            if op == "in" and value not in values:
                return False
            if op == "notin" and present and value in values:
                return False
            if op == "exists" and not present:
                return False
            if op == "!" and present:
                return False
        return True


def field_value(obj: Mapping, path: str) -> str:
    """The value of a dotted field path as the API server compares it ("" when absent)."""
    value: object = obj
    for part in path.split("."):
        if not isinstance(value, Mapping):
            return ""
        value = value.get(part)
    return "" if value is None else str(value)


class FieldSelector:
    """A parsed `fieldSelector` (`path=value`, `path==value`, `path!=value`, comma = and)."""

    def __init__(self, text: str = "") -> None:
        self.requirements: list[tuple[str, bool, str]] = []
        for part in _split_requirements(text or ""):
            if "!=" in part:
                path, value = part.split("!=", 1)
                self.requirements.append((path.strip(), False, value.strip()))
            else:
                path, value = part.replace("==", "=", 1).split("=", 1)
                self.requirements.append((path.strip(), True, value.strip()))

    def equality(self, path: str) -> str | None:
        """The value this selector requires `path` to equal, if it has such a requirement."""
        for p, equal, value in self.requirements:
            if p == path and equal:
                return value
        return None

    def matches(self, obj: Mapping) -> bool:
        return all((field_value(obj, p) == v) == equal for p, equal, v in self.requirements)


# -- scheduling ------------------------------------------------------------------------------------


def node_is_ready(node: Mapping) -> bool:
    conditions = (node.get("status") or {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def _tolerates(tolerations: list, taint: Mapping) -> bool:
    for toleration in tolerations:
        if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
            continue
        operator = toleration.get("operator") or "Equal"
        key = toleration.get("key") or ""
        if operator == "Exists" and (not key or key == taint.get("key")):
            return True
        if (
            operator == "Equal"
            and key == taint.get("key")
            and (toleration.get("value") or "") == (taint.get("value") or "")
        ):
            return True
    return False


def _untolerated_taint(pod: Mapping, node: Mapping) -> Mapping | None:
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    taints = list((node.get("spec") or {}).get("taints") or [])
    if not node_is_ready(node):
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    for taint in taints:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not _tolerates(
            tolerations, taint
        ):
            return taint
    return None


def _expression_matches(expression: Mapping, value: str | None) -> bool:
    operator = expression.get("operator")
    values = expression.get("values") or []
    if operator == "In":
        return value is not None and value in values
    if operator == "NotIn":
        return value is None or value not in values
    if operator == "Exists":
        return value is not None
    if operator == "DoesNotExist":
        return value is None
    if operator in ("Gt", "Lt") and value is not None and values:
        try:
            left, right = int(value), int(values[0])
        except ValueError:
            return False
        return left > right if operator == "Gt" else left < right
    return False


def _term_matches(term: Mapping, node: Mapping) -> bool:
    labels = (node.get("metadata") or {}).get("labels") or {}
    for expression in term.get("matchExpressions") or ():
        if not _expression_matches(expression, labels.get(expression.get("key"))):
            return False
    for expression in term.get("matchFields") or ():
        value = field_value(node, expression.get("key") or "")
        if not _expression_matches(expression, value or None):
            return False
    return True


def _affinity_matches(pod: Mapping, node: Mapping) -> bool:
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    return not terms or any(_term_matches(term, node) for term in terms)


def _insufficient(
    requests: Mapping[str, Decimal], node: Mapping, requested: Mapping[str, Decimal]
) -> list[str]:
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    reasons = []
    for resource, amount in sorted(requests.items()):
        if amount <= 0:
            continue
        available = parse_quantity(allocatable.get(resource, 0))
        if requested.get(resource, Decimal(0)) + amount > available:
            reasons.append(f"Insufficient {resource}")
    pods_allowed = parse_quantity(allocatable.get("pods", 110))
    if requested.get("pods", Decimal(0)) + 1 > pods_allowed:
        reasons.append("Too many pods")
    return reasons


def find_node(
    pod: Mapping, nodes: list[Mapping], requested: Mapping[str, Mapping[str, Decimal]]
) -> tuple[str | None, str]:
    """Pick the first node (by name) the pod fits on; else (None, the scheduler's message).

    `requested[node]` holds what the node's active pods already request (with `pods` = count).
    """
    requests = pod_requests(pod)
    reasons: Counter[str] = Counter()
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        if (node.get("spec") or {}).get("unschedulable"):
            reasons["node(s) were unschedulable"] += 1
            continue
        taint = _untolerated_taint(pod, node)
        if taint is not None:
            reasons[
                f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
            ] += 1
            continue
        if not _affinity_matches(pod, node):
            reasons["node(s) didn't match Pod's node affinity/selector"] += 1
            continue
        short = _insufficient(requests, node, requested.get(name, {}))
        if short:
            reasons.update(short)
            continue
        return name, ""
    details = ", ".join(sorted(f"{count} {reason}" for reason, count in reasons.items()))
    message = f"0/{len(nodes)} nodes are available"
    return None, f"{message}: {details}." if details else f"{message}."
