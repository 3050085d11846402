"""The server's side of the shared cases in ``form_rules.json``.

The spawn form's rules run twice: in Python on the server (first render, and the authority on
submit) and in TypeScript in the browser (the live form, which must react at once). Instead of
trusting that two copies stay in step, both run the same cases from one file: this module runs
them against the Python, ``hub_plugin/test/vectors.test.ts`` against the TypeScript. A change
to a message or a number in one language fails the other's tests until both agree.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from jupyter_tk.hub.form import parse_form, submitted_choice
from jupyter_tk.hub.form_view import _front_end_config, build_form_view, node_label
from jupyter_tk.hub.image_reference import normalize_registry, parse_image_reference
from jupyter_tk.hub.node_notes import (
    cpu_notes,
    gpu_notes,
    gpu_use_lines,
    live_gpu_lines,
    live_node_label,
    memory_notes,
)
from jupyter_tk.hub.placement import (
    ResourceRequest,
    gpu_absence,
    gpu_kinds,
    node_unfit_reason,
    size_limits,
    why_nothing_fits,
)
from jupyter_tk.hub.policy_document import ResourceCaps
from jupyter_tk.hub.quantities import (
    format_bytes,
    format_cores,
    format_gpu_kind,
    format_memory_quantity,
    parse_quantity,
)
from jupyter_tk.hub.validation import InvalidOptions, validate_user_options
from tests.support.spawn_fixtures import context

VECTORS = json.loads((Path(__file__).parent / "form_rules.json").read_text(encoding="utf-8"))

#: The contexts the cases name: a policy rule of tests.support.spawn_fixtures and a ratio.
CONTEXTS = {
    "gpu-lab": {"group": "gpu-lab", "ratio": 1.0},
    "gpu-lab-half": {"group": "gpu-lab", "ratio": 0.5},
    "students": {"group": "students", "ratio": 1.0},
    "everyone": {"group": "everyone", "ratio": 1.0},
}


def front_end_config(name: str, snapshot: dict) -> dict:
    settings = CONTEXTS[name]
    ctx = context(group=settings["group"], snapshot=snapshot, ratio=settings["ratio"])
    config = _front_end_config(ctx, "/hub/api/tk/resources", 5)
    return {**config, "refusal": ""}


def _parses(choice: dict) -> bool:
    """Whether the custom size reads as amounts above 0 (else there is no request to show)."""
    if choice["profile"] != "custom":
        return True
    for name in ("cpu", "memory"):
        text = choice[name].strip()
        if text:
            try:
                if parse_quantity(text) <= 0:
                    return False
            except ValueError:
                return False
    count = choice["gpuCount"].strip()
    return not count or (count.isascii() and count.isdigit() and len(count) <= 6)


def evaluate_case(context_name: str, snapshot: dict, choice: dict) -> dict:
    """What the server says for one case, in the shape of the vectors' ``expected``."""
    settings = CONTEXTS[context_name]
    ctx = context(group=settings["group"], snapshot=snapshot, ratio=settings["ratio"])
    form = {
        "profile": [choice["profile"]],
        "image": [choice["image"]],
        "custom_image": [choice["customImage"]],
        "node": [choice["node"]],
        "cpu": [choice["cpu"]],
        "memory": [choice["memory"]],
        "gpu_resource": [choice["gpuResource"]],
        "gpu_count": [choice["gpuCount"]],
    }
    try:
        validate_user_options(parse_form(form), ctx)
        problem = None
    except InvalidOptions as e:
        problem = str(e)
    view = build_form_view(
        context=ctx,
        last_options=submitted_choice(form),
        resources_url="/hub/api/tk/resources",
        refresh_seconds=5,
    )
    expected = {
        "problem": problem,
        "presetReasons": {p["slug"]: p["reason"] for p in view["presets"] if p["reason"]},
        "customLimits": view["custom_limits"]["text"],
        "cpuBound": f"{view['cpu']['min']} to {view['cpu']['max']}",
        "memoryBound": (
            f"e.g. 8Gi or 512Mi; {view['memory']['min_text']} to {view['memory']['max_text']}"
        ),
        "gpuBound": view["gpu_count"]["text"],
        "gpuKindLabels": [row["label"] for row in view["gpu_kinds"]],
        "gpuResource": next((row["resource"] for row in view["gpu_kinds"] if row["selected"]), ""),
        "gpuNotes": view["gpu_notes"],
        "memoryNote": view["memory"]["note"],
        "gpuUse": [line["text"] for line in view["gpu_use"]],
    }
    # An empty custom image cannot be shown by the server's first render (it pre-selects a
    # listed image instead), so there is no summary to compare.
    if _parses(choice) and (choice["image"] or choice["customImage"].strip()):
        expected["summary"] = view["summary"]
        expected["nodeReasons"] = {row["name"]: row["reason"] for row in view["nodes"]}
    return expected


# -- quantities ------------------------------------------------------------------------------------


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _parsed(text: str) -> int | float | None:
    try:
        return _number(parse_quantity(text))
    except ValueError:
        return None


UNITS = VECTORS["units"]


@pytest.mark.parametrize(("cores", "text"), UNITS["format_cores"])
def test_format_cores(cores, text):
    assert format_cores(cores) == text


@pytest.mark.parametrize(("amount", "text"), UNITS["format_bytes"])
def test_format_bytes(amount, text):
    assert format_bytes(amount) == text


@pytest.mark.parametrize(("amount", "text"), UNITS["format_memory_quantity"])
def test_format_memory_quantity(amount, text):
    assert format_memory_quantity(amount) == text


@pytest.mark.parametrize(("text", "value"), UNITS["parse_quantity"])
def test_parse_quantity(text, value):
    assert _parsed(text) == value


@pytest.mark.parametrize(("gpu", "text"), UNITS["format_gpu_kind"])
def test_format_gpu_kind(gpu, text):
    assert format_gpu_kind(gpu) == text


# -- placement -------------------------------------------------------------------------------------

PLACEMENT = VECTORS["placement"]


def _request(data: dict) -> ResourceRequest:
    return ResourceRequest(data["cpu"], data["memory"], data["gpu_resource"], data["gpu_count"])


@pytest.mark.parametrize("case", PLACEMENT["node_unfit_reason"])
def test_node_unfit_reason(case):
    got = node_unfit_reason(
        case["node"],
        _request(case["request"]),
        ratio=case["ratio"],
        tolerations=case["tolerations"],
    )
    assert got == case["expected"]


@pytest.mark.parametrize("case", PLACEMENT["why_nothing_fits"])
def test_why_nothing_fits(case):
    got = why_nothing_fits(
        case["nodes"],
        _request(case["request"]),
        ratio=case["ratio"],
        tolerations=case["tolerations"],
    )
    assert got == case["expected"]


@pytest.mark.parametrize("case", PLACEMENT["size_limits"])
def test_size_limits(case):
    got = size_limits(ResourceCaps(**case["caps"]), case["nodes"], ratio=case["ratio"])
    assert got == case["expected"]


@pytest.mark.parametrize("case", PLACEMENT["gpu_absence"])
def test_gpu_absence(case):
    assert gpu_absence(case["nodes"], case["resource"], source=case["source"]) == case["expected"]


@pytest.mark.parametrize("case", PLACEMENT["node_label"])
def test_node_label(case):
    assert node_label(case["node"]) == case["expected"]


@pytest.mark.parametrize("case", PLACEMENT["gpu_kind_labels"])
def test_gpu_kind_labels(case):
    assert [kind.label for kind in gpu_kinds(case["nodes"])] == case["expected"]


# -- node notes ------------------------------------------------------------------------------------

NOTES = VECTORS["node_notes"]


@pytest.mark.parametrize("case", NOTES["memory_notes"])
def test_memory_notes(case):
    assert memory_notes(case["nodes"]) == case["expected"]


@pytest.mark.parametrize("case", NOTES["gpu_notes"])
def test_gpu_notes(case):
    assert gpu_notes(case["nodes"]) == case["expected"]


@pytest.mark.parametrize("case", NOTES["gpu_use_lines"])
def test_gpu_use_lines(case):
    assert gpu_use_lines(case["nodes"]) == case["expected"]


@pytest.mark.parametrize("case", NOTES["cpu_notes"])
def test_cpu_notes(case):
    assert cpu_notes(case["nodes"]) == case["expected"]


@pytest.mark.parametrize("case", NOTES["live_node_label"])
def test_live_node_label(case):
    assert live_node_label(case["label"], case["name"], case["gpu_metrics"]) == case["expected"]


@pytest.mark.parametrize("case", NOTES["live_gpu_lines"])
def test_live_gpu_lines(case):
    assert live_gpu_lines(case["selected"], case["gpu_metrics"]) == case["expected"]


# -- image references ------------------------------------------------------------------------------


@pytest.mark.parametrize("case", VECTORS["image_reference"], ids=lambda c: c["reference"][:30])
def test_image_reference(case):
    try:
        registry = normalize_registry(parse_image_reference(case["reference"]).registry)
        error = None
    except ValueError as e:
        registry, error = None, str(e)
    assert (error, registry) == (case["error"], case["registry"])


# -- the whole form --------------------------------------------------------------------------------

EVALUATE = VECTORS["evaluate"]


@pytest.mark.parametrize("name", sorted(EVALUATE["contexts"]))
def test_each_context_is_what_the_server_sends_the_browser(name):
    # The TypeScript reads the form configuration from the vectors; it must be the server's.
    for snapshot in EVALUATE["snapshots"].values():
        assert front_end_config(name, snapshot) == EVALUATE["contexts"][name]["config"]


@pytest.mark.parametrize("case", EVALUATE["cases"], ids=lambda c: c["name"])
def test_the_form_says_what_the_vectors_say(case):
    snapshot = EVALUATE["snapshots"][case["snapshot"]]
    assert evaluate_case(case["context"], snapshot, case["choice"]) == case["expected"]


def test_every_context_and_snapshot_is_used():
    cases = EVALUATE["cases"]
    assert {c["context"] for c in cases} == set(EVALUATE["contexts"]) == set(CONTEXTS)
    assert {c["snapshot"] for c in cases} == set(EVALUATE["snapshots"])
