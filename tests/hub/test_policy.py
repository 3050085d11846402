"""Group policy: parsing with precise errors, rule matching, presets, and a live policy file."""

import copy
import json
import logging
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jupyter_tk.hub.policy import (
    CustomImages,
    Policy,
    PolicyError,
    PolicyRule,
    Preset,
    ResourceCaps,
    load_policy_file,
    parse_image_reference,
    parse_policy,
)

GiB = 1024**3
MiB = 1024**2

PRESETS = [
    {"slug": "cpu-basic", "display_name": "CPU basic", "cpu": 2, "memory": "4Gi"},
    {"slug": "cpu-large", "cpu": 8, "memory": "32Gi", "description": "Big"},
    {
        "slug": "gpu-1",
        "cpu": 8,
        "memory": "32Gi",
        "gpu": {"resource": "nvidia.com/gpu", "count": 1},
    },
    {
        "slug": "gpu-2",
        "cpu": 16,
        "memory": "64Gi",
        "gpu": {"resource": "nvidia.com/gpu", "count": 2},
    },
    {
        "slug": "mig-small",
        "cpu": "500m",
        "memory": "1.5Gi",
        "gpu": {"resource": "nvidia.com/mig-1g.10gb", "count": 1},
    },
]
RULES = [
    {
        "groups": ["gpu-lab"],
        "max": {"cpu": 16, "memory": "128Gi", "gpus": 4},
        "images": ["*"],
        "custom_images": {"allowed": True, "registries": ["nvcr.io", "localhost:5000"]},
        "nodes": ["gpu-*"],
    },
    {
        "groups": ["students", "teachers"],
        "max": {"cpu": 4, "memory": "16Gi", "gpus": 1},
        "images": ["tk-jupyter-*"],
        "presets": ["mig-small", "cpu-basic", "gpu-2"],
    },
    {"groups": ["*"], "max": {"cpu": 2, "memory": "4Gi", "gpus": 0}, "images": ["scipy"]},
]
DOCUMENT = {"presets": PRESETS, "rules": RULES}


def document(**changes):
    data = copy.deepcopy(DOCUMENT)
    data.update(changes)
    return data


# -- parsing -------------------------------------------------------------------------------------


def test_parses_caps_and_defaults():
    policy = parse_policy(DOCUMENT, source="test")
    gpu_lab, students, everyone = policy.rules
    assert gpu_lab.groups == ("gpu-lab",)
    assert gpu_lab.max == ResourceCaps(cpu=16.0, memory=128 * GiB, gpus=4)
    assert gpu_lab.custom_images == CustomImages(True, ("nvcr.io", "localhost:5000"))
    assert students.nodes == ("*",)
    assert students.custom_images == CustomImages(allowed=False, registries=())
    assert everyone.max == ResourceCaps(cpu=2.0, memory=4 * GiB, gpus=0)
    assert policy.source == "test"
    mig = policy.presets[-1]
    assert mig == Preset(
        slug="mig-small",
        display_name="mig-small",
        description="",
        cpu=0.5,
        memory=1536 * MiB,
        gpu_resource="nvidia.com/mig-1g.10gb",
        gpu_count=1,
    )


@pytest.mark.parametrize(
    ("value", "cores"),
    [(2, 2.0), (0.5, 0.5), ("500m", 0.5), ("1.5", 1.5), ("2e1", 20.0), ("0", 0.0)],
)
def test_cpu_caps_accept_numbers_and_quantities(value, cores):
    rule = {"groups": ["*"], "max": {"cpu": value, "memory": "1Gi"}}
    assert parse_policy({"rules": [rule]}).rules[0].max.cpu == cores


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("4Gi", 4 * GiB),
        ("512Mi", 512 * MiB),
        ("1.5Gi", 1536 * MiB),
        ("1G", 10**9),
        ("2e3", 2000),
        (1073741824, GiB),
        ("100m", 1),  # a fraction of a byte rounds up, as Kubernetes does
    ],
)
def test_memory_caps_are_bytes(value, size):
    rule = {"groups": ["*"], "max": {"cpu": 1, "memory": value}}
    assert parse_policy({"rules": [rule]}).rules[0].max.memory == size


def test_gpus_default_to_none():
    rule = {"groups": ["*"], "max": {"cpu": 1, "memory": "1Gi"}}
    assert parse_policy({"rules": [rule]}).rules[0].max.gpus == 0


def _bad(path_and_message, **changes):
    return pytest.param(document(**changes), path_and_message, id=path_and_message[:50])


def _rule(index, **changes):
    rules = copy.deepcopy(RULES)
    rules[index].update(changes)
    return rules


def _rule_max(index, **changes):
    rules = copy.deepcopy(RULES)
    rules[index]["max"].update(changes)
    return rules


def _preset(index, **changes):
    presets = copy.deepcopy(PRESETS)
    presets[index].update(changes)
    return presets


@pytest.mark.parametrize(
    ("data", "message"),
    [
        pytest.param([], "the policy must be a mapping, got list", id="not-a-mapping"),
        pytest.param({"presets": []}, "rules: required", id="no-rules"),
        _bad("rules: at least one rule", rules=[]),
        _bad("rules: expected a list", rules={"groups": ["*"]}),
        _bad("colour: unknown key", colour="blue"),
        _bad(
            "rules[1].maxx: unknown key (expected custom_images, groups,", rules=_rule(1, maxx={})
        ),
        _bad("rules[0].max: required", rules=[{"groups": ["*"]}]),
        _bad("rules[2].groups: expected a list, got the string", rules=_rule(2, groups="*")),
        _bad("rules[2].groups: expected at least one entry", rules=_rule(2, groups=[])),
        _bad("rules[2].groups[0]: expected a non-empty string", rules=_rule(2, groups=[1])),
        _bad("rules[0].max: expected a mapping, got nothing (null)", rules=_rule(0, max=None)),
        _bad("rules[1].max.memory: '-4Gi' is negative", rules=_rule_max(1, memory="-4Gi")),
        _bad("rules[1].max.memory:", rules=_rule_max(1, memory="4GB")),
        _bad("rules[1].max.memory:", rules=_rule_max(1, memory="lots")),
        _bad(
            "rules[1].max.memory: expected a number or a quantity string, got list",
            rules=_rule_max(1, memory=[4]),
        ),
        _bad("rules[0].max.cpu: -1 is negative", rules=_rule_max(0, cpu=-1)),
        _bad(
            "rules[0].max.cpu: expected a number or a quantity string, got bool",
            rules=_rule_max(0, cpu=True),
        ),
        _bad("rules[0].max.cpu:", rules=_rule_max(0, cpu=float("nan"))),
        _bad("rules[0].max.cpu:", rules=_rule_max(0, cpu=float("inf"))),
        _bad("rules[0].max.cpu:", rules=_rule_max(0, cpu="\uff11")),
        _bad("rules[0].max.gpus: -1 is negative", rules=_rule_max(0, gpus=-1)),
        _bad("rules[0].max.gpus: expected a whole number, got 1.5", rules=_rule_max(0, gpus=1.5)),
        _bad(
            "rules[0].max.gpus: expected a whole number, got the string",
            rules=_rule_max(0, gpus="2"),
        ),
        _bad("rules[0].max.disk: unknown key", rules=_rule_max(0, disk="10Gi")),
        _bad(
            "rules[0].custom_images.registries: list the registries",
            rules=_rule(0, custom_images={"allowed": True}),
        ),
        _bad(
            "rules[0].custom_images.registries[1]: invalid registry 'quay.io/x'",
            rules=_rule(0, custom_images={"allowed": True, "registries": ["nvcr.io", "quay.io/x"]}),
        ),
        _bad(
            "rules[0].custom_images.allowed: expected true or false",
            rules=_rule(0, custom_images={"allowed": "yes", "registries": ["*"]}),
        ),
        _bad("rules[0].custom_images.only: unknown key", rules=_rule(0, custom_images={"only": 1})),
        _bad(
            "rules[1].presets[1]: no preset has the slug 'nope'",
            rules=_rule(1, presets=["gpu-1", "nope"]),
        ),
        _bad("rules[1].images[0]: expected a non-empty string", rules=_rule(1, images=[""])),
        _bad("rules[1].nodes: expected a list", rules=_rule(1, nodes="gpu-*")),
        _bad("presets: expected a list", presets={"slug": "x"}),
        _bad("presets[0].slug: 'custom' is reserved", presets=_preset(0, slug="custom")),
        _bad(
            "presets[1].slug: 'cpu-basic' is used by an earlier preset",
            presets=_preset(1, slug="cpu-basic"),
        ),
        _bad("presets[0].slug: 'CPU' is not a slug", presets=_preset(0, slug="CPU")),
        _bad("presets[0].slug: '-x' is not a slug", presets=_preset(0, slug="-x")),
        _bad("presets[0].memory: required", presets=[{"slug": "a", "cpu": 1}]),
        _bad("presets[0].cpu: a preset needs more than 0 cores", presets=_preset(0, cpu=0)),
        _bad("presets[0].memory: a preset needs more than 0 bytes", presets=_preset(0, memory="0")),
        _bad("presets[0].display_name: expected a string", presets=_preset(0, display_name=3)),
        _bad(
            "presets[2].gpu.count: -1 is negative",
            presets=_preset(2, gpu={"resource": "nvidia.com/gpu", "count": -1}),
        ),
        _bad(
            "presets[2].gpu.resource: 'nvidia.com/gpu!' is not a Kubernetes resource",
            presets=_preset(2, gpu={"resource": "nvidia.com/gpu!", "count": 1}),
        ),
        _bad(
            "presets[2].gpu.count: required", presets=_preset(2, gpu={"resource": "nvidia.com/gpu"})
        ),
        _bad(
            "presets[2].gpu.model: unknown key",
            presets=_preset(2, gpu={"resource": "nvidia.com/gpu", "count": 1, "model": "A100"}),
        ),
    ],
)
def test_invalid_documents_name_the_offending_key(data, message):
    with pytest.raises(PolicyError) as info:
        parse_policy(data)
    assert str(info.value).startswith(message), str(info.value)


def test_a_gpu_count_of_zero_means_no_gpu():
    presets = _preset(2, gpu={"resource": "nvidia.com/gpu", "count": 0})
    preset = parse_policy(document(presets=presets)).presets[2]
    assert (preset.gpu_resource, preset.gpu_count) == (None, 0)


# -- matching ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules():
    return parse_policy(DOCUMENT).rules


@pytest.mark.parametrize(
    ("groups", "expected"),
    [
        (["gpu-lab"], 0),
        (["students"], 1),
        (["teachers", "other"], 1),
        (["gpu-lab", "students"], 0),  # the first matching rule wins, not the most generous
        (["other"], 2),
        ([], 2),  # "*" matches everyone, even users in no group
    ],
)
def test_first_rule_whose_groups_meet_wins(rules, groups, expected):
    policy = Policy(rules=RULES, presets=PRESETS)
    assert policy.rule_for(groups) is policy.document().rules[expected]
    assert policy.rule_for(iter(groups)) == rules[expected]


def test_no_matching_rule_means_none():
    policy = Policy(rules=RULES[:2], presets=PRESETS)
    assert policy.rule_for(["gpu-lab"]) is not None
    assert policy.rule_for(["nobody"]) is None
    assert policy.rule_for([]) is None
    # A single group name is one group, not its letters.
    assert policy.rule_for("students") is not None
    assert policy.rule_for("tudents") is None


def test_groups_may_be_jupyterhub_group_objects():
    from jupyterhub import orm

    policy = Policy(rules=RULES, presets=PRESETS)
    assert policy.rule_for([orm.Group(name="students")]) is policy.document().rules[1]
    assert policy.error is None


@pytest.mark.parametrize(
    ("patterns", "name", "allowed"),
    [
        (("*",), "anything", True),
        (("tk-jupyter-*",), "tk-jupyter-ml-gpu", True),
        (("tk-jupyter-*",), "scipy", False),
        (("scipy", "tk-*"), "scipy", True),
        (("scipy",), "SciPy", False),  # case-sensitive
        (("gpu-node-[12]",), "gpu-node-2", True),
        (("gpu-node-[12]",), "gpu-node-3", False),
        ((), "scipy", False),
    ],
)
def test_image_and_node_globs(patterns, name, allowed):
    rule = PolicyRule(groups=("*",), max=ResourceCaps(1, 1, 0), images=patterns, nodes=patterns)
    assert rule.allows_image(name) is allowed
    assert rule.allows_node(name) is allowed


@pytest.mark.parametrize(
    ("registries", "reference", "allowed"),
    [
        (("docker.io",), "ubuntu:22.04", True),  # bare names are on docker.io
        (("docker.io",), "jupyter/scipy-notebook", True),
        (("docker.io",), "index.docker.io/library/ubuntu", True),
        (("docker.io",), "quay.io/jupyter/scipy-notebook", False),
        (("nvcr.io",), "nvcr.io/nvidia/pytorch:24.05-py3", True),
        (("nvcr.io",), "NVCR.IO/nvidia/pytorch", True),  # hosts compare case-insensitively
        (("nvcr.io",), "evil-nvcr.io/nvidia/pytorch", False),
        (("nvcr.io",), "nvcr.io.evil.com/nvidia/pytorch", False),
        (("nvcr.io",), "nvcr.io:443/nvidia/pytorch", False),  # a port is part of the host
        (("localhost:5000",), "localhost:5000/img", True),
        (("localhost:5000",), "localhost/img", False),
        (("localhost:5000",), "localhost:5001/img", False),
        (("localhost",), "localhost/img", True),
        (("*",), "anything.example.com:8443/x/y@sha256:" + "a" * 64, True),
        (("*",), "Not A Reference", False),
        (("nvcr.io",), "nvcr.io/nvidia/PyTorch", False),
    ],
)
def test_registry_allowlist(registries, reference, allowed):
    rule = PolicyRule(
        groups=("*",),
        max=ResourceCaps(1, 1, 0),
        custom_images=CustomImages(allowed=True, registries=registries),
    )
    assert rule.allows_registry(reference) is allowed
    if allowed:
        assert rule.allows_registry(parse_image_reference(reference)) is True


def test_registry_allowlist_entries_are_normalized():
    rule = {
        "groups": ["*"],
        "max": {"cpu": 1, "memory": "1Gi"},
        "custom_images": {"allowed": True, "registries": ["Index.Docker.IO", "NVCR.io"]},
    }
    parsed = parse_policy({"rules": [rule]}).rules[0]
    assert parsed.custom_images.registries == ("docker.io", "nvcr.io")
    assert parsed.allows_registry("ubuntu")
    assert parsed.allows_registry("nvcr.io/nvidia/cuda:12.4.1-base-ubuntu22.04")


def test_custom_images_not_allowed_refuses_every_registry():
    rule = PolicyRule(
        groups=("*",),
        max=ResourceCaps(1, 1, 0),
        custom_images=CustomImages(allowed=False, registries=("*",)),
    )
    assert not rule.allows_registry("ubuntu")


# -- presets -------------------------------------------------------------------------------------


def test_presets_over_a_rules_caps_are_dropped(rules):
    gpu_lab, students, everyone = rules
    assert [p.slug for p in gpu_lab.presets] == [
        "cpu-basic",
        "cpu-large",
        "gpu-1",
        "gpu-2",
        "mig-small",
    ]
    # students list three presets; gpu-2 needs 2 GPUs, 16 cores and 64Gi, over their caps.
    assert [p.slug for p in students.presets] == ["mig-small", "cpu-basic"]
    # everyone: 2 cores, 4Gi, no GPU -> only cpu-basic (exactly at the caps) is offered.
    assert [p.slug for p in everyone.presets] == ["cpu-basic"]
    assert everyone.preset("cpu-basic").memory == 4 * GiB
    assert everyone.preset("gpu-1") is None
    for rule in rules:
        for preset in rule.presets:
            assert rule.max.covers(preset.cpu, preset.memory, preset.gpu_count)


def test_caps_covers():
    caps = ResourceCaps(cpu=2.0, memory=4 * GiB, gpus=1)
    assert caps.covers(2, 4 * GiB, 1)
    assert not caps.covers(2.001, 4 * GiB, 1)
    assert not caps.covers(2, 4 * GiB + 1, 1)
    assert not caps.covers(2, 4 * GiB, 2)


# -- a live policy file --------------------------------------------------------------------------


def write(path, data, *, json_format=False):
    text = json.dumps(data) if json_format else _yaml(data)
    path.write_text(text)
    # Filesystems with coarse timestamps could give two quick writes the same mtime; the size
    # usually differs anyway, but make the change unmistakable.
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))


def _yaml(data):
    import yaml

    return yaml.safe_dump(data)


@pytest.fixture
def policy_log(caplog):
    caplog.set_level(logging.INFO, logger="test-policy")
    return logging.getLogger("test-policy")


def test_policy_file_is_read_and_re_read_when_it_changes(tmp_path, policy_log):
    path = tmp_path / "policy.yaml"
    write(path, document())
    policy = Policy(policy_file=str(path), log=policy_log)
    assert policy.rule_for(["other"]).max.cpu == 2.0

    changed = document(rules=[{"groups": ["*"], "max": {"cpu": 3, "memory": "6Gi"}}])
    write(path, changed)
    assert policy.rule_for(["other"]).max.cpu == 3.0
    assert policy.rule_for(["gpu-lab"]).max.cpu == 3.0
    assert policy.error is None


def test_unchanged_file_is_not_parsed_again(tmp_path, policy_log, caplog):
    path = tmp_path / "policy.yaml"
    write(path, document())
    policy = Policy(policy_file=str(path), log=policy_log)
    first = policy.document()
    for _ in range(5):
        policy.rule_for(["gpu-lab"])
    assert policy.document() is first
    assert sum("Policy loaded" in r.getMessage() for r in caplog.records) == 1


def test_malformed_file_keeps_the_last_good_policy(tmp_path, policy_log, caplog):
    path = tmp_path / "policy.yaml"
    write(path, document())
    policy = Policy(policy_file=str(path), log=policy_log)
    good = policy.rule_for(["students"])

    path.write_text("rules: [ {groups: [students], max: {cpu: 4")  # cut off mid-edit
    assert policy.rule_for(["students"]) == good
    assert "is not valid YAML" in policy.error
    assert str(path) in policy.error

    write(path, document(rules=_rule_max(1, memory="-1Gi")))
    assert policy.rule_for(["students"]) == good
    assert policy.error.endswith("rules[1].max.memory: '-1Gi' is negative")
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 2  # once per broken version, not once per call
    assert "keeping the last good policy" in errors[-1]

    write(path, document(rules=_rule_max(1, cpu=5)))
    assert policy.rule_for(["students"]).max.cpu == 5.0
    assert policy.error is None


def test_missing_file_at_start_denies_everyone_with_a_clear_error(tmp_path, policy_log, caplog):
    path = tmp_path / "policy.yaml"
    policy = Policy(policy_file=str(path), log=policy_log)
    assert policy.rule_for(["gpu-lab"]) is None
    assert policy.error == f"policy file {path} cannot be read: No such file or directory"
    assert "nobody may start a server" in caplog.text

    write(path, document())  # the ConfigMap shows up later
    assert policy.rule_for(["gpu-lab"]) is not None
    assert policy.error is None


def test_file_removed_later_keeps_the_last_good_policy(tmp_path, policy_log):
    path = tmp_path / "policy.yaml"
    write(path, document())
    policy = Policy(policy_file=str(path), log=policy_log)
    assert policy.rule_for(["gpu-lab"]) is not None
    path.unlink()
    assert policy.rule_for(["gpu-lab"]) is not None
    assert "cannot be read" in policy.error


def test_configmap_style_symlink_swap_is_picked_up(tmp_path, policy_log):
    # Kubernetes updates a mounted ConfigMap by pointing "..data" at a new directory.
    for version, cpu in (("v1", 4), ("v2", 6)):
        (tmp_path / version).mkdir()
        rules = [{"groups": ["*"], "max": {"cpu": cpu, "memory": "1Gi"}}]
        write(tmp_path / version / "policy.yaml", {"rules": rules})
    (tmp_path / "..data").symlink_to("v1")
    (tmp_path / "policy.yaml").symlink_to("..data/policy.yaml")
    policy = Policy(policy_file=str(tmp_path / "policy.yaml"), log=policy_log)
    assert policy.rule_for([]).max.cpu == 4.0

    (tmp_path / "..data_tmp").symlink_to("v2")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert policy.rule_for([]).max.cpu == 6.0


def test_json_policy_file(tmp_path, policy_log):
    path = tmp_path / "policy.json"
    write(path, document(), json_format=True)
    assert Policy(policy_file=str(path), log=policy_log).rule_for(["gpu-lab"]).max.gpus == 4
    path.write_text("{'rules': []}")
    with pytest.raises(PolicyError, match="is not valid JSON"):
        load_policy_file(str(path))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "is empty"),
        ("- a\n- b\n", "the policy must be a mapping, got list"),
        ("rules: [\n", "is not valid YAML"),
        (b"\xff\xfe", "is not valid YAML"),
        (
            "rules:\n  - groups: [a]\n    max: {cpu: yes, memory: 1Gi}\n",
            "rules[0].max.cpu: expected a number",
        ),
    ],
)
def test_load_policy_file_errors(tmp_path, content, message):
    path = tmp_path / "policy.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(PolicyError) as info:
        load_policy_file(str(path))
    assert message in str(info.value)
    assert str(info.value).startswith(f"policy file {path}")


def test_oversized_policy_file_is_refused(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text("# padding\n" * 200_000)
    with pytest.raises(PolicyError, match="larger than"):
        load_policy_file(str(path))


def test_file_without_presets_uses_configured_presets(tmp_path, policy_log):
    path = tmp_path / "policy.yaml"
    write(path, {"rules": [RULES[0], RULES[2]]})  # no rule names a preset
    policy = Policy(policy_file=str(path), presets=PRESETS[:1], log=policy_log)
    assert [p.slug for p in policy.rule_for(["gpu-lab"]).presets] == ["cpu-basic"]
    write(path, document())  # now the file brings its own presets
    assert len(policy.rule_for(["gpu-lab"]).presets) == len(PRESETS)


def test_policy_file_defaults_to_the_environment(tmp_path, monkeypatch, policy_log):
    path = tmp_path / "policy.yaml"
    write(path, document())
    monkeypatch.setenv("JUPYTER_TK_POLICY", str(path))
    policy = Policy(log=policy_log)
    assert policy.policy_file == str(path)
    assert policy.rule_for(["gpu-lab"]).max.gpus == 4


def test_file_wins_over_configured_rules(tmp_path, policy_log):
    path = tmp_path / "policy.yaml"
    write(path, {"rules": [{"groups": ["*"], "max": {"cpu": 9, "memory": "1Gi"}}]})
    policy = Policy(policy_file=str(path), rules=RULES, log=policy_log)
    assert policy.rule_for(["gpu-lab"]).max.cpu == 9.0


# -- policy from traitlets config ----------------------------------------------------------------


def test_rules_from_config(policy_log):
    policy = Policy(rules=RULES, presets=PRESETS, log=policy_log)
    assert policy.rule_for(["students"]).max == ResourceCaps(4.0, 16 * GiB, 1)
    assert policy.document().source == "c.Policy"


def test_no_policy_configured_denies_everyone(policy_log, monkeypatch):
    monkeypatch.delenv("JUPYTER_TK_POLICY", raising=False)
    policy = Policy(log=policy_log)
    assert policy.rule_for(["gpu-lab"]) is None
    assert "no policy is configured" in policy.error


def test_invalid_config_denies_everyone_and_says_why(policy_log, caplog):
    policy = Policy(rules=_rule_max(0, memory="-1"), presets=PRESETS, log=policy_log)
    assert policy.rule_for(["gpu-lab"]) is None
    assert policy.error == "rules[0].max.memory: '-1' is negative"
    assert "rules[0].max.memory" in caplog.text

    policy.rules = RULES  # fixed at run time
    assert policy.rule_for(["gpu-lab"]) is not None
    assert policy.error is None


def test_policy_from_traitlets_config_object():
    from traitlets.config import Config

    config = Config()
    config.Policy.rules = RULES
    config.Policy.presets = PRESETS
    config.Policy.policy_file = ""
    policy = Policy(config=config)
    assert policy.rule_for(["teachers"]).images == ("tk-jupyter-*",)


# -- property: arbitrary documents ---------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["4Gi", "500m", "-1", "1e400", "2", "*", "nvidia.com/gpu", "\uff11"]),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(
            st.sampled_from(["cpu", "memory", "gpus", "groups", "slug", "resource", "count", "x"]),
            inner,
            max_size=4,
        ),
    ),
    max_leaves=12,
)
# Mostly well-formed values, so that many documents are accepted and their caps get checked.
_amounts = st.one_of(
    st.integers(min_value=0, max_value=64),
    st.floats(min_value=0, max_value=64),
    st.sampled_from(["500m", "2", "1.5", "16Gi", "512Mi", "1e1", "0"]),
    _scalars,
)
_counts = st.one_of(st.integers(min_value=0, max_value=8), _scalars)
_names = st.one_of(
    st.lists(st.sampled_from(["*", "gpu-lab", "students", "tk-*", "gpu-node-?"]), max_size=3),
    _values,
)
_rules = st.lists(
    st.fixed_dictionaries(
        {
            "groups": st.one_of(st.just(["*"]), _names),
            "max": st.one_of(
                st.fixed_dictionaries(
                    {"cpu": _amounts, "memory": _amounts}, optional={"gpus": _counts}
                ),
                _values,
            ),
        },
        optional={
            "images": _names,
            "nodes": _names,
            "presets": st.one_of(
                st.lists(st.sampled_from([p["slug"] for p in PRESETS]), max_size=3), _values
            ),
            "custom_images": st.one_of(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "allowed": st.booleans(),
                        "registries": st.one_of(
                            st.lists(st.sampled_from(["*", "nvcr.io", "Quay.io:443"])), _values
                        ),
                    },
                ),
                _values,
            ),
        },
    ),
    min_size=1,
    max_size=3,
)
_presets = st.one_of(
    st.just(PRESETS),
    st.lists(
        st.fixed_dictionaries(
            {
                "slug": st.sampled_from(["a", "b", "custom", "B"]),
                "cpu": _amounts,
                "memory": _amounts,
            },
            optional={
                "gpu": st.one_of(
                    st.fixed_dictionaries(
                        {
                            "resource": st.sampled_from(["nvidia.com/gpu", "x/", "amd.com/gpu"]),
                            "count": _counts,
                        }
                    ),
                    _values,
                )
            },
        ),
        max_size=3,
    ),
    _values,
)


@settings(max_examples=300, deadline=None)
@given(rules=_rules, presets=_presets)
def test_any_document_raises_only_policy_error_and_accepted_caps_are_sane(rules, presets):
    try:
        policy = parse_policy({"rules": rules, "presets": presets})
    except PolicyError:
        return
    for rule in policy.rules:
        assert rule.max.cpu >= 0 and rule.max.memory >= 0 and rule.max.gpus >= 0
        assert isinstance(rule.max.memory, int) and isinstance(rule.max.gpus, int)
        for preset in rule.presets:
            assert rule.max.covers(preset.cpu, preset.memory, preset.gpu_count)


_valid_cpu = st.one_of(
    st.integers(min_value=1, max_value=64),
    st.floats(min_value=0.001, max_value=64),
    st.integers(min_value=1, max_value=64000).map(lambda m: f"{m}m"),
)
_valid_memory = st.one_of(
    st.integers(min_value=1, max_value=2**40),
    st.integers(min_value=1, max_value=1024).map(lambda n: f"{n}Mi"),
    st.integers(min_value=1, max_value=512).map(lambda n: f"{n}Gi"),
)
_valid_presets = st.lists(
    st.fixed_dictionaries(
        {"cpu": _valid_cpu, "memory": _valid_memory},
        optional={
            "gpu": st.fixed_dictionaries(
                {
                    "resource": st.sampled_from(["nvidia.com/gpu", "nvidia.com/mig-1g.10gb"]),
                    "count": st.integers(min_value=0, max_value=4),
                }
            )
        },
    ),
    max_size=6,
).map(lambda items: [{"slug": f"p{i}", **item} for i, item in enumerate(items)])
_valid_rule = st.fixed_dictionaries(
    {
        "groups": st.lists(st.sampled_from(["*", "a", "b"]), min_size=1, max_size=2),
        "max": st.fixed_dictionaries(
            {"cpu": st.one_of(st.just(0), _valid_cpu), "memory": _valid_memory},
            optional={"gpus": st.integers(min_value=0, max_value=8)},
        ),
    },
    optional={
        "images": st.lists(st.sampled_from(["*", "tk-*", "scipy"])),
        "nodes": st.lists(st.sampled_from(["*", "gpu-*"])),
        "custom_images": st.sampled_from(
            [{}, {"allowed": False}, {"allowed": True, "registries": ["*"]}]
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(presets=_valid_presets, rules=st.lists(_valid_rule, min_size=1, max_size=3))
def test_well_formed_documents_are_accepted_with_exactly_the_presets_within_caps(presets, rules):
    policy = parse_policy({"rules": rules, "presets": presets})
    assert len(policy.rules) == len(rules)
    assert len(policy.presets) == len(presets)
    for rule in policy.rules:
        within = [p for p in policy.presets if rule.max.covers(p.cpu, p.memory, p.gpu_count)]
        assert list(rule.presets) == within


# -- rule messages and preset overrides -----------------------------------------------------------


def test_a_rule_may_carry_a_message_for_the_form():
    rules = [{"groups": ["*"], "max": {"cpu": 1, "memory": "1Gi"}, "message": "  Ask us.  "}]
    assert parse_policy({"rules": rules}).rules[0].message == "Ask us."
    del rules[0]["message"]
    assert parse_policy({"rules": rules}).rules[0].message == ""


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (None, "rules[0].message: expected a string"),
        (["a"], "rules[0].message: expected a string"),
        ("x" * 501, "rules[0].message: longer than 500 characters"),
    ],
)
def test_a_bad_rule_message_names_its_key(message, error):
    rules = [{"groups": ["*"], "max": {"cpu": 1, "memory": "1Gi"}, "message": message}]
    with pytest.raises(PolicyError, match=error.replace("[", r"\[").replace("]", r"\]")):
        parse_policy({"rules": rules})


DSHM = {
    "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "1Gi"}}],
    "volume_mounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    "environment": {"A": "1"},
    "node_selector": {"pool": "gpu"},
    "image_pull_policy": "Always",
    "extra_pod_config": {"priorityClassName": "high"},
}


def test_presets_carry_spawner_overrides_as_written():
    presets = [
        {"slug": "p", "cpu": 1, "memory": "1Gi", "kubespawner_override": copy.deepcopy(DSHM)}
    ]
    rules = [{"groups": ["*"], "max": {"cpu": 1, "memory": "1Gi"}}]
    document = parse_policy({"presets": presets, "rules": rules})
    assert document.presets[0].spawner_overrides == DSHM
    assert document.rules[0].presets[0].spawner_overrides == DSHM
    # A copy: changing the input later changes nothing in force.
    presets[0]["kubespawner_override"]["environment"]["A"] = "2"
    assert document.presets[0].spawner_overrides["environment"] == {"A": "1"}
    # Without the key: none.
    assert (
        parse_policy({"presets": [PRESETS[0]], "rules": rules}).presets[0].spawner_overrides == {}
    )


@pytest.mark.parametrize(
    ("override", "error"),
    [
        (["volumes"], "expected a mapping of spawner trait to value"),
        ({"_private": 1}, "'_private' is not a spawner trait name"),
        ({"Volumes": []}, "'Volumes' is not a spawner trait name"),
        ({"cmd": float("nan")}, "values must be plain JSON data"),
        ({"cmd": {1, 2}}, "values must be plain JSON data"),
    ],
)
def test_bad_spawner_overrides_name_their_key(override, error):
    presets = [{"slug": "p", "cpu": 1, "memory": "1Gi", "kubespawner_override": override}]
    rules = [{"groups": ["*"], "max": {"cpu": 1, "memory": "1Gi"}}]
    with pytest.raises(PolicyError, match=r"presets\[0\]\.kubespawner_override: " + error):
        parse_policy({"presets": presets, "rules": rules})


def test_the_shipped_university_policy():
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    document = load_policy_file(os.path.join(root, "share", "policy.university.yaml"))
    members = next(rule for rule in document.rules if rule.matches(["cpsHPCAccess"]))
    everyone = next(rule for rule in document.rules if rule.matches(["physics"]))
    # Everyone: one small CPU-only profile, one fixed image, the message.
    assert [p.slug for p in everyone.presets] == ["cpu-small"]
    assert everyone.presets[0].gpu_count == 0 and everyone.max.gpus == 0
    assert everyone.images == ("tk-jupyter-scipy",) and not everyone.custom_images.allowed
    assert everyone.message == "For GPU access, please contact your administrator."
    # cpsHPCAccess: GPU presets, custom sizes up to 16 CPU / 128 GiB / 2 GPUs, custom images.
    assert {p.slug for p in members.presets} >= {"gpu-1", "gpu-2"}
    assert (members.max.cpu, members.max.memory, members.max.gpus) == (16, 128 * GiB, 2)
    assert members.custom_images.allowed and members.message == ""
    # The /dev/shm of medium Memory that PyTorch data loaders need.
    gpu_1 = members.preset("gpu-1")
    assert {"name": "dshm", "mountPath": "/dev/shm"} in gpu_1.spawner_overrides["volume_mounts"]
    assert gpu_1.spawner_overrides["volumes"][0]["emptyDir"]["medium"] == "Memory"
