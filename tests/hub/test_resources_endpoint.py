"""GET /hub/api/tk/resources on a real JupyterHub started from kubernetes_config.py.

The hub runs as a process with KUBECONFIG pointing at the simulated API (another process),
through the shared harness of `tests/hub/kube_hub.py`.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.fakes.clusters import make_pod
from tests.support.kube_hub import KubeHub, kube_hub_with_catalog

RESOURCES = "tk/resources"


def wait_for(check, timeout: float, interval: float = 0.02):
    """Poll `check()` until it returns something truthy; return it, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout}s")
        time.sleep(interval)


def api_url(hub: KubeHub, path: str = RESOURCES) -> str:
    return f"{hub.url}/hub/api/{path}"


@pytest.fixture(scope="module")
def hub(tmp_path_factory, sim):
    quick_to_go_stale = (
        "c.KubernetesInventory.stale_after_seconds = 1.0\n"
        "c.KubernetesInventory.backoff_max_seconds = 1.0\n"
    )
    with kube_hub_with_catalog(
        tmp_path_factory.mktemp("hub"), sim, extra_config=quick_to_go_stale
    ) as server:
        yield server


@pytest.fixture(scope="module")
def alice(hub):
    """A logged-in browser-like session that sends the XSRF token, as the form's script does."""
    user = hub.login("alice")
    user.session.headers["X-XSRFToken"] = user.xsrf
    return user.session


def synced(session, hub):
    response = session.get(api_url(hub), timeout=10)
    body = response.json()
    return body if response.status_code == 200 and not body["stale"] else None


def free_gpus(session, hub, node="gpu-1"):
    body = session.get(api_url(hub), timeout=10).json()
    return next(n for n in body["nodes"] if n["name"] == node)["free"].get("nvidia.com/gpu")


def test_logged_in_user_gets_the_cluster(hub, alice):
    body = wait_for(lambda: synced(alice, hub), timeout=15)
    assert body["source"] == "kubernetes"
    assert [n["name"] for n in body["nodes"]] == ["cpu-1", "cpu-2", "gpu-1"]
    cpu1 = body["nodes"][0]
    assert (cpu1["free"]["cpu"], cpu1["free"]["memory"]) == (6.0, 29 * 1024**3)
    gpu = body["nodes"][2]["gpus"][0]
    assert (gpu["product"], gpu["count"], gpu["free"]) == ("NVIDIA-A100-SXM4-40GB", 2, 1)


def test_headers_etag_and_304(hub, alice):
    wait_for(lambda: synced(alice, hub), timeout=15)
    first = alice.get(api_url(hub), timeout=10)
    assert first.headers["Cache-Control"] == "no-cache"
    assert first.headers["Content-Type"].startswith("application/json")
    etag = first.headers["ETag"]
    again = alice.get(api_url(hub), headers={"If-None-Match": etag}, timeout=10)
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["ETag"] == etag
    other = alice.get(api_url(hub), headers={"If-None-Match": '"nope"'}, timeout=10)
    assert other.status_code == 200


def test_anonymous_is_refused(hub):
    response = requests.get(api_url(hub), timeout=10)
    assert response.status_code == 403
    assert "nodes" not in response.text
    assert response.json()["status"] == 403


def test_script_fetch_with_cookie_needs_the_xsrf_token(hub, alice):
    # What a browser sends for fetch(): JupyterHub then requires the XSRF token with the cookie.
    fetch_headers = {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": "same-origin"}
    bare = requests.Session()
    bare.cookies.update(alice.cookies)
    refused = bare.get(api_url(hub), headers=fetch_headers, timeout=10)
    assert refused.status_code == 403
    accepted = alice.get(api_url(hub), headers=fetch_headers, timeout=10)
    assert accepted.status_code == 200


def test_api_token_of_a_user_is_accepted(hub, alice):
    made = alice.post(api_url(hub, "users/alice/tokens"), json={"note": "test"}, timeout=10)
    token = made.json()["token"]
    response = requests.get(api_url(hub), headers={"Authorization": f"token {token}"}, timeout=10)
    assert response.status_code == 200
    assert response.json()["source"] == "kubernetes"
    wrong = requests.get(api_url(hub), headers={"Authorization": "token not-a-token"}, timeout=10)
    assert wrong.status_code == 403


def test_pod_added_and_deleted_shows_within_one_second(hub, alice, sim):
    wait_for(lambda: synced(alice, hub), timeout=15)
    etag = alice.get(api_url(hub), timeout=10).headers["ETag"]
    pod = make_pod("extra", "ml", node="gpu-1", limits={"nvidia.com/gpu": "1"})
    sim.create_pod(pod)
    wait_for(lambda: free_gpus(alice, hub) == 0, timeout=1.0)
    changed = alice.get(api_url(hub), headers={"If-None-Match": etag}, timeout=10)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    sim.delete_pod("extra", "ml")
    wait_for(lambda: free_gpus(alice, hub) == 1, timeout=1.0)


def test_api_down_serves_the_last_snapshot_as_stale(hub, alice, sim):
    # Runs last in this module: it takes the simulated API away for good.
    before = wait_for(lambda: synced(alice, hub), timeout=15)["nodes"]
    sim.stop()

    def stale_body():
        body = alice.get(api_url(hub), timeout=10).json()
        return body if body["stale"] else None

    body = wait_for(stale_body, timeout=10)
    assert body["nodes"] == before
    assert body["age_seconds"] >= 1.0
    assert requests.get(f"{hub.url}/hub/health", timeout=5).status_code == 200
    assert hub.process.poll() is None
