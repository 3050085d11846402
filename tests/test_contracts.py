"""The JSON real servers send matches the contracts, and the TypeScript types are generated.

The contracts are the TypedDicts of ``jupyter_tk/hub/contract.py`` and
``jupyter_tk/server/contract.py`` (docs/contracts.md). Each check below takes a real server's
answer: JupyterLab with the jupyter-tk server extension on the fake NVML library, a hub on the
shipped Kubernetes config against the simulated API, and a hub on the shipped local config.
"""

from __future__ import annotations

import json

import pytest

from jupyter_tk.hub import contract as hub_contract
from jupyter_tk.server import contract as server_contract
from tests.fakes.nvml import fake_config, fake_gpu, fake_mig_gpu, nvml_env
from tests.support.contract import contract_errors, stale_targets, targets, typescript
from tests.support.kube_hub import kube_hub_with_catalog
from tests.support.lab_server import LabServer
from tests.support.local_hub import LocalHub
from tests.support.polling import wait_for

IMAGE = "tk-jupyter-ml-gpu"


def assert_matches(value, shape) -> None:
    errors = contract_errors(value, shape)
    assert not errors, f"{shape.__name__} contract broken:\n" + "\n".join(errors)


# -- the checker and the generator themselves ----------------------------------------------------


def test_the_checker_finds_missing_unknown_and_mistyped_keys():
    device = {
        "uuid": "GPU-1",
        "index": "0",
        "parent_uuid": None,
        "utilization_gpu": None,
        "memory_used": 1.5,
        "taken_by": ["alice", 3],
        "error": None,
        "surprise": True,
    }
    errors = contract_errors(device, hub_contract.GpuDevice)
    assert errors == [
        "$: 'memory_total' is missing (GpuDevice)",
        "$: 'surprise' is not in the contract (GpuDevice): add it there",
        "$.index: '0' is not a whole number",
        "$.memory_used: 1.5 is not int | None",
        "$.taken_by[1]: 3 is not a string",
    ]
    assert contract_errors({"source": "nowhere"}, hub_contract.ResourcesSnapshot)[-1] == (
        "$.source: 'nowhere' is not one of ['kubernetes', 'local']"
    )
    assert contract_errors(float("nan"), float) == ["$: nan is not a JSON number"]
    assert contract_errors(True, int) == ["$: True is not a whole number"]


def test_typescript_files_are_generated_from_the_contracts():
    stale = [str(path) for path in stale_targets()]
    assert not stale, "regenerate with `python -m tests.support.contract`: " + ", ".join(stale)


def test_generated_typescript_follows_a_contract_change(monkeypatch):
    target = targets()[1]
    monkeypatch.setitem(hub_contract.Taint.__annotations__, "since", float)
    assert "  since: number;" in typescript(target)
    assert target.path.read_text() != typescript(target)


# -- the single-user server ------------------------------------------------------------------


def write_examples(source) -> None:
    for relative in ("common/intro.ipynb", "ml-gpu/train.ipynb", "ml-gpu/data/prepare.py"):
        path = source / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cells": [], "metadata": {}, "nbformat": 4}) + "\n")


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    base = tmp_path_factory.mktemp("contract-lab")
    write_examples(base / "examples")
    gpus = [fake_gpu(0), fake_mig_gpu(1, instances=2)]
    args = [
        f"--ExamplesSync.source_dir={base / 'examples'}",
        f"--ExamplesSync.destination_dir={base / 'root' / 'examples'}",
        f"--ExamplesSync.image_name={IMAGE}",
        "--ExamplesSync.sync_on_start=False",
    ]
    env = nvml_env(fake_config(gpus), base / "nvml.json")
    with LabServer(base, args=args, env=env) as server:
        yield server


def test_gpu_answers_match_the_contract(lab):
    snapshot = wait_for(lambda: (s := lab.api("jupyter-tk/api/gpus"))["devices"] and s, timeout=30)
    assert_matches(snapshot, server_contract.GpuSnapshot)
    assert [d["mig"] for d in snapshot["devices"]] == [False, True, True]
    history = wait_for(lambda: (h := lab.api("jupyter-tk/api/gpus/history"))["devices"] and h, 30)
    assert_matches(history, server_contract.GpuHistory)


def test_examples_answers_match_the_contract(lab):
    listing = lab.api("jupyter-tk/api/examples")
    assert_matches(listing, server_contract.ExamplesListing)
    ids = sorted(item["id"] for item in listing["items"])
    assert ids == ["common/intro.ipynb", "ml-gpu/data/prepare.py", "ml-gpu/train.ipynb"]
    request: server_contract.CopyRequest = {"all": True}
    copied = lab.api("jupyter-tk/api/examples/copy", method="POST", body=request)
    assert_matches(copied, server_contract.ExamplesActionResult)
    assert {r["action"] for r in copied["results"]} == {"copied"}
    reset: server_contract.ResetRequest = {"ids": ids[:1]}
    answer = lab.api("jupyter-tk/api/examples/reset", method="POST", body=reset)
    assert_matches(answer, server_contract.ExamplesActionResult)
    assert_matches(lab.api("jupyter-tk/api/examples"), server_contract.ExamplesListing)


# -- the hub -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kube_hub(tmp_path_factory, sim):
    with kube_hub_with_catalog(tmp_path_factory.mktemp("contract-kube-hub"), sim) as hub:
        yield hub


def synced(user) -> dict | None:
    body = user.resources()
    return None if body["stale"] else body


def test_kubernetes_snapshot_matches_the_contract(kube_hub):
    body = wait_for(lambda: synced(kube_hub.login("alice")), timeout=20)
    assert_matches(body, hub_contract.ResourcesSnapshot)
    assert body["source"] == "kubernetes"
    assert any(node["gpus"] for node in body["nodes"])


def test_stored_user_options_match_the_contract(kube_hub):
    alice = kube_hub.login("alice")
    wait_for(lambda: synced(alice), timeout=20)
    fields = {
        "profile": "custom",
        "image": "tk-jupyter-ml-gpu",
        "custom_image": "",
        "node": "",
        "cpu": "1",
        "memory": "1Gi",
        "gpu_resource": "nvidia.com/gpu",
        "gpu_count": "1",
    }
    response = alice.submit_form(fields)
    assert response.status_code == 302, response.text[-2000:]
    server = wait_for(alice.server, timeout=10)
    assert_matches(server["user_options"], hub_contract.UserOptions)
    assert server["user_options"]["gpu"]["resource"] == "nvidia.com/gpu"
    alice.stop_server()


def test_local_snapshot_matches_the_contract(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("contract-local-hub")
    with LocalHub(workdir) as hub:
        alice = hub.login("alice")
        body = wait_for(lambda: synced(alice), timeout=20)
    assert_matches(body, hub_contract.ResourcesSnapshot)
    (node,) = body["nodes"]
    assert {"memory_enforced", "cpu_mode"} <= node.keys()
    assert [len(kind["devices"]) for kind in node["gpus"]] == [2, 2]
