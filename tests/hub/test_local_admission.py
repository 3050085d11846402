"""Several users asking at the same moment for the last GPU or the last MIG slice of this machine.

A real hub from local_config.py with one whole GPU and one MIG instance (the fake NVML library).
Four users send their spawn at once, through the form or the REST API; exactly one server must
start and hold the device, the others are refused with a reason and start nothing.
"""

import concurrent.futures
import itertools
import threading

import pytest

from tests.fakes.nvml import fake_gpu, fake_mig_gpu
from tests.support.local_hub import LocalHub, custom_form
from tests.support.polling import wait_for

GPU = "nvidia.com/gpu"
MIG = "nvidia.com/mig-1g.10gb"
CONTENDERS = 4
_names = (f"user{n}" for n in itertools.count())


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    hub = LocalHub(
        tmp_path_factory.mktemp("local-admission"),
        gpus=[fake_gpu(0), fake_mig_gpu(1, instances=1)],
    )
    hub.start()
    yield hub
    hub.stop()


def gpu_kind(resources, resource):
    node = resources["nodes"][0]
    return next(g for g in node["gpus"] if g["resource"] == resource)


def at_once(calls):
    """Run the calls on their own threads, released together; their results in order."""
    start = threading.Barrier(len(calls))

    def run(call):
        start.wait()
        return call()

    with concurrent.futures.ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def by_form(user, resource):
    xsrf = user.open_form()  # each user has the form open, then all press Start together
    fields = custom_form("0.5", "512Mi", resource, "1")
    return lambda: user.post_form(xsrf, fields)


def by_rest(user, resource):
    body = {
        "profile": "custom",
        "image": "tk-jupyter-ml-gpu",
        "cpu": 0.5,
        "memory": "512Mi",
        "gpu": {"resource": resource, "count": 1},
    }
    return lambda: user.api("POST", f"/hub/api/users/{user.name}/server", json=body, timeout=60)


def accepted(response, path):
    if path == "form":
        return response.status_code == 302 and "/spawn-pending/" in response.headers["location"]
    return response.status_code in (201, 202)


@pytest.mark.parametrize("resource", [GPU, MIG], ids=["last GPU", "last MIG slice"])
@pytest.mark.parametrize("path", ["form", "rest"])
def test_only_one_of_several_spawns_at_once_gets_the_last_device(hub, path, resource):
    users = [hub.login(next(_names)) for _ in range(CONTENDERS)]
    assert gpu_kind(users[0].resources(), resource)["free"] == 1
    send = by_form if path == "form" else by_rest
    calls = [send(user, resource) for user in users]

    responses = at_once(calls)

    winners = [u for u, r in zip(users, responses, strict=True) if accepted(r, path)]
    assert len(winners) == 1, [(r.status_code, r.text[-300:]) for r in responses]
    (winner,) = winners
    for user, response in zip(users, responses, strict=True):
        if user is not winner:
            # Refused by the form's check or by the reservation itself, saying what is short
            assert response.status_code in (400, 409), response.text[-2000:]
            assert f"not enough free {resource}" in response.text or resource in response.text
    winner.wait_ready()
    try:
        for user in users:
            if user is not winner:
                wait_for(lambda user=user: user.server() is None, timeout=60)
        kind = gpu_kind(winner.resources(), resource)
        assert kind["free"] == 0
        assert [d["taken_by"] for d in kind["devices"]] == [[winner.name]]
    finally:
        winner.stop_server()
    assert gpu_kind(winner.resources(), resource)["free"] == 1
