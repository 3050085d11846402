"""A real JupyterHub + TkKubeSpawner (real KubeSpawner) + the simulated Kubernetes API.

Forged form posts, deep links and REST calls are refused with HTTP 400 and create no pod; a
valid submission creates a pod with the right spec; a catalog outage keeps the last good list;
a deep link from outside the hub opens the filled form instead of starting a server. The
malformed REST bodies are also sent to a real local hub (tk-local), which starts no process.
One hub of each kind serves the whole module; tests leave no server running.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.fakes.clusters import make_pod
from tests.support.kube_hub import CatalogServer, KubeHub
from tests.support.spawn_fixtures import CATALOG_ITEMS, GPU, POLICY

POD = "jupyter-alice"
_ERROR = re.compile(r'class="spawn-error-msg[^"]*">(.*?)</p>', re.S)


@pytest.fixture(scope="module")
def catalog():
    with CatalogServer(CATALOG_ITEMS) as server:
        yield server


@pytest.fixture(scope="module")
def hub(tmp_path_factory, sim, catalog):
    named = "c.JupyterHub.allow_named_servers = True\n"
    with KubeHub(
        tmp_path_factory.mktemp("hub"), sim, catalog=catalog.url, extra_config=named
    ) as hub:
        yield hub


@pytest.fixture(scope="module")
def alice(hub):
    return hub.login("alice")


@pytest.fixture(scope="module")
def bob(hub):
    return hub.login("bob")


def html(response) -> str:
    # JupyterHub's pages say charset=utf-8 only in a <meta> tag, which requests ignores.
    return response.content.decode("utf-8")


def error_of(response) -> str:
    match = _ERROR.search(html(response))
    assert match, f"no error shown (HTTP {response.status_code})"
    return match.group(1).strip()


def form(**fields) -> dict:
    base = {
        "profile": "custom",
        "image": "tk-jupyter-scipy",
        "custom_image": "",
        "node": "",
        "cpu": "1",
        "memory": "2Gi",
        "gpu_resource": "",
        "gpu_count": "0",
    }
    return {**base, **fields}


def assert_no_pods(sim):
    assert [p["metadata"]["name"] for p in sim.pods()] == []


def stop_server(user, sim):
    user.stop_server()
    sim.wait_for_pod(POD, gone=True)


def test_the_form_shows_nodes_and_free_gpus(alice):
    page = alice.get("/hub/spawn")
    assert page.status_code == 200
    assert "gpu-1 — 28 CPU · 112 GiB free · 1/2 NVIDIA-A100-SXM4-40GB · 40 GiB" in html(page)
    assert "cpu-2 — 3 CPU · 15.8 GiB free (cordoned)" in html(page)
    assert "Machine learning (GPU)" in html(page)
    assert "data-tk-spawn" in html(page) and '"resourcesUrl": "/hub/api/tk/resources"' in html(page)


FORGED = [
    ("unknown image", form(image="nope"), "'nope' is not in the image list"),
    ("over the cap", form(cpu="64"), "64 CPU is over your limit of 16 CPU"),
    ("NaN", form(cpu="NaN"), "CPU must be a number"),
    ("1e309", form(memory="1e309"), "far more than any server can have"),
    ("unicode digits", form(cpu="\u0662"), "CPU must be a number"),
    ("negative", form(memory="-4Gi"), "more than 0"),
    ("GPU kind absent", form(gpu_resource="amd.com/gpu", gpu_count="1"), "GPU kind"),
    ("too many GPUs", form(gpu_resource=GPU, gpu_count="2", node="gpu-1"), "only 1 of 2"),
    ("cordoned node", form(node="cpu-2"), "cordoned"),
    ("node not in the cluster", form(node="ghost"), "no node called 'ghost'"),
    ("unknown preset", form(profile="gpu-99"), "Unknown preset 'gpu-99'"),
    ("junk", form(image="\u202e\x01<script>"), "not in the image list"),
    ("field twice", {**form(), "cpu": ["1", "2"]}, "must be sent exactly once"),
]


@pytest.mark.parametrize(("what", "fields", "message"), FORGED, ids=[f[0] for f in FORGED])
def test_forged_posts_are_refused_with_400_and_no_pod(alice, sim, what, fields, message):
    response = alice.submit_form(fields)
    assert response.status_code == 400, html(response)[-2000:]
    assert message in error_of(response).replace("&#39;", "'")
    assert 'name="profile"' in html(response)  # the form is shown again
    assert_no_pods(sim)


def test_a_node_the_policy_does_not_allow_is_refused(bob, sim):
    response = bob.submit_form(form(node="gpu-1"))
    assert response.status_code == 400
    assert "You may not start servers on the node" in error_of(response)
    assert_no_pods(sim)


def test_a_valid_post_creates_the_pod_with_the_right_spec(alice, sim):
    response = alice.submit_form(
        form(profile="gpu-1", image="tk-jupyter-ml-gpu", node="gpu-1", cpu="99")
    )
    assert response.status_code == 302, error_of(response)
    assert "/hub/spawn-pending/alice" in response.headers["Location"]
    try:
        pod = sim.wait_for_pod(POD)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        assert container["image"] == "nvcr.io/nvidia/pytorch:24.05-py3"
        limits = container["resources"]["limits"]
        assert (float(limits["cpu"]), int(limits["memory"]), limits[GPU]) == (4, 16 * 2**30, "1")
        assert container["resources"]["requests"][GPU] == "1"
        terms = pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"
        ]["nodeSelectorTerms"]
        assert terms == [
            {
                "matchExpressions": [
                    {"key": "kubernetes.io/hostname", "operator": "In", "values": ["gpu-1"]}
                ]
            }
        ]
        assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["spec"][
            "tolerations"
        ]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["JUPYTER_TK_PROFILE"] == "gpu-1"
        assert env["JUPYTER_IMAGE"] == "nvcr.io/nvidia/pytorch:24.05-py3"
        assert pod["spec"]["nodeName"] == "gpu-1"  # the simulated scheduler placed it
        # The saved options are canonical, and the next form pre-selects them.
        assert alice.api("GET", "/hub/api/users/alice").status_code == 200
    finally:
        stop_server(alice, sim)
    page = alice.get("/hub/spawn")
    assert 'value="gpu-1" selected' in html(page)
    assert re.search(r'value="gpu-1"\s+id="jp-tk-profile-gpu-1"[^>]*checked', html(page))


def from_the_hub(user) -> dict:
    """The Referer a browser sends when a page of the hub itself led to the request."""
    return {"Referer": f"{user.hub.url}/hub/home"}


def test_a_deep_link_spawns_with_validated_options(alice, sim):
    response = alice.get(
        "/hub/spawn?image=tk-jupyter-scipy&cpu=2&memory=3Gi",
        allow_redirects=False,
        headers=from_the_hub(alice),
    )
    assert response.status_code == 302, error_of(response)
    try:
        pod = sim.wait_for_pod(POD)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        assert container["image"] == "quay.io/jupyter/scipy-notebook:2024-05-27"
        assert float(container["resources"]["limits"]["cpu"]) == 2
        assert "affinity" not in pod["spec"] or not pod["spec"]["affinity"]
    finally:
        stop_server(alice, sim)


@pytest.mark.parametrize(
    "referer",
    [None, "https://attacker.example/page", "{hub}/user/alice/lab", "http://127.0.0.1:1/hub/"],
    ids=["typed or pasted", "another site", "a user server", "another port"],
)
def test_a_deep_link_not_from_the_hub_opens_the_filled_form_and_starts_nothing(alice, sim, referer):
    headers = {"Referer": referer.format(hub=alice.hub.url)} if referer else {}
    response = alice.get(
        "/hub/spawn?profile=gpu-1&image=tk-jupyter-ml-gpu&node=gpu-1",
        allow_redirects=False,
        headers=headers,
    )
    assert response.status_code == 200, html(response)[-2000:]
    page = html(response)
    assert "A link from outside this hub chose these settings" in page
    # The form is filled in with the link's choices; the user's click on Start would start it.
    assert re.search(r'value="gpu-1"\s+id="jp-tk-profile-gpu-1"[^>]*checked', page)
    assert re.search(r'value="tk-jupyter-ml-gpu"[^>]*checked', page)
    assert 'value="gpu-1" selected' in page
    assert "alert alert-danger" not in page
    time.sleep(1)
    assert_no_pods(sim)
    assert alice.server() is None


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("image=nope", "'nope' is not in the image list"),
        ("opt-image=tk-jupyter-ml-gpu&opt-profile=cpu-basic", "needs a GPU"),
        ("cpu=inf", "CPU must be a number"),
    ],
)
def test_a_bad_deep_link_shows_the_form_with_400(alice, sim, query, message):
    response = alice.get(f"/hub/spawn?{query}", allow_redirects=False)
    assert response.status_code == 400
    assert message in error_of(response).replace("&#39;", "'")
    assert_no_pods(sim)


@pytest.mark.parametrize(
    ("user_options", "message"),
    [
        ({"image": "nope"}, "not in the image list"),
        ({"profile": "custom", "cpu": 1e300}, "far more than any server can have"),
        ({"profile": "custom", "cpu": 64}, "over your limit"),
        ({"profile": "custom", "gpu": {"resource": GPU, "count": 3}}, "your limit is 2"),
        ({"profile": "custom", "cpu": "\u0661"}, "CPU must be a number"),
        ({"hostPath": "/"}, "Unknown option 'hostPath'"),
    ],
)
def test_rest_spawn_with_bad_options_is_a_400_and_no_pod(alice, sim, user_options, message):
    response = alice.api("POST", "/hub/api/users/alice/server", json={"user_options": user_options})
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert_no_pods(sim)
    # The failed spawn leaves no server behind.
    assert alice.server() is None


MALFORMED_REST = [
    # What an outside tester sent without a profile; each used to start the first preset.
    ({"cpu": float("nan")}, "CPU must be a number"),
    ({"cpu": -1}, "CPU must be more than 0"),
    ({"cpu": [1]}, "CPU must be a number, got [1]"),
    ({"memory": 1.5}, "Memory must be a whole number of bytes"),
    ({"gpu": {"resource": "cpu", "count": 1}}, "offers the GPU kind 'cpu'"),
    # Stray whitespace is a 400 in JSON (the form trims what people type).
    ({"memory": "4Gi\n"}, "Memory must be a number such as 8Gi or 512Mi"),
    ({"cpu": " 1"}, "got ' 1'"),
    # With a preset, a size that is not the preset's.
    ({"profile": "cpu-basic", "cpu": 8}, "The preset cpu-basic sets cpu"),
]


@pytest.mark.parametrize("server", ["", "x"], ids=["default server", "named server"])
@pytest.mark.parametrize(
    ("user_options", "message"), MALFORMED_REST, ids=[str(m[0]) for m in MALFORMED_REST]
)
def test_every_malformed_rest_body_is_a_400_and_no_pod(alice, sim, server, user_options, message):
    path = f"/hub/api/users/alice/servers/{server}" if server else "/hub/api/users/alice/server"
    # NaN is not strict JSON; the tester sent it as Python's encoder writes it, and the hub
    # (Python's json) reads it.
    body = json.dumps({"user_options": user_options})
    headers = {"Content-Type": "application/json"}
    response = alice.api("POST", path, data=body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert_no_pods(sim)
    model = alice.api("GET", "/hub/api/users/alice").json()
    assert not model["servers"], model["servers"]
    if server:
        alice.api("DELETE", f"/hub/api/users/alice/servers/{server}", json={"remove": True})


def test_a_gpu_request_with_a_gpu_image_needs_no_profile(alice, sim):
    # Refused before with "needs a GPU ... request at least one GPU" although it asked for one.
    response = alice.api(
        "POST",
        "/hub/api/users/alice/server",
        json={
            "user_options": {
                "gpu": {"resource": GPU, "count": 1},
                "image": "tk-jupyter-ml-gpu",
                "memory": "8Gi",
            }
        },
    )
    assert response.status_code in (201, 202), response.text
    try:
        pod = sim.wait_for_pod(POD)
        container = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
        assert container["resources"]["limits"][GPU] == "1"
    finally:
        stop_server(alice, sim)


def test_rest_spawn_with_good_options_creates_the_pod(alice, sim):
    response = alice.api(
        "POST",
        "/hub/api/users/alice/server",
        json={
            "user_options": {
                "profile": "custom",
                "image": "tk-jupyter-scipy",
                "cpu": 1.5,
                "memory": "2Gi",
                "node": "cpu-1",
                "gpu": None,
            }
        },
    )
    assert response.status_code in (201, 202), response.text
    try:
        pod = sim.wait_for_pod(POD)
        assert pod["spec"]["nodeName"] == "cpu-1"
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
        assert env["NVIDIA_VISIBLE_DEVICES"] == "void"
    finally:
        stop_server(alice, sim)


def test_capacity_taken_after_the_page_loaded_is_refused_at_submit(alice, sim):
    alice.get("/hub/spawn")
    sim.create_pod(make_pod("thief", "ml", node="gpu-1", limits={GPU: "1"}))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            gpu_node = next(n for n in alice.resources()["nodes"] if n["name"] == "gpu-1")
            if gpu_node["gpus"][0]["free"] == 0:
                break
            time.sleep(0.2)
        response = alice.submit_form(form(profile="gpu-1", image="tk-jupyter-ml-gpu", node="gpu-1"))
        assert response.status_code == 400
        assert "only 0 of 2 nvidia.com/gpu free" in error_of(response)
        assert_no_pods(sim)
    finally:
        sim.delete_pod("thief", "ml")


def test_catalog_down_keeps_the_last_good_list_and_says_so(alice, catalog, hub):
    assert "Machine learning (GPU)" in html(alice.get("/hub/spawn"))
    catalog.stop()
    deadline = time.monotonic() + 15
    page = ""
    while time.monotonic() < deadline:
        page = html(alice.get("/hub/spawn"))
        if "The image list may be out of date" in page:
            break
        time.sleep(0.5)
    assert "The image list may be out of date" in page, hub.tail()
    assert "no response" in page or "cannot connect" in page
    assert "Machine learning (GPU)" in page  # the last good list is still offered


def test_a_user_no_rule_matches_gets_a_clear_page_not_a_500(hub, sim):
    hub.write_policy({**POLICY, "rules": POLICY["rules"][:2]})  # drop the "*" rule
    carol = hub.login("carol")
    try:
        deadline = time.monotonic() + 10
        page = carol.get("/hub/spawn")
        while "not allowed" not in html(page) and time.monotonic() < deadline:
            time.sleep(0.3)
            page = carol.get("/hub/spawn")
        assert page.status_code == 200
        assert "You are not allowed to start a server: no policy rule matches your groups" in (
            html(page)
        )
        response = carol.submit_form(form())
        assert response.status_code == 403
        assert "not allowed" in error_of(response)
        response = carol.api("POST", "/hub/api/users/carol/server", json={})
        assert response.status_code == 403
        assert_no_pods(sim)
    finally:
        hub.write_policy(POLICY)


def test_a_query_without_form_fields_shows_the_form_and_starts_nothing(alice, sim):
    # e.g. the address left in the bar after a refused submission
    response = alice.get("/hub/spawn?_xsrf=whatever", allow_redirects=False)
    assert response.status_code == 200
    assert 'name="profile"' in html(response)
    assert "alert alert-danger" not in html(response)
    assert_no_pods(sim)
    assert alice.server() is None


# -- the same on the local hub (share/jupyterhub/local_config.py, fake NVML) ----------------------


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory):
    from tests.support.local_hub import LocalHub

    named = "c.JupyterHub.allow_named_servers = True\n"
    with LocalHub(tmp_path_factory.mktemp("local-hub"), extra_config=named) as hub:
        yield hub


def server_processes(hub) -> list:
    """The hub's single-user server processes (children with a JUPYTERHUB_USER)."""
    import psutil

    found = []
    for child in psutil.Process(hub.process.pid).children(recursive=True):
        try:
            if child.environ().get("JUPYTERHUB_USER"):
                found.append(child)
        except psutil.Error:
            continue
    return found


@pytest.mark.parametrize("server", ["", "x"], ids=["default server", "named server"])
@pytest.mark.parametrize(
    ("user_options", "message"), MALFORMED_REST, ids=[str(m[0]) for m in MALFORMED_REST]
)
def test_every_malformed_rest_body_is_a_400_and_no_process_on_the_local_hub(
    local_hub, server, user_options, message
):
    if "profile" in user_options:
        user_options = {**user_options, "profile": "small"}  # the local config's CPU preset
        message = message.replace("cpu-basic", "small")
    user = local_hub.login("alice")
    path = f"/hub/api/users/alice/servers/{server}" if server else "/hub/api/users/alice/server"
    body = json.dumps({"user_options": user_options})
    headers = {"Content-Type": "application/json"}
    response = user.api("POST", path, data=body, headers=headers)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert server_processes(local_hub) == []
    model = user.api("GET", "/hub/api/users/alice").json()
    assert not model["servers"], model["servers"]
    # Nothing was reserved on the machine either.
    machine = user.resources()["nodes"][0]
    assert all(gpu["free"] == gpu["count"] for gpu in machine["gpus"])
    if server:
        user.api("DELETE", f"/hub/api/users/alice/servers/{server}", json={"remove": True})
