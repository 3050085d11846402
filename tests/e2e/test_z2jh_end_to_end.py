"""The Kubernetes kit end to end: exactly what ``share/z2jh/values.yaml``'s ``hub.extraConfig``
loads, a real OpenID Connect provider, the simulated Kubernetes API, the storage tiers and the
GPU-aware culler, in one real JupyterHub and a real browser.

ana (group cpsHPCAccess at the provider) signs in, sees the GPU presets of the university policy,
starts "1 GPU"; the pod carries the Thinkube storage tiers and validates against the Kubernetes
schema; a small "kubelet" runs its single-user server (the fake NVML as its idle GPU); the
culler stops it, the pod is deleted, and the picker shows the GPU free again.
"""

from __future__ import annotations

import json
import re

import pytest
from playwright.sync_api import expect

from tests.deploy.conftest import assert_valid_kubernetes
from tests.deploy.test_z2jh_hub import RUN_EXTRA_CONFIG, take_out_own_load
from tests.e2e.test_oidc_login import ACCOUNTS, UNIVERSITY_POLICY, person, sign_in
from tests.fakes.nvml import fake_config, fake_gpu, nvml_env
from tests.hub.test_culling_kubernetes import TIMEOUT, CullingKubeHub, Kubelet
from tests.oidc.harness import OidcProvider
from tests.support.hub_process import free_hub_port
from tests.support.kube_hub import CatalogServer, SimulatedApiProcess
from tests.support.polling import wait_for
from tests.support.spawn_fixtures import CATALOG_ITEMS, GPU

POD = "jupyter-ana"
HOME = "/home/jovyan"


class Z2jhHub(CullingKubeHub):
    """The culling test hub running the values' extraConfig, signing in through the provider."""

    provider: OidcProvider | None = None

    def env(self) -> dict[str, str]:
        return {**super().env(), **self.provider.hub_env()}


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("z2jh-e2e")
    server_port = free_hub_port()
    nvml = nvml_env(fake_config([fake_gpu(0, utilization_gpu=0)]), workdir / "nvml.json")
    with SimulatedApiProcess(workdir / "sim") as sim, CatalogServer(CATALOG_ITEMS) as catalog:
        hub = take_out_own_load(
            Z2jhHub(
                workdir / "hub",
                sim,
                catalog=catalog.url,
                policy=UNIVERSITY_POLICY,
                extra_config=RUN_EXTRA_CONFIG
                + (
                    # Groups come from the provider, not from the harness's test groups.
                    "c.JupyterHub.load_groups = {}\n"
                    f"c.KubeSpawner.port = {server_port}\n"
                    "c.KubeSpawner.http_timeout = 60\n"
                    "c.KubeSpawner.start_timeout = 90\n"
                ),
            )
        )
        callback = f"{hub.url}/hub/oauth_callback"
        with OidcProvider(
            workdir / "idp", layout="authentik", accounts=ACCOUNTS, redirect_uris=[callback]
        ) as provider:
            hub.provider = provider
            with hub, Kubelet(sim, workdir / "pods", nvml) as kubelet:
                yield hub, sim
            assert kubelet.errors == []


def gpu_free(page, hub) -> int:
    snapshot = page.request.get(f"{hub.url}/hub/api/tk/resources").json()
    (node,) = [n for n in snapshot["nodes"] if n["name"] == "gpu-1"]
    return next(g for g in node["gpus"] if g["resource"] == GPU)["free"]


def test_sign_in_by_group_spawn_with_storage_tiers_and_the_idle_gpu_is_given_back(
    browser, kit, screenshot
):
    hub, sim = kit
    with person(browser) as page:
        # Given ana, a member of cpsHPCAccess at the provider, signed in through it
        sign_in(page, hub, "ana", "Authentik")
        page.goto(f"{hub.url}/hub/spawn")
        expect(page.locator("#jp-tk-profile-gpu-1")).to_be_visible()
        free_before = gpu_free(page, hub)

        # When she starts "1 GPU"
        page.check("#jp-tk-profile-gpu-1")
        page.get_by_role("button", name="Start").click()

        # Then the pod has the Thinkube tiers and the preset's /dev/shm, and is a valid Pod
        pod = sim.wait_for_pod(POD, timeout=60)
        (notebook,) = [c for c in pod["spec"]["containers"] if c["name"] == "notebook"]
        env = {e["name"]: e.get("value") for e in notebook["env"]}
        tiers = json.loads(env["JUPYTER_TK_STORAGE"])
        assert tiers[f"{HOME}/thinkube/notebooks"] == "persistent"
        assert tiers[HOME] == "ephemeral"
        assert {m["mountPath"] for m in notebook["volumeMounts"]} >= {
            f"{HOME}/thinkube/notebooks",
            "/dev/shm",
        }
        assert notebook["resources"]["limits"][GPU] in ("1", 1)
        sent = {key: pod[key] for key in ("apiVersion", "kind", "spec")}
        sent["metadata"] = {
            k: v for k, v in pod["metadata"].items() if k in ("name", "namespace", "labels")
        }
        assert_valid_kubernetes(sent)

        # And her server runs (the kubelet started it) and holds a GPU in the picker
        page.wait_for_url(re.compile(r".*/user/ana/.*"), timeout=150_000)
        wait_for(lambda: gpu_free(page, hub) == free_before - 1, 30, "GPU not counted")

        # When its GPU stays unused, the culler stops it: the pod goes, the GPU is free again
        def stopped():
            model = page.request.get(f"{hub.url}/hub/api/user").json()
            return not model.get("servers")

        wait_for(stopped, TIMEOUT + 60, "the idle GPU server was not stopped")
        sim.wait_for_pod(POD, gone=True, timeout=30)
        wait_for(lambda: gpu_free(page, hub) == free_before, 30, "the GPU was not given back")
    log = hub.log_path.read_text()
    assert "[gpu-idle-culler] Stopping ana/" in log
