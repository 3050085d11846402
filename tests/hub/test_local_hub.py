"""A real JupyterHub from share/jupyterhub/local_config.py spawning real local servers.

The fake NVML library (three A100s, one of them MIG-enabled) is on the hub's LD_LIBRARY_PATH and
reaches the spawned servers, whose own GPU panel API then shows what CUDA_VISIBLE_DEVICES gives
them. One hub serves the whole module; cleanup_servers is off so a hub restart can be tested.
"""

import concurrent.futures

import psutil
import pytest
import requests

from tests.fakes.nvml import fake_uuid
from tests.support.local_hub import LocalHub, custom_form
from tests.support.polling import wait_for

GPU = "nvidia.com/gpu"
MIG = "nvidia.com/mig-1g.10gb"


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = LocalHub(
        tmp_path_factory.mktemp("local-hub"),
        extra_config=(
            "c.JupyterHub.cleanup_servers = False\n"
            "c.Spawner.poll_interval = 2\n"
            # An environment whose command is missing: its spawns fail after the reservation.
            "c.TkLocalSpawner.image_commands = "
            "{'tk-jupyter-ml-cpu': ['/nonexistent/jupyterhub-singleuser']}\n"
        ),
    )
    hub.start()
    yield hub
    # Servers outlive a hub without cleanup: end the ones this hub started, by pid.
    servers = [] if hub.process is None else psutil.Process(hub.process.pid).children()
    hub.stop()
    for server in servers:
        if server.is_running() and "jupyterhub-singleuser" in " ".join(server.cmdline()):
            server.kill()


def gpu_kind(resources, resource):
    node = resources["nodes"][0]
    return next(g for g in node["gpus"] if g["resource"] == resource)


def holders(resources, resource):
    return {d["uuid"]: d["taken_by"] for d in gpu_kind(resources, resource)["devices"]}


def server_process(hub, user):
    """The single-user server process of `user` among the hub's children."""
    for child in psutil.Process(hub.process.pid).children():
        try:
            if child.environ().get("JUPYTERHUB_USER") == user:
                return child
        except psutil.Error:
            continue
    raise AssertionError(f"no server process for {user}")


def test_the_hub_says_where_it_is_and_how_to_log_in(hub):
    log = hub.log_path.read_text()
    assert f"JupyterHub on this machine at http://127.0.0.1:{hub.port}/" in log
    assert "Log in with any user name and the password in $JUPYTER_TK_PASSWORD" in log


def test_only_logged_in_users_see_this_machines_resources(hub):
    anonymous = requests.get(f"{hub.url}/hub/api/tk/resources", timeout=10)
    assert anonymous.status_code == 403

    resources = hub.login("erin").resources()
    assert resources["source"] == "local" and not resources["stale"]
    (node,) = resources["nodes"]
    assert node["allocatable"][GPU] == 2 and node["allocatable"][MIG] == 2
    assert node["memory_enforced"] is False and "advisory" in node["memory_note"]


def test_a_wrong_password_does_not_log_in(hub):
    with pytest.raises(RuntimeError, match="login of mallory failed"):
        hub.login("mallory", password="not-the-password")


def test_servers_get_gpus_of_their_own_across_a_hub_restart_and_give_them_back(hub):
    alice, bob = hub.login("alice"), hub.login("bob")
    # Given two users who each ask for 0.5 CPU and one GPU through the form
    for user in (alice, bob):
        response = user.submit_form(custom_form("0.5", "1Gi", GPU, "1"))
        assert response.status_code == 302, response.text[-2000:]
        assert "/spawn-pending/" in response.headers["location"]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda user: user.wait_ready(), (alice, bob)))

    # Then each holds a different GPU, and the picker counts both as taken
    resources = alice.resources()
    assert gpu_kind(resources, GPU)["free"] == 0
    # alice sees her name on her GPU but not bob's on his; the administrator sees both
    assert {tuple(users) for users in holders(resources, GPU).values()} == {
        ("alice",),
        ("another user",),
    }
    taken = {
        tuple(users): uuid for uuid, users in holders(hub.login_admin().resources(), GPU).items()
    }
    assert set(taken) == {("alice",), ("bob",)}
    assert resources["nodes"][0]["requested"]["cpu"] == 1.0

    # And each server's own GPU API lists exactly its GPU
    for user in (alice, bob):
        assert user.open_lab().status_code == 200
        gpus = user.server_api("gpus").json()
        assert gpus["available"] is True
        assert [d["uuid"] for d in gpus["devices"]] == [taken[(user.name,)]]
        process = server_process(hub, user.name)
        # CPU is time-shared by default: a server is not pinned to cores
        assert process.cpu_affinity() == psutil.Process(hub.process.pid).cpu_affinity()
        assert process.environ()["CUDA_VISIBLE_DEVICES"] == taken[(user.name,)]

    # When a third user asks for a GPU too, the form says no and nothing starts
    carol = hub.login("carol")
    refused = carol.submit_form(custom_form("0.5", "1Gi", GPU, "1"))
    assert refused.status_code == 400
    assert GPU in refused.text
    assert carol.server() is None

    # When the hub restarts, the running servers keep their GPUs
    hub.stop()
    hub.start()
    alice, bob = hub.login("alice"), hub.login("bob")
    assert alice.server()["ready"]
    resources = hub.login_admin().resources()
    assert gpu_kind(resources, GPU)["free"] == 0
    assert {tuple(users) for users in holders(resources, GPU).values()} == {("alice",), ("bob",)}

    # When alice stops, her GPU is free again and bob keeps his
    alice.stop_server()
    resources = bob.resources()
    assert gpu_kind(resources, GPU)["free"] == 1
    assert holders(resources, GPU)[taken[("bob",)]] == ["bob"]
    assert holders(resources, GPU)[taken[("alice",)]] == []
    bob.stop_server()
    resources = bob.resources()
    assert gpu_kind(resources, GPU)["free"] == 2
    assert resources["nodes"][0]["requested"]["cpu"] == 0


def test_a_mig_slice_is_the_only_gpu_its_server_sees(hub):
    dave = hub.login("dave")
    response = dave.submit_form(custom_form("0.5", "512Mi", MIG, "1"))
    assert response.status_code == 302, response.text[-2000:]
    dave.wait_ready()
    try:
        (uuid,) = [u for u, users in holders(dave.resources(), MIG).items() if users == ["dave"]]
        assert dave.open_lab().status_code == 200
        gpus = dave.server_api("gpus").json()
        assert [(d["uuid"], d["mig"], d["parent_uuid"]) for d in gpus["devices"]] == [
            (uuid, True, fake_uuid(2))
        ]
    finally:
        dave.stop_server()
    assert gpu_kind(dave.resources(), MIG)["free"] == 2


def test_a_server_that_dies_gives_its_gpu_back(hub):
    grace = hub.login("grace")
    assert grace.submit_form(custom_form("0.5", "512Mi", GPU, "1")).status_code == 302
    grace.wait_ready()
    assert gpu_kind(grace.resources(), GPU)["free"] == 1
    # When its process is killed behind the hub's back, the hub's poll notices
    server_process(hub, "grace").kill()
    wait_for(lambda: grace.server() is None, timeout=30)
    wait_for(lambda: gpu_kind(grace.resources(), GPU)["free"] == 2, timeout=30)


def test_a_server_that_fails_to_start_gives_its_gpu_back(hub):
    heidi = hub.login("heidi")
    form = dict(custom_form("0.5", "512Mi", GPU, "1"), image="tk-jupyter-ml-cpu")
    response = heidi.submit_form(form)
    # The hub reports a spawn that fails this fast on the spawn page itself
    assert response.status_code == 500
    assert "does not exist on this machine: /nonexistent/jupyterhub-singleuser" in response.text
    wait_for(lambda: heidi.server() is None, timeout=30)
    resources = heidi.resources()
    assert gpu_kind(resources, GPU)["free"] == 2
    assert resources["nodes"][0]["requested"]["cpu"] == 0


def test_the_rest_api_is_held_to_the_same_rules(hub):
    frank = hub.login("frank")
    response = frank.api(
        "POST",
        "/hub/api/users/frank/server",
        json={
            "profile": "custom",
            "cpu": 0.5,
            "memory": "1Gi",
            "gpu": {"resource": GPU, "count": 5},
        },
    )
    assert response.status_code == 400
    assert "not enough nvidia.com/gpu" in response.json()["message"]
    assert frank.server() is None
