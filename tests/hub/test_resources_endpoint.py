"""GET /hub/api/tk/resources on real JupyterHubs started from the shipped configs.

The Kubernetes hub runs as a process with KUBECONFIG pointing at the simulated API (another
process), through `tests/support/kube_hub.py`; the local hub (`tests/support/local_hub.py`) runs
on the fake NVML library and starts a real server, so that a GPU is held by someone. Reading
the endpoint needs the scope custom:jupyter-tk:resources (every user has it by default), and
who holds a GPU is shown only to those who may read that user's name.
"""

from __future__ import annotations

import pytest
import requests
from traitlets.config import Config

from jupyter_tk.hub.handlers import OTHER_USER, RESOURCES_SCOPE
from jupyter_tk.hub.kubernetes.inventory import KubernetesInventory
from jupyter_tk.hub.kubernetes.spawner import TkKubeSpawner
from jupyter_tk.hub.local.inventory import LocalInventory
from jupyter_tk.hub.local.spawner import TkLocalSpawner
from jupyter_tk.hub.setup import configured_inventory_class, setup_hub
from tests.fakes.clusters import make_pod
from tests.support.kube_hub import KubeHub, kube_hub_with_catalog
from tests.support.local_hub import LocalHub, custom_form
from tests.support.polling import wait_for

RESOURCES = "tk/resources"
DEPRECATED = "extra_handlers is deprecated"


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
    wait_for(lambda: free_gpus(alice, hub) == 0, timeout=1.0, interval=0.02)
    changed = alice.get(api_url(hub), headers={"If-None-Match": etag}, timeout=10)
    assert changed.status_code == 200
    assert changed.headers["ETag"] != etag
    sim.delete_pod("extra", "ml")
    wait_for(lambda: free_gpus(alice, hub) == 1, timeout=1.0, interval=0.02)


# -- the wiring call, without a hub ----------------------------------------------------------------


def test_setup_hub_names_the_spawner_and_grants_the_scope():
    c = Config()
    setup_hub(c, backend="local")
    assert c.JupyterHub.spawner_class == "tk-local"
    # What the hub's traits become (the config holds changes to their defaults).
    assert RESOURCES_SCOPE in c.JupyterHub.custom_scopes.get_value({})
    assert c.JupyterHub.extra_user_scopes.get_value(set()) == {RESOURCES_SCOPE}
    narrow = Config()
    setup_hub(narrow, backend="kubernetes", grant_resources_to_users=False)
    assert narrow.JupyterHub.spawner_class == "tk-kubernetes"
    assert "extra_user_scopes" not in narrow.JupyterHub


def test_setup_hub_refuses_an_unknown_backend():
    c = Config()
    with pytest.raises(ValueError, match="kubernetes, local, not 'slurm'"):
        setup_hub(c, backend="slurm")
    assert "spawner_class" not in c.JupyterHub


def test_the_endpoint_uses_the_inventory_the_spawner_is_configured_with():
    assert configured_inventory_class(TkKubeSpawner, Config()) is KubernetesInventory
    assert configured_inventory_class(TkLocalSpawner, Config()) is LocalInventory
    c = Config()
    c.TkSpawnerMixin.inventory_class = "jupyter_tk.hub.local.inventory.LocalInventory"
    c.TkKubeSpawner.inventory_class = KubernetesSubclass
    assert configured_inventory_class(TkKubeSpawner, c) is KubernetesSubclass
    assert configured_inventory_class(TkLocalSpawner, c) is LocalInventory


class KubernetesSubclass(KubernetesInventory):
    pass


def token_of(session, hub, user: str, **body) -> str:
    made = session.post(api_url(hub, f"users/{user}/tokens"), json=body, timeout=10)
    assert made.status_code == 201, made.text
    return made.json()["token"]


def get_with_token(hub, token: str) -> requests.Response:
    return requests.get(api_url(hub), headers={"Authorization": f"token {token}"}, timeout=10)


def test_a_token_without_the_scope_is_refused(hub, alice):
    bare = get_with_token(hub, token_of(alice, hub, "alice", scopes=[]))
    assert bare.status_code == 403
    assert RESOURCES_SCOPE in bare.json()["message"]
    assert "nodes" not in bare.text
    narrow = get_with_token(hub, token_of(alice, hub, "alice", scopes=[RESOURCES_SCOPE]))
    assert narrow.status_code == 200
    assert narrow.json()["source"] == "kubernetes"


def test_operators_can_narrow_the_scope_to_a_group(tmp_path_factory, sim):
    # What docs/wiring.md tells operators to write: no scope for every user, a role for a group.
    narrowed = (
        "c.JupyterHub.extra_user_scopes = set()\n"
        "c.JupyterHub.load_roles = [{'name': 'resource-viewers', 'groups': ['gpu-lab'],"
        f" 'scopes': [{RESOURCES_SCOPE!r}]}}]\n"
    )
    workdir = tmp_path_factory.mktemp("narrowed-hub")
    with kube_hub_with_catalog(workdir, sim, extra_config=narrowed) as narrow_hub:
        alice = narrow_hub.login("alice")  # in gpu-lab
        bob = narrow_hub.login("bob")  # a student
        assert alice.api("GET", "/hub/api/tk/resources").status_code == 200
        refused = bob.api("GET", "/hub/api/tk/resources")
        assert refused.status_code == 403
        assert RESOURCES_SCOPE in refused.json()["message"]


def test_the_config_logs_no_deprecation(hub):
    assert DEPRECATED not in hub.log_path.read_text(errors="replace")


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


# -- who holds a GPU, on the local hub ------------------------------------------------------------


@pytest.fixture(scope="module")
def local_hub(tmp_path_factory):
    with LocalHub(tmp_path_factory.mktemp("local-hub")) as server:
        yield server


@pytest.fixture(scope="module")
def gpu_held_by_alice(local_hub):
    """alice's server holds one whole GPU (held from the moment it starts, ready or not)."""
    alice = local_hub.login("alice")
    response = alice.submit_form(custom_form("1", "1Gi", "nvidia.com/gpu", "1"))
    assert response.status_code == 302, response.text[-2000:]
    wait_for(lambda: holders(alice.resources()) == ["alice"], timeout=30, interval=0.2)
    yield alice
    alice.stop_server()


def holders(body: dict) -> list[str]:
    return [
        name
        for node in body["nodes"]
        for kind in node["gpus"]
        for device in kind.get("devices", ())
        for name in device["taken_by"]
    ]


def test_local_holders_are_named_only_to_who_may_read_them(local_hub, gpu_held_by_alice):
    bob = local_hub.login("bob")
    seen_by_bob = bob.api("GET", "/hub/api/tk/resources")
    assert seen_by_bob.status_code == 200
    assert holders(seen_by_bob.json()) == [OTHER_USER]
    assert "alice" not in seen_by_bob.text
    # The same on the spawn form the hub renders for bob.
    form = bob.get("/hub/spawn").text
    assert f"in use by {OTHER_USER}" in form
    assert "alice" not in form
    # Her own name, to alice; every name, to an admin (who may read all users).
    assert holders(gpu_held_by_alice.resources()) == ["alice"]
    seen_by_admin = local_hub.login_admin().api("GET", "/hub/api/tk/resources")
    assert holders(seen_by_admin.json()) == ["alice"]
    # Different bodies never share an ETag.
    assert seen_by_bob.headers["ETag"] != seen_by_admin.headers["ETag"]
    # bob's own ETag revalidates. The local inventory re-reads the machine every few seconds
    # (a new version), so take a fresh ETag and ask again at once, a few times if need be.
    for _ in range(10):
        tag = bob.api("GET", "/hub/api/tk/resources").headers["ETag"]
        again = bob.api("GET", "/hub/api/tk/resources", headers={"If-None-Match": tag})
        if again.status_code == 304:
            break
    assert again.status_code == 304


def test_local_token_without_the_scope_is_refused(local_hub):
    bob = local_hub.login("bob")
    made = bob.api("POST", "/hub/api/users/bob/tokens", json={"scopes": []})
    token = made.json()["token"]
    assert get_with_token(local_hub, token).status_code == 403
    assert DEPRECATED not in local_hub.log_path.read_text(errors="replace")
