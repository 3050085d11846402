"""Admission on a real Kubernetes hub: concurrent spawns for the last GPU or MIG slice, and what
a user reads when the API server refuses a pod.

A real JupyterHub on ``share/jupyterhub/kubernetes_config.py`` (``tests/support/kube_hub.py``)
against the simulated Kubernetes API in its own process. Requests are sent at the same moment
from threads released together; whatever order the hub sees them in, exactly one may get a pod.
"""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.fakes.clusters import gfd_labels, make_node
from tests.support.kube_hub import GROUPS, CatalogServer, KubeHub
from tests.support.spawn_fixtures import CATALOG_ITEMS

MIG_3G = "nvidia.com/mig-3g.20gb"
GPU_USERS = ["alice", "carol", "dave", "erin"]
_ERROR = re.compile(r'class="spawn-error-msg[^"]*">(.*?)</p>', re.S)


@pytest.fixture(scope="module")
def hub(tmp_path_factory, sim):
    groups = {**GROUPS, "gpu-lab": {"users": GPU_USERS}}
    with (
        CatalogServer(CATALOG_ITEMS) as catalog,
        KubeHub(
            tmp_path_factory.mktemp("hub"),
            sim,
            catalog=catalog.url,
            extra_config=f"c.JupyterHub.load_groups = {groups!r}\n",
        ) as hub,
    ):
        yield hub


@pytest.fixture(scope="module")
def users(hub):
    return [hub.login(name) for name in GPU_USERS]


def at_once(calls):
    """Run the zero-argument `calls` in threads released at the same moment; their results."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait()
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def sim_mode(sim, **mode) -> None:
    requests.post(f"{sim.url}/_sim/mode", json=mode, timeout=10).raise_for_status()


def notebook_pods(sim) -> list[dict]:
    return [p for p in sim.pods() if p["metadata"]["name"].startswith("jupyter-")]


def wait_until_no_servers(users, sim, timeout: float = 60) -> None:
    """The admitted server fails its readiness check (nothing answers in a simulated pod) and
    the hub deletes its pod; wait for that so the next test starts clean."""
    deadline = time.monotonic() + timeout
    while any(user.server() is not None for user in users) or notebook_pods(sim):
        assert time.monotonic() < deadline, "servers left behind"
        time.sleep(0.5)


def gpu_row(user, node: str, resource: str) -> dict:
    row = next(n for n in user.resources()["nodes"] if n["name"] == node)
    return next(g for g in row["gpus"] if g["resource"] == resource)


def test_concurrent_rest_spawns_for_two_gpus_on_a_node_with_two_free_admit_one(users, sim):
    sim.delete_pod("train", namespace="ml")  # gpu-1 now has both of its A100s free
    deadline = time.monotonic() + 10
    while gpu_row(users[0], "gpu-1", "nvidia.com/gpu")["free"] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    body = {"user_options": {"profile": "gpu-2", "image": "tk-jupyter-ml-gpu"}}

    def spawn(user):
        return lambda: user.api("POST", f"/hub/api/users/{user.name}/server", json=body)

    try:
        responses = at_once([spawn(user) for user in users])
        codes = sorted(r.status_code for r in responses)
        assert codes in ([201, 400, 400, 400], [202, 400, 400, 400]), [
            (r.status_code, r.text) for r in responses
        ]
        for response in responses:
            if response.status_code == 400:
                message = response.json()["message"]
                assert "No node has room for 8 CPU and 32 GiB of memory with 2 nvidia.com/gpu" in (
                    message
                ), message
                assert "not enough nvidia.com/gpu" in message
        assert len(notebook_pods(sim)) == 1
    finally:
        wait_until_no_servers(users, sim)


def test_concurrent_form_submissions_for_the_last_mig_slice_admit_one(users, sim):
    node = make_node(
        "mig-3g",
        cpu="16",
        memory="64Gi",
        extended={"nvidia.com/gpu": 0, MIG_3G: 1},
        labels=gfd_labels("NVIDIA-A100-40GB", 40960, 1, mig={"3g.20gb": (1, 20096)}),
        taints=[{"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}],
    )
    requests.post(f"{sim.url}/api/v1/nodes", json=node, timeout=10).raise_for_status()
    deadline = time.monotonic() + 10
    while not any(n["name"] == "mig-3g" for n in users[0].resources()["nodes"]):
        assert time.monotonic() < deadline
        time.sleep(0.2)
    fields = {
        "profile": "custom",
        "image": "tk-jupyter-ml-gpu",
        "custom_image": "",
        "node": "mig-3g",
        "cpu": "2",
        "memory": "4Gi",
        "gpu_resource": MIG_3G,
        "gpu_count": "1",
    }
    two = users[:2]
    tokens = [user.open_form() for user in two]  # both saw the slice free

    def submit(user, xsrf):
        return lambda: user.post_form(xsrf, fields)

    try:
        responses = at_once([submit(u, t) for u, t in zip(two, tokens, strict=True)])
        accepted = [r for r in responses if r.status_code == 302]
        refused = [r for r in responses if r.status_code != 302]
        assert (len(accepted), len(refused)) == (1, 1), [r.status_code for r in responses]
        page = refused[0].content.decode()
        match = _ERROR.search(page)
        assert match, page[-2000:]
        assert f"only 0 of 1 {MIG_3G} free" in match.group(1)
        mig_pods = [
            p
            for p in notebook_pods(sim)
            if MIG_3G in p["spec"]["containers"][0]["resources"].get("limits", {})
        ]
        assert len(mig_pods) == 1
    finally:
        wait_until_no_servers(two, sim)
    # The held slice is given back with the pod: free again for the next user.
    deadline = time.monotonic() + 10
    while gpu_row(users[0], "mig-3g", MIG_3G)["free"] != 1:
        assert time.monotonic() < deadline, gpu_row(users[0], "mig-3g", MIG_3G)
        time.sleep(0.2)


def test_an_api_refusal_shows_its_reason_not_the_raw_exception(users, sim):
    quota = (
        'pods "jupyter-alice" is forbidden: exceeded quota: gpus, requested: '
        "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=4, limited: "
        "requests.nvidia.com/gpu=4"
    )
    alice = users[0]
    sim_mode(sim, create_failure=[403, "Forbidden", quota])
    try:
        response = alice.api(
            "POST",
            "/hub/api/users/alice/server",
            json={"user_options": {"profile": "cpu-basic", "image": "tk-jupyter-scipy"}},
        )
        assert response.status_code == 500, response.text
        message = response.json()["message"]
        assert message == f"The cluster refused to start your server: {quota}"
        assert "HTTP response headers" not in message and "Audit-Id" not in message
        # The hub's log keeps the whole API answer for the operator.
        assert "Kubernetes API error while starting default/jupyter-alice" in alice.hub.tail(400)
    finally:
        sim_mode(sim, create_failure=None)
        wait_until_no_servers([alice], sim)
