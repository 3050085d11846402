"""Parsing and validating spawn options: tables of cases, then properties over any input."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jupyter_tk.hub.form import parse_form
from jupyter_tk.hub.placement import scheduling_amounts
from jupyter_tk.hub.quantities import parse_quantity
from jupyter_tk.hub.validation import InvalidOptions, validate_user_options
from tests.support.spawn_fixtures import GIB, GPU, MIG, context, lab_snapshot, node


def form(**fields: str) -> dict[str, list[str]]:
    return {name: [value] for name, value in fields.items()}


def accept(options, **kwargs):
    return validate_user_options(options, context(**kwargs))


def refuse(options, **kwargs) -> InvalidOptions:
    with pytest.raises(InvalidOptions) as info:
        validate_user_options(options, context(**kwargs))
    return info.value


# -- what is accepted ---------------------------------------------------------------------------


def test_a_preset_sets_the_size_and_wins_over_sent_fields():
    options = parse_form(form(profile="gpu-1", image="tk-jupyter-ml-gpu", cpu="15", node="gpu-1"))
    got = accept(options)
    assert (got.cpu, got.memory, got.gpu_resource, got.gpu_count) == (4.0, 16 * GIB, GPU, 1)
    assert got.image == "nvcr.io/nvidia/pytorch:24.05-py3"
    assert got.user_options() == {
        "profile": "gpu-1",
        "image": "tk-jupyter-ml-gpu",
        "node": "gpu-1",
        "cpu": 4.0,
        "memory": "16Gi",
        "gpu": {"resource": GPU, "count": 1},
    }


def test_a_custom_size_is_parsed_from_the_form():
    options = parse_form(
        form(
            profile="custom",
            image="",
            custom_image="nvcr.io/nvidia/pytorch:24.05-py3",
            node="",
            cpu="2.5",
            memory="6Gi",
            gpu_resource=MIG,
            gpu_count="1",
        )
    )
    assert options == {
        "profile": "custom",
        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
        "node": None,
        "cpu": "2.5",
        "memory": "6Gi",
        "gpu": {"resource": MIG, "count": "1"},
    }
    got = accept(options)
    assert (got.cpu, got.memory, got.gpu_resource, got.gpu_count) == (2.5, 6 * GIB, MIG, 1)
    assert got.image_name is None


def test_a_deep_link_with_only_an_image_gets_the_defaults():
    got = accept(parse_form({"image": ["tk-jupyter-scipy"]}))
    assert got.profile == "cpu-basic"  # the first preset of the rule
    assert got.node is None


def test_empty_user_options_start_the_default_server():
    got = accept({})
    assert (got.profile, got.image_name, got.node) == ("cpu-basic", "tk-jupyter-scipy", None)


def test_a_deep_link_with_a_size_is_a_custom_choice():
    got = accept(parse_form({"cpu": ["3"], "memory": ["5Gi"]}))
    assert (got.profile, got.cpu, got.memory) == ("custom", 3.0, 5 * GIB)


def test_rest_numbers_and_quantities_are_accepted_in_json_types():
    got = accept({"profile": "custom", "cpu": 0.5, "memory": 2 * GIB, "gpu": None})
    assert (got.cpu, got.memory) == (0.5, 2 * GIB)
    assert accept({"profile": "custom", "cpu": "500m"}).cpu == 0.5


def test_the_fit_uses_what_the_pod_requests():
    # 12 CPU does not fit cpu-1 (8 free) unless only half of it is requested.
    refuse({"profile": "custom", "cpu": 12, "node": "cpu-1"})
    assert accept({"profile": "custom", "cpu": 12, "node": "cpu-1"}, ratio=0.5).node == "cpu-1"


# -- what is refused, and the message ------------------------------------------------------------

REFUSALS = [
    ("unknown image", {"image": "nope"}, "Unknown image 'nope'"),
    ("image not for the group", {"image": "other-team-image"}, "not available to your group"),
    ("custom image not allowed", {"image": "nvcr.io/x/y:1"}, "Unknown image"),
    ("unknown preset", {"profile": "huge"}, "Unknown preset 'huge'"),
    ("cpu over cap", {"profile": "custom", "cpu": "5"}, "over your limit of 4 CPU"),
    ("memory over cap", {"profile": "custom", "memory": "9Gi"}, "over your limit of 8 GiB"),
    ("too many GPUs", {"profile": "custom", "gpu": {"resource": MIG, "count": 2}}, "limit is 1"),
    ("node not allowed", {"node": "gpu-1"}, "may not start servers on the node 'gpu-1'"),
    ("node unknown", {"node": "cpu-9"}, "no node called 'cpu-9'"),
    ("node not ready", {"node": "mig-1", "profile": "cpu-basic"}, "tainted"),
    (
        "GPU kind absent",
        {"profile": "custom", "gpu": {"resource": GPU, "count": 1}},
        "offers the GPU kind 'nvidia.com/gpu'",
    ),
    ("NaN", {"profile": "custom", "cpu": "NaN"}, "CPU must be a number"),
    ("inf", {"profile": "custom", "cpu": "inf"}, "CPU must be a number"),
    ("1e309", {"profile": "custom", "memory": "1e309"}, "far more than any server can have"),
    ("huge", {"profile": "custom", "cpu": 1e300}, "far more than any server can have"),
    ("negative", {"profile": "custom", "cpu": "-1"}, "more than 0"),
    ("zero", {"profile": "custom", "cpu": 0}, "more than 0"),
    ("arabic digit", {"profile": "custom", "cpu": "\u0661"}, "CPU must be a number"),
    ("fullwidth digit", {"profile": "custom", "memory": "\uff18Gi"}, "Memory must be a number"),
    ("bool", {"profile": "custom", "cpu": True}, "CPU must be a number"),
    ("float infinity", {"profile": "custom", "cpu": math.inf}, "CPU must be a number"),
    ("sub-millicore", {"profile": "custom", "cpu": "0.0001"}, "steps of 0.001"),
    ("fractional bytes", {"profile": "custom", "memory": "1.5"}, "whole number of bytes"),
    ("too little memory", {"profile": "custom", "memory": "1Mi"}, "at least 256 MiB"),
    (
        "huge GPU count",
        {"profile": "custom", "gpu": {"resource": MIG, "count": 10**9}},
        "more than any server",
    ),
    (
        "GPU count text",
        {"profile": "custom", "gpu": {"resource": MIG, "count": "two"}},
        "whole number",
    ),
    ("unknown key", {"cpu": 1, "privileged": True}, "Unknown option 'privileged'"),
    ("not an object", ["cpu"], "must be a JSON object"),
    ("unicode junk", {"image": "\u202eevil\x00"}, "Unknown image"),
]


@pytest.mark.parametrize(("what", "options", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_students_get_a_clear_400(what, options, message):
    error = refuse(options, group="students")
    assert error.status_code == 400
    assert message in str(error)
    assert error.jupyterhub_message == str(error)


def test_a_gpu_image_needs_a_gpu():
    error = refuse({"image": "tk-jupyter-ml-gpu", "profile": "cpu-basic"})
    assert "needs a GPU" in str(error)


def test_a_custom_image_from_another_registry_is_refused():
    error = refuse({"image": "docker.io/library/ubuntu:24.04"})
    assert "custom images may only come from nvcr.io (it is on docker.io)" in str(error)
    assert "not a valid image reference" in str(refuse({"image": "nvcr.io/UPPER/x"}))


def test_no_room_anywhere_is_refused_with_the_scheduler_like_reason():
    error = refuse({"profile": "gpu-2"})
    assert "No node has room for 8 CPU and 32 GiB of memory with 2 nvidia.com/gpu" in str(error)
    assert "not enough nvidia.com/gpu" in str(error)


def test_a_node_without_room_is_refused_with_its_reason():
    error = refuse({"profile": "custom", "cpu": 10, "node": "cpu-1"})
    assert "The node cpu-1 cannot take" in str(error)
    assert "only 8 CPU free" in str(error)


def test_capacity_is_checked_against_the_current_snapshot():
    options = {"profile": "gpu-1", "node": "gpu-1", "image": "tk-jupyter-ml-gpu"}
    accept(options)
    taken = lab_snapshot()
    taken["nodes"][1] = node("gpu-1", 16, 64, gpus=[{**taken["nodes"][1]["gpus"][0], "free": 0}])
    assert "only 0 of 4 nvidia.com/gpu free" in str(refuse(options, snapshot=taken))


@pytest.mark.parametrize(
    "form_data",
    [
        {"cpu": ["1", "2"]},
        {"image": ["a" * 5000]},
        {"profile": [b"custom"]},
        "profile=custom",
    ],
)
def test_malformed_form_data_is_refused(form_data):
    with pytest.raises(InvalidOptions):
        parse_form(form_data)


def test_the_custom_image_choice_needs_a_reference():
    with pytest.raises(InvalidOptions, match="Type the custom image"):
        parse_form(form(image="", custom_image="  "))


# -- strict on every path (REST bodies as sent, no profile) --------------------------------------

STRICT_REST = [
    ("NaN", {"cpu": math.nan}, "CPU must be a number such as 2, 0.5 or 500m, got nan."),
    ("negative", {"cpu": -1}, "CPU must be more than 0, got -1."),
    ("a list", {"cpu": [1]}, "CPU must be a number, got [1]."),
    ("fractional bytes", {"memory": 1.5}, "Memory must be a whole number of bytes, got 1.5."),
    (
        "cpu as a GPU kind",
        {"gpu": {"resource": "cpu", "count": 1}},
        "No node you may use offers the GPU kind 'cpu'; the kinds you may use are "
        "nvidia.com/gpu, nvidia.com/mig-1g.10gb.",
    ),
    ("trailing newline", {"memory": "4Gi\n"}, "Memory must be a number such as 8Gi or 512Mi"),
    ("leading space", {"cpu": " 1"}, "CPU must be a number such as 2, 0.5 or 500m, got ' 1'."),
    ("GPU count with a space", {"gpu": {"resource": GPU, "count": " 1"}}, "whole number"),
    ("a size with a preset", {"profile": "cpu-basic", "cpu": 3}, "The preset cpu-basic sets cpu"),
    ("NaN with a preset", {"profile": "cpu-basic", "cpu": math.nan}, "CPU must be a number"),
    ("spawner overrides", {"spawner_overrides": {"privileged": True}}, "Unknown option"),
]


@pytest.mark.parametrize(
    ("what", "options", "message"), STRICT_REST, ids=[r[0] for r in STRICT_REST]
)
def test_malformed_rest_options_are_refused_even_without_a_profile(what, options, message):
    error = refuse(options)
    assert error.status_code == 400
    assert message in str(error)


def test_a_size_without_a_profile_is_a_custom_choice():
    got = accept({"gpu": {"resource": GPU, "count": 1}, "image": "tk-jupyter-ml-gpu"})
    assert (got.profile, got.gpu_resource, got.gpu_count, got.cpu) == ("custom", GPU, 1, 1.0)


def test_a_gpu_image_with_a_cpu_preset_says_the_preset_has_no_gpu():
    error = refuse({"profile": "cpu-basic", "image": "tk-jupyter-ml-gpu"})
    assert str(error) == (
        "The image tk-jupyter-ml-gpu needs a GPU, and the preset cpu-basic has none: "
        "choose a GPU preset, or 'custom' with a GPU."
    )
    error = refuse({"profile": "custom", "image": "tk-jupyter-ml-gpu"})
    assert str(error) == "The image tk-jupyter-ml-gpu needs a GPU: request at least one GPU."


def test_saved_options_of_a_preset_validate_again():
    first = accept({"profile": "gpu-1", "image": "tk-jupyter-ml-gpu"})
    assert accept(first.user_options()) == first


def test_the_form_trims_what_people_type_but_rest_does_not():
    got = accept(parse_form(form(profile="custom", cpu=" 1", memory="4Gi\n")))
    assert (got.cpu, got.memory) == (1.0, 4 * GIB)
    assert "got ' 1'" in str(refuse({"profile": "custom", "cpu": " 1"}))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("local", "This machine has no GPU: choose a size without a GPU."),
        ("kubernetes", "No node you may use offers GPUs: choose a size without a GPU."),
    ],
)
def test_a_gpu_where_there_is_none_says_so(source, message):
    snapshot = {**lab_snapshot(), "source": source, "nodes": [node("cpu-1", 8, 32)]}
    assert str(refuse({"profile": "gpu-1"}, snapshot=snapshot)) == message
    custom = {"profile": "custom", "gpu": {"resource": GPU, "count": 1}}
    assert str(refuse(custom, snapshot=snapshot)) == message


def test_a_preset_brings_its_spawner_overrides_and_a_user_cannot_add_any():
    from jupyter_tk.hub.policy_document import parse_policy
    from tests.support.spawn_fixtures import POLICY

    override = {"volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]}
    presets = [{**POLICY["presets"][0], "kubespawner_override": override}, *POLICY["presets"][1:]]
    rule = parse_policy({**POLICY, "presets": presets}).rules[0]
    ctx = dataclasses.replace(context(), rule=rule)
    got = validate_user_options({"profile": "cpu-basic"}, ctx)
    assert got.spawner_overrides == override
    got.spawner_overrides["volumes"].clear()  # a spawner changing its copy changes no policy
    assert validate_user_options({"profile": "cpu-basic"}, ctx).spawner_overrides == override
    assert validate_user_options({"profile": "custom"}, ctx).spawner_overrides == {}


# -- properties ---------------------------------------------------------------------------------

NUMBERISH = st.one_of(
    st.from_regex(r"[0-9]{1,4}(\.[0-9]{1,4})?(m|k|M|G|Ki|Mi|Gi|Ti|e[0-9]{1,3})?", fullmatch=True),
    st.sampled_from(
        [
            "NaN",
            "inf",
            "-inf",
            "1e309",
            "-1",
            "0",
            "1e-400",
            "\u0661",
            "\uff15",
            "9" * 40,
            "0x10",
            "1_000",
            " 2 ",
            "2.",
            ".5",
            "1e18Gi",
            "",
        ]
    ),
    st.text(max_size=12),
)
FIELD_VALUES = {
    "profile": st.sampled_from(["cpu-basic", "gpu-1", "gpu-2", "mig-small", "custom", "", "x"]),
    "image": st.one_of(
        st.sampled_from(["tk-jupyter-scipy", "tk-jupyter-ml-gpu", "other-team-image", ""]),
        st.text(max_size=20),
    ),
    "custom_image": st.sampled_from(["", "nvcr.io/nvidia/pytorch:24.05-py3", "ubuntu", "a:b:c"]),
    "node": st.sampled_from(["", "cpu-1", "gpu-1", "mig-1", "old", "off", "nope", "gpu-1 "]),
    "cpu": NUMBERISH,
    "memory": NUMBERISH,
    "gpu_resource": st.sampled_from(["", GPU, MIG, "amd.com/gpu", "cpu", "memory"]),
    "gpu_count": NUMBERISH,
}
FORMS = st.fixed_dictionaries(
    {},
    optional={
        name: st.lists(values, min_size=0, max_size=2) for name, values in FIELD_VALUES.items()
    },
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=8,
)
USER_OPTIONS = st.one_of(
    JSON,
    st.fixed_dictionaries(
        {},
        optional={
            "profile": FIELD_VALUES["profile"] | JSON,
            "image": FIELD_VALUES["image"] | JSON,
            "node": FIELD_VALUES["node"] | st.none() | JSON,
            "cpu": NUMBERISH | st.floats() | st.integers() | JSON,
            "memory": NUMBERISH | st.integers() | JSON,
            "gpu": st.none()
            | st.fixed_dictionaries(
                {"resource": FIELD_VALUES["gpu_resource"], "count": NUMBERISH | st.integers()}
            )
            | JSON,
        },
    ),
)
GROUPS = st.sampled_from(["gpu-lab", "students", "anyone"])
RATIOS = st.sampled_from([1.0, 0.5, 0.25])


def check_within_policy_and_free(validated, ctx):
    caps = ctx.rule.max
    assert validated.cpu <= caps.cpu and validated.memory <= caps.memory
    assert validated.gpu_count <= caps.gpus
    assert validated.cpu >= ctx.limits.min_cpu and validated.memory >= ctx.limits.min_memory
    cpu, memory = scheduling_amounts(validated.request, ctx.limits.guarantee_ratio)
    nodes = {n["name"]: n for n in ctx.usable_nodes()}
    candidates = [nodes[validated.node]] if validated.node else list(nodes.values())

    def fits(n):
        gpus = {g["resource"]: g["free"] for g in n["gpus"]}
        return (
            n["ready"]
            and n["schedulable"]
            and cpu <= n["free"]["cpu"]
            and memory <= n["free"]["memory"]
            and (
                not validated.gpu_count
                or gpus.get(validated.gpu_resource, 0) >= validated.gpu_count
            )
        )

    assert any(fits(n) for n in candidates)
    if validated.image_name is not None:
        assert ctx.rule.allows_image(validated.image_name)
    else:
        assert ctx.rule.allows_registry(validated.image)
    # What is accepted round-trips: its canonical user_options are accepted again, unchanged.
    assert validate_user_options(validated.user_options(), ctx) == validated
    assert parse_quantity(validated.user_options()["memory"]) == validated.memory


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(form_data=FORMS, group=GROUPS, ratio=RATIOS)
def test_any_form_is_accepted_within_policy_or_refused_cleanly(form_data, group, ratio):
    ctx = context(group=group, ratio=ratio)
    try:
        validated = validate_user_options(parse_form(form_data), ctx)
    except InvalidOptions as e:
        assert e.status_code == 400 and str(e)
        event("refused")
        return
    event("accepted")
    check_within_policy_and_free(validated, ctx)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(user_options=USER_OPTIONS, group=GROUPS, ratio=RATIOS)
def test_any_rest_user_options_are_accepted_within_policy_or_refused_cleanly(
    user_options, group, ratio
):
    ctx = context(group=group, ratio=ratio)
    try:
        validated = validate_user_options(user_options, ctx)
    except InvalidOptions as e:
        assert e.status_code == 400 and str(e)
        event("refused")
        return
    event("accepted")
    check_within_policy_and_free(validated, ctx)


def test_an_inventory_that_never_synced_asks_to_try_again():
    error = refuse({}, snapshot={"nodes": [], "stale": True, "age_seconds": 0.0})
    assert error.status_code == 503
    assert "not known yet" in str(error)
