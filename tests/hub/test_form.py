"""The spawn form as the server renders it (what a user sees with JavaScript off)."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

import pytest

from jupyter_tk.hub.catalog import CatalogState
from jupyter_tk.hub.form import FORM_TEMPLATE, UNAVAILABLE_TEMPLATE, FormAssets, render_template
from jupyter_tk.hub.form_view import build_form_view
from jupyter_tk.hub.validation import InvalidOptions, validate_user_options
from tests.support.spawn_fixtures import CATALOG, GIB, GPU, MIG, context, gpu, lab_snapshot, node


class Controls(HTMLParser):
    """Collects the form controls: inputs, selects with their options, and labels' targets."""

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[dict] = []
        self.options: dict[str, list[dict]] = {}
        self.label_targets: set[str] = set()
        self.legends = 0
        self._select: str | None = None
        self._option: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "input":
            self.inputs.append(attributes)
        elif tag == "select":
            self._select = attributes["name"]
            self.options[self._select] = []
        elif tag == "option":
            self._option = {**attributes, "text": ""}
            self.options[self._select].append(self._option)
        elif tag == "label" and "for" in attributes:
            self.label_targets.add(attributes["for"])
        elif tag == "legend":
            self.legends += 1

    def handle_data(self, data):
        if self._option is not None:
            self._option["text"] += data

    def handle_endtag(self, tag):
        if tag == "option":
            self._option = None


def render(last=None, ctx=None, **kwargs) -> str:
    view = build_form_view(
        context=ctx or context(),
        last_options=last,
        resources_url="/prefix/hub/api/tk/resources",
        refresh_seconds=5,
        **kwargs,
    )
    return render_template(FORM_TEMPLATE, view)


def controls(html: str) -> Controls:
    parser = Controls()
    parser.feed(html)
    return parser


def options_by_value(html: str, select: str) -> dict[str, dict]:
    return {option["value"]: option for option in controls(html).options[select]}


def test_presets_images_and_custom_are_offered():
    parsed = controls(render())
    profiles = [i["value"] for i in parsed.inputs if i.get("name") == "profile"]
    assert profiles == ["cpu-basic", "gpu-1", "gpu-2", "mig-small", "custom"]
    images = [i["value"] for i in parsed.inputs if i.get("name") == "image"]
    assert images == ["tk-jupyter-scipy", "tk-jupyter-ml-gpu", "other-team-image", ""]
    assert any(i.get("name") == "custom_image" for i in parsed.inputs)
    checked = {i["name"]: i["value"] for i in parsed.inputs if "checked" in i}
    assert checked == {"profile": "cpu-basic", "image": "tk-jupyter-scipy"}


def test_every_control_has_a_label_and_every_group_a_legend():
    parsed = controls(render())
    named = [i for i in parsed.inputs if i.get("type") in ("text", "number")]
    assert named and all(i["id"] in parsed.label_targets for i in named)
    assert {"jp-tk-node", "jp-tk-gpu-resource"} <= parsed.label_targets
    assert parsed.legends == 4


def test_nodes_show_free_resources_and_why_they_cannot_fit():
    nodes = options_by_value(render(last={"profile": "gpu-1"}), "node")
    assert nodes[""]["text"] == "Any node that fits" and "selected" in nodes[""]
    assert nodes["gpu-1"]["text"] == (
        "gpu-1 — 16 CPU · 64 GiB free · 1/4 NVIDIA-A100-SXM4-80GB · 80 GiB"
    )
    assert "disabled" not in nodes["gpu-1"]
    assert nodes["cpu-1"]["text"].endswith("— cannot fit: no nvidia.com/gpu")
    # Only what can take nothing is disabled without JavaScript; the rest says why.
    assert "disabled" not in nodes["cpu-1"]
    assert "disabled" in nodes["old"] and "disabled" in nodes["off"]
    assert "(NotReady) — cannot fit: not ready" in nodes["old"]["text"]
    assert "(cordoned) — cannot fit: cordoned" in nodes["off"]["text"]
    assert "MIG 1g.10gb · 9.5 GiB" in nodes["mig-1"]["text"]


def test_only_nodes_the_policy_allows_are_listed():
    nodes = options_by_value(render(ctx=context(group="students")), "node")
    assert set(nodes) == {"", "cpu-1", "mig-1"}


def test_the_last_options_are_preselected_and_a_chosen_unfit_node_stays_selectable():
    last = {
        "profile": "custom",
        "image": "nvcr.io/nvidia/pytorch:24.05-py3",
        "node": "old",
        "cpu": 3,
        "memory": "6Gi",
        "gpu": None,
    }
    html = render(last=last)
    parsed = controls(html)
    checked = {i["name"]: i["value"] for i in parsed.inputs if "checked" in i}
    assert checked == {"profile": "custom", "image": ""}
    values = {i["name"]: i.get("value") for i in parsed.inputs if i.get("name")}
    assert (values["custom_image"], values["cpu"], values["memory"]) == (
        "nvcr.io/nvidia/pytorch:24.05-py3",
        "3",
        "6Gi",
    )
    old = options_by_value(html, "node")["old"]
    assert "selected" in old and "disabled" not in old
    assert "on old" in html


def test_a_node_that_no_longer_exists_falls_back_to_any_node():
    nodes = options_by_value(render(last={"node": "vanished"}), "node")
    assert "selected" in nodes[""]


def test_gpu_kinds_show_product_memory_and_free_count():
    kinds = options_by_value(render(), "gpu_resource")
    assert kinds[GPU]["text"] == "NVIDIA-A100-SXM4-80GB · 80 GiB — 1 free (nvidia.com/gpu)"
    mig = kinds["nvidia.com/mig-1g.10gb"]["text"]
    assert mig.startswith("NVIDIA-A100-SXM4-80GB · MIG 1g.10gb · 9.5 GiB — 7 free")


def test_gpu_kinds_missing_on_the_chosen_node_say_so():
    kinds = options_by_value(render(last={"node": "cpu-1"}), "gpu_resource")
    assert kinds[GPU]["text"].endswith("not on cpu-1")


def test_controls_are_bounded_by_the_size_limits():
    # The one maximum of the Custom card (cap 16 CPU, the largest node has 32; cap 2 GPUs, a
    # node has 7 MIG slices); what the chosen node has free is the fit check's to say.
    parsed = controls(render(last={"node": "cpu-1"}))
    cpu = next(i for i in parsed.inputs if i.get("name") == "cpu")
    count = next(i for i in parsed.inputs if i.get("name") == "gpu_count")
    assert (cpu["min"], cpu["max"], count["max"]) == ("0.1", "16", "2")
    parsed = controls(render(last={"node": "mig-1"}))
    cpu = next(i for i in parsed.inputs if i.get("name") == "cpu")
    assert cpu["max"] == "16"  # the cap, below mig-1's 32 free


def test_the_summary_says_what_will_be_requested():
    html = render(last={"profile": "gpu-1", "image": "tk-jupyter-ml-gpu", "node": "gpu-1"})
    summary = re.search(r'id="jp-tk-summary"[^>]*>([^<]*)<', html).group(1)
    assert summary == (
        "Will request 4 CPU, 16 GiB memory, 1 nvidia.com/gpu on gpu-1 with Machine learning (GPU)."
    )


def test_catalog_text_is_escaped():
    html = render()
    assert "NumPy, pandas &amp; &lt;friends&gt;" in html
    assert "<friends>" not in html


def test_hostile_names_cannot_break_out_of_the_page():
    snapshot = lab_snapshot()
    snapshot["nodes"].append(node('</script><script>alert("x")</script>', 8, 8))
    policy_ctx = context(snapshot=snapshot)
    html = render(ctx=policy_ctx)
    assert "<script>alert" not in html
    config = re.search(r'id="jp-tk-spawn-config">(.*?)</script>', html, re.S).group(1)
    assert json.loads(config)["resourcesUrl"] == "/prefix/hub/api/tk/resources"


def test_catalog_failure_says_the_list_may_be_out_of_date():
    stale = CatalogState(images=CATALOG.images, error="HTTP 503 (down)", stale=True)
    html = render(ctx=context(catalog=stale))
    assert "The image list may be out of date: HTTP 503 (down)" in html
    empty = CatalogState(images=(), error="no response (timeout)")
    html = render(ctx=context(catalog=empty))
    assert "The image list could not be loaded: no response (timeout)" in html


def test_stale_cluster_data_is_announced():
    snapshot = {**lab_snapshot(), "stale": True, "age_seconds": 95.0}
    html = render(ctx=context(snapshot=snapshot))
    assert "Cluster data is out of date (last update 95 s ago)" in html


def problems_box(html: str) -> str:
    return re.search(r"data-tk-problems>(.*?)</div>", html, re.S).group(1)


def test_nothing_fitting_is_said_before_submitting_in_the_servers_words():
    # An 8-core node with 1 core free: the preset fits the node, not what is free now.
    full = lab_snapshot()
    full["nodes"] = [{**node("cpu-1", 1, 1), "allocatable": {"cpu": 8, "memory": 32 * GIB}}]
    html = render(ctx=context(snapshot=full))
    assert problems_box(html) == (
        "<p>No node has room for 2 CPU and 4 GiB of memory right now (0/1 nodes you may use "
        "can take it: 1 not enough CPU). Choose less, or try again later.</p>"
    )
    # What fits says nothing; a refused submission's reason shows by Start as well.
    assert problems_box(render()) == ""
    refused = render(refusal="64 CPU is over your limit of 16 CPU.")
    assert problems_box(refused) == "<p>64 CPU is over your limit of 16 CPU.</p>"
    assert '"refusal": "64 CPU is over your limit of 16 CPU."' in refused


def test_an_operator_template_replaces_one_part(tmp_path):
    (tmp_path / "tk_spawn").mkdir()
    (tmp_path / "tk_spawn" / "nodes.html").write_text(
        '<p class="site-nodes">{{ nodes | length }} nodes, ask {{ "<ops>" }}</p>'
    )
    view = build_form_view(
        context=context(),
        last_options=None,
        resources_url="/hub/api/tk/resources",
        refresh_seconds=5,
    )
    html = render_template(FORM_TEMPLATE, view, [str(tmp_path)])
    assert '<p class="site-nodes">5 nodes, ask &lt;ops&gt;</p>' in html
    assert 'name="cpu"' in html  # the other parts are still the built-in ones


def test_the_unavailable_page_hides_the_start_button_and_escapes():
    html = render_template(
        UNAVAILABLE_TEMPLATE, {"style": "", "title": "Cannot start", "message": "no <rule>"}
    )
    assert "no &lt;rule&gt;" in html and ".feedback-container { display: none; }" in html


def test_the_front_end_is_inlined_safely(tmp_path):
    (tmp_path / "tk-spawn.js").write_text('console.log("</script>")')
    (tmp_path / "tk-spawn.css").write_text(".a{}")
    assets = FormAssets(tmp_path)
    assert assets.script == 'console.log("<\\/script>")'
    assert assets.style == ".a{}"
    missing = FormAssets(tmp_path / "nothing")
    assert missing.script == "" and missing.style == ""


@pytest.mark.parametrize("ratio", [1.0, 0.5])
def test_the_front_end_config_carries_what_it_needs(ratio):
    html = render(ctx=context(ratio=ratio))
    config = json.loads(re.search(r'id="jp-tk-spawn-config">(.*?)</script>', html, re.S).group(1))
    assert config["guaranteeRatio"] == ratio
    assert config["caps"] == {"cpu": 16.0, "memory": 64 * 1024**3, "gpus": 2}
    assert config["tolerations"]["gpu"][0]["key"] == GPU
    assert [p["slug"] for p in config["presets"]] == ["cpu-basic", "gpu-1", "gpu-2", "mig-small"]
    assert config["images"][1] == {
        "name": "tk-jupyter-ml-gpu",
        "displayName": "Machine learning (GPU)",
        "gpuRequired": True,
    }


def test_a_thousand_nodes_render():
    snapshot = lab_snapshot()
    snapshot["nodes"] = [
        node(f"node-{i:04d}", 64, 256, gpus=[gpu(free=i % 9, count=8)] if i % 10 == 0 else ())
        for i in range(1000)
    ]
    nodes = options_by_value(render(ctx=context(snapshot=snapshot)), "node")
    assert len(nodes) == 1001


# -- a local-like snapshot: what LocalInventory serves on a machine without cgroup v2 -----------

ADVISORY = (
    "Memory is advisory on this machine: no cgroup v2 hierarchy at /sys/fs/cgroup "
    "(cgroup v1 or not mounted)."
)


def device(index, *, taken_by=(), utilization=3, used=GIB, total=80 * GIB, parent=None):
    return {
        "uuid": f"GPU-{index}" if parent is None else f"MIG-{index}-{used}",
        "index": index,
        "parent_uuid": parent,
        "utilization_gpu": utilization,
        "memory_used": used,
        "memory_total": total,
        "taken_by": list(taken_by),
        "error": None,
    }


def local_snapshot(*, enforced=False) -> dict:
    """One machine: 2 cores, 22.5 GiB allocatable, two A100s (one taken by alice), two MIG
    slices of a third; memory limits advisory unless `enforced`."""
    whole = gpu(count=2, free=1)
    whole["devices"] = [device(0), device(1, taken_by=["alice"], utilization=40, used=30 * GIB)]
    mig = gpu(MIG, count=2, free=2, memory_mib=9728, mig_profile="1g.10gb")
    mig["devices"] = [
        device(2, utilization=None, used=GIB // 2, total=9728 * 2**20, parent="GPU-2"),
        device(2, utilization=None, used=GIB // 4, total=9728 * 2**20, parent="GPU-2"),
    ]
    machine = node("ws", 2, 22.5, gpus=[whole, mig])
    machine.update(
        memory_enforced=enforced,
        memory_note=None if enforced else ADVISORY,
        memory_available=20 * GIB,
        gpu_note=None,
        driver_version="550.54.15",
    )
    return {
        "source": "local",
        "generated_at": 0.0,
        "age_seconds": 0.0,
        "stale": False,
        "nodes": [machine],
    }


def element_text(html: str, element_id: str) -> str:
    """The text inside the element with ``id`` (tags stripped), as a browser would show it."""
    match = re.search(rf'<(\w+)[^>]*\bid="{element_id}"[^>]*>(.*?)</\1>', html, re.S)
    assert match, f"no element #{element_id}"
    return re.sub(r"<[^>]+>", "\n", match.group(2)).strip()


def test_a_local_machine_without_cgroup_v2_says_memory_is_advisory():
    # Given this machine does not enforce memory limits
    html = render(ctx=context(snapshot=local_snapshot()))
    # Then the note is next to the Memory field, which points to it, and the node says so too
    assert element_text(html, "jp-tk-memory-note") == ADVISORY
    memory = next(i for i in controls(html).inputs if i.get("name") == "memory")
    assert "jp-tk-memory-note" in memory["aria-describedby"].split()
    label = options_by_value(html, "node")["ws"]["text"]
    assert label.startswith("ws — 2 CPU · 22.5 GiB free · memory advisory · ")


@pytest.mark.parametrize(
    "snapshot", [lab_snapshot(), local_snapshot(enforced=True)], ids=["kubernetes", "enforced"]
)
def test_nodes_that_enforce_memory_show_no_note(snapshot):
    html = render(ctx=context(snapshot=snapshot))
    assert element_text(html, "jp-tk-memory-note") == ""
    assert "advisory" not in html


def test_kubernetes_nodes_show_no_per_gpu_use():
    # Kubernetes GPU kinds carry at most a physical count (from GPU feature discovery), no
    # live use; a `devices` value that is not a list is ignored too: the list stays empty.
    snapshot = lab_snapshot()
    snapshot["nodes"][1]["gpus"][0]["physical_count"] = 4
    snapshot["nodes"][2]["gpus"][0]["devices"] = 4
    html = render(ctx=context(snapshot=snapshot))
    assert '<ul class="jp-tk-gpu-use" id="jp-tk-gpu-use"' in html
    assert element_text(html, "jp-tk-gpu-use") == ""
    assert "busy" not in html and "in use by" not in html


def test_the_local_gpus_live_use_is_described_in_words():
    html = render(ctx=context(snapshot=local_snapshot()))
    lines = element_text(html, "jp-tk-gpu-use").splitlines()
    assert [line for line in lines if line] == [
        "nvidia.com/gpu — GPU 0: free, 3% busy, 1 GiB of 80 GiB used; "
        "GPU 1: in use by alice, 40% busy, 30 GiB of 80 GiB used",
        "nvidia.com/mig-1g.10gb — GPU 2 slice 1: free, 512 MiB of 9.5 GiB used; "
        "GPU 2 slice 2: free, 256 MiB of 9.5 GiB used",
    ]
    select = re.search(r'<select name="gpu_resource"[^>]*>', html).group(0)
    assert 'aria-describedby="jp-tk-gpu-help jp-tk-gpu-note jp-tk-gpu-use"' in select


def custom_card(html: str) -> str:
    return re.search(r"data-tk-custom-limits>([^<]*)<", html).group(1)


@pytest.mark.parametrize(
    ("group", "snapshot", "ratio", "expected"),
    [
        # The cap (16 CPU, 64 GiB, 2 GPUs) is below the largest node (mig-1: 32 CPU, 128 GiB).
        ("gpu-lab", lab_snapshot(), 1.0, "Up to 16 CPU · 64 GiB · 2 GPUs"),
        # One small machine: its allocatable amounts, and its 2 GPUs of a kind, not the cap.
        ("gpu-lab", local_snapshot(), 1.0, "Up to 2 CPU · 22.5 GiB · 2 GPUs"),
        # A pod requests half its limits: the same machine takes twice the limits.
        ("gpu-lab", local_snapshot(), 0.5, "Up to 4 CPU · 45 GiB · 2 GPUs"),
        # Only the nodes the group may use count (cpu-1, mig-1), and its own lower cap.
        ("students", lab_snapshot(), 1.0, "Up to 4 CPU · 8 GiB · 1 GPU"),
        # No node known: the cap is all there is to say.
        ("gpu-lab", {**lab_snapshot(), "nodes": []}, 1.0, "Up to 16 CPU · 64 GiB · 2 GPUs"),
        # No GPU anywhere: no GPU part.
        ("gpu-lab", {**lab_snapshot(), "nodes": [node("c", 4, 8)]}, 1.0, "Up to 4 CPU · 8 GiB"),
    ],
)
def test_the_custom_card_offers_the_cap_or_the_largest_node(group, snapshot, ratio, expected):
    html = render(ctx=context(group=group, snapshot=snapshot, ratio=ratio))
    assert custom_card(html) == expected


def test_the_custom_limits_are_the_one_maximum_everywhere():
    # Given one 2-core machine, whose card says "Up to 2 CPU" and whose help text says "to 2"
    ctx = context(snapshot=local_snapshot())
    html = render(ctx=ctx)
    assert custom_card(html).startswith("Up to 2 CPU")
    assert ">0.1 to 2</span>" in html
    # Then a request over it is refused with that same number, whether over the cap or not.
    for cpu in ("32", "3"):
        with pytest.raises(InvalidOptions, match=r"more than this machine can hold \(2 CPU\)"):
            validate_user_options(
                {"profile": "custom", "image": "tk-jupyter-scipy", "cpu": cpu, "memory": "1Gi"},
                ctx,
            )
