"""A real JupyterHub running exactly the code of ``share/z2jh/values.yaml``'s
``hub.extraConfig``, as the z2jh chart runs it (in key order, ``exec`` in the config file),
against the simulated Kubernetes API: a spawn creates a pod with the storage tiers of the
preset the values choose, and the pod validates against the Kubernetes schema."""

from __future__ import annotations

import filecmp
import json
import sys
from pathlib import Path

import yaml

from tests.deploy.conftest import REPO, assert_valid_kubernetes
from tests.support.kube_hub import KUBERNETES_CONFIG, CatalogServer, KubeHub
from tests.support.spawn_fixtures import CATALOG_ITEMS

VALUES = REPO / "share" / "z2jh" / "values.yaml"
POD = "jupyter-alice"
HOME = "/home/jovyan"

# What z2jh's jupyterhub_config.py does with hub.extraConfig, after its own settings.
RUN_EXTRA_CONFIG = f"""
import yaml as _yaml
with open({str(VALUES)!r}) as _file:
    _extra = _yaml.safe_load(_file)["hub"]["extraConfig"]
for _key, _code in sorted(_extra.items()):
    exec(_code)
"""


def z2jh_hub(workdir, sim, catalog_url: str) -> KubeHub:
    """The test hub (dummy login, ports, the simulated API) with extraConfig as its only
    jupyter-tk config: the harness's own load of kubernetes_config.py is taken out, since
    the chart loads it once, from extraConfig."""
    return take_out_own_load(
        KubeHub(workdir, sim, catalog=catalog_url, extra_config=RUN_EXTRA_CONFIG)
    )


def take_out_own_load(hub: KubeHub) -> KubeHub:
    """Remove the harness's load of kubernetes_config.py: extraConfig loads it, once."""
    own_load = f"load_subconfig({str(KUBERNETES_CONFIG)!r})\n"
    text = hub.config_path.read_text()
    assert own_load in text
    hub.config_path.write_text(text.replace(own_load, "", 1))
    return hub


def test_the_values_extra_config_spawns_pods_with_the_storage_tiers(tmp_path, sim):
    # extraConfig loads the copies pip installed under sys.prefix, as in the hub image; an
    # editable install copies them once, so a clone changed since would test old files.
    installed = Path(sys.prefix) / "share" / "jupyter-tk" / "jupyterhub"
    shipped = REPO / "share" / "jupyterhub"
    for name in ("kubernetes_config.py", "storage/thinkube.py"):
        assert filecmp.cmp(installed / name, shipped / name, shallow=False), (
            f"{installed / name} differs from the clone's: run `pip install --no-deps -e .`"
        )
    with CatalogServer(CATALOG_ITEMS) as catalog, z2jh_hub(tmp_path, sim, catalog.url) as hub:
        alice = hub.login("alice")
        response = alice.submit_form(
            {
                "profile": "custom",
                "image": "tk-jupyter-scipy",
                "custom_image": "",
                "node": "",
                "cpu": "1",
                "memory": "2Gi",
                "gpu_resource": "",
                "gpu_count": "0",
            }
        )
        assert response.status_code == 302, response.text[:500]
        try:
            pod = sim.wait_for_pod(POD)
        finally:
            alice.stop_server()
            sim.wait_for_pod(POD, gone=True)

    notebook = next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    tiers = json.loads(env["JUPYTER_TK_STORAGE"])
    assert tiers[f"{HOME}/thinkube/notebooks"] == "persistent"
    assert tiers[HOME] == "ephemeral"
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    assert {"thinkube-notebooks", "thinkube-datasets", "thinkube-examples"} <= claims
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["tk-storage-init"]
    # What the cluster would be sent: the object without what the API server adds.
    sent = {key: pod[key] for key in ("apiVersion", "kind", "spec")}
    sent["metadata"] = {
        key: value
        for key, value in pod["metadata"].items()
        if key in ("name", "namespace", "labels", "annotations")
    }
    assert_valid_kubernetes(sent)
    assert yaml.safe_load(VALUES.read_text())["singleuser"]["storage"]["type"] == "none"
