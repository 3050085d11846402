"""The deployment kit as a cluster admin gets it: every object it would send to Kubernetes
validates against the OpenAPI schema, the Dockerfiles pass hadolint, and the z2jh values hold
no secret and reference what the kit ships."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import REPO, assert_valid_kubernetes, load_preset

KUBERNETES = REPO / "share" / "kubernetes"
VALUES = REPO / "share" / "z2jh" / "values.yaml"
IMAGES = REPO / "share" / "images"
MANIFESTS = sorted(KUBERNETES.rglob("*.yaml"))
DOCKERFILES = sorted(IMAGES.glob("*/Dockerfile"))


class StrictLoader(yaml.SafeLoader):
    """YAML that refuses a key given twice (PyYAML keeps the last one silently)."""


def _no_duplicates(loader, node, deep=False):
    keys = [loader.construct_object(k, deep=deep) for k, _ in node.value]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise yaml.constructor.ConstructorError(
            None, None, f"keys given twice: {twice}", node.start_mark
        )
    return loader.construct_mapping(node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def documents(path: Path) -> list[dict]:
    return [d for d in yaml.load_all(path.read_text(), Loader=StrictLoader) if d is not None]


def values() -> dict:
    return yaml.load(VALUES.read_text(), Loader=StrictLoader)


def all_objects() -> list[dict]:
    return [obj for path in MANIFESTS for obj in documents(path)]


def test_the_kit_has_its_manifests():
    names = {p.relative_to(KUBERNETES).as_posix() for p in MANIFESTS}
    assert {
        "rbac.yaml",
        "examples-sync.yaml",
        "storage/thinkube-seaweedfs.yaml",
        "storage/university-nfs.yaml",
    } <= names


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.relative_to(KUBERNETES).as_posix())
def test_every_manifest_validates_against_the_kubernetes_schema(path):
    objects = documents(path)
    assert objects
    for obj in objects:
        assert_valid_kubernetes(obj)
    keys = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in objects]
    assert len(keys) == len(set(keys)), "an object is defined twice"


@pytest.mark.parametrize("preset", ["thinkube", "university"])
def test_every_claim_of_a_preset_is_shipped_retained_and_shared(preset):
    claims = {
        folder["claim"]
        for folder in load_preset(preset).StorageLayout.folders
        if folder.get("claim")
    }
    objects = all_objects()
    pvcs = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PersistentVolumeClaim"}
    pvs = {o["metadata"]["name"]: o for o in objects if o["kind"] == "PersistentVolume"}
    assert claims and claims <= set(pvcs)
    for claim in claims:
        pvc = pvcs[claim]
        assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
        volume = pvs[pvc["spec"]["volumeName"]]
        assert volume["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
        assert volume["spec"]["claimRef"]["name"] == claim


def test_seaweedfs_storage_class_retains_volumes():
    classes = [o for o in all_objects() if o["kind"] == "StorageClass"]
    assert [c["reclaimPolicy"] for c in classes] == ["Retain"]
    assert classes[0]["provisioner"] == "seaweedfs-csi-driver"


def test_the_examples_job_writes_the_claim_notebooks_read():
    (cronjob,) = documents(KUBERNETES / "examples-sync.yaml")
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["command"] == ["jupyter-tk-sync-examples"]
    claims = [
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    ]
    read_only = [
        f for f in load_preset("thinkube").StorageLayout.folders if f["tier"] == "read-only"
    ]
    assert claims == [read_only[0]["claim"]]
    assert pod["securityContext"]["runAsNonRoot"] is True
    # The console script it runs is installed with the package.
    assert shutil.which("jupyter-tk-sync-examples")


def test_rbac_for_z2jh_is_only_cluster_wide_and_read_only():
    inventory = [
        o
        for o in documents(KUBERNETES / "rbac.yaml")
        if o["metadata"].get("labels", {}).get("jupyter-tk/rbac") == "inventory"
    ]
    assert sorted(o["kind"] for o in inventory) == ["ClusterRole", "ClusterRoleBinding"]
    (role,) = [o for o in inventory if o["kind"] == "ClusterRole"]
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}


def _hub_pod_from_values(hub: dict) -> dict:
    """The hub pod the chart makes from these values, as far as they fill it in: extraEnv in
    its three notations, extraVolumes, extraVolumeMounts, the image."""
    env = []
    for name, value in hub["extraEnv"].items():
        env.append(
            {"name": name, "value": value} if isinstance(value, str) else {"name": name, **value}
        )
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hub"},
        "spec": {
            "containers": [
                {
                    "name": "hub",
                    "image": f"{hub['image']['name']}:{hub['image']['tag']}",
                    "env": env,
                    "volumeMounts": hub["extraVolumeMounts"],
                }
            ],
            "volumes": hub["extraVolumes"],
        },
    }


def test_values_embedded_objects_validate_and_secrets_come_from_a_secret():
    hub = values()["hub"]
    assert_valid_kubernetes(_hub_pod_from_values(hub))
    secret = hub["extraEnv"]["JUPYTER_TK_OIDC_CLIENT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert secret == {"name": "jupyterhub-oidc", "key": "client-secret"}
    text = VALUES.read_text()
    assert not re.search(
        r"(?i)^\s*(client_secret|password|cookie_secret|secretToken)\s*:", text, re.M
    )
    mounted = {m["mountPath"] for m in hub["extraVolumeMounts"]}
    assert hub["extraEnv"]["JUPYTER_TK_POLICY"].rsplit("/", 1)[0] in mounted


def test_values_choose_jupyter_tk_storage_sign_in_and_one_culler():
    config = values()
    assert config["singleuser"]["storage"]["type"] == "none"
    env = config["hub"]["extraEnv"]
    assert env["JUPYTER_TK_OIDC_PROVIDER"] in ("keycloak", "authentik")
    # The shipped config runs the cullers; the chart's own would be a second one.
    assert config["cull"]["enabled"] is False
    assert int(env["JUPYTER_TK_IDLE_TIMEOUT"]) > int(env["JUPYTER_TK_GPU_IDLE_TIMEOUT"]) > 0
    code = "\n".join(config["hub"]["extraConfig"].values())
    extra = "\n".join(line for line in code.splitlines() if not line.lstrip().startswith("#"))
    loaded = re.findall(r'"([a-z_]+\.py)"', extra)
    assert loaded == ["kubernetes_config.py", "thinkube.py"]
    for name in loaded:
        assert list((REPO / "share" / "jupyterhub").rglob(name))


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfiles_pass_hadolint(dockerfile):
    result = subprocess.run(
        ["hadolint", "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_notebook_images_carry_the_labels_the_catalog_reads():
    assert sorted(p.parent.name for p in DOCKERFILES) == ["hub", "ml-cpu", "ml-gpu", "scipy"]
    for flavour, gpu in [("scipy", "false"), ("ml-cpu", "false"), ("ml-gpu", "true")]:
        text = (IMAGES / flavour / "Dockerfile").read_text()
        assert 'jupyter_compatible="true"' in text
        assert f'gpu_required="{gpu}"' in text
        assert re.search(r'"jupyter-tk==\$\{JUPYTER_TK_VERSION\}"', text)
        categories = re.search(r'"categories": \{"\*": (\[.*?\])\}', text).group(1)
        assert yaml.safe_load(categories) == (
            ["common"] if flavour == "scipy" else ["common", flavour]
        )
        assert (
            REPO / "share" / "examples" / ("common" if flavour == "scipy" else flavour)
        ).is_dir()
    hub = (IMAGES / "hub" / "Dockerfile").read_text()
    assert (
        "quay.io/jupyterhub/k8s-hub" in hub
        and '"jupyter-tk[hub]==' in hub
        and "oauthenticator" in hub
    )


@pytest.mark.parametrize("flavour", ["scipy", "ml-cpu", "ml-gpu"])
def test_an_image_gets_its_examples_whatever_the_catalog_calls_it(flavour, tmp_path):
    """The server config the Dockerfile writes, read by the real ExamplesSync over the
    shipped examples: the categories apply to any image name."""
    from traitlets.config import Config

    from jupyter_tk.server.examples.sync import ExamplesSync

    text = (IMAGES / flavour / "Dockerfile").read_text()
    document = json.loads(re.search(r"printf '(\{.*\})\\n'", text).group(1))
    sync = ExamplesSync(
        config=Config(document),
        source_dir=str(REPO / "share" / "examples"),
        destination_dir=str(tmp_path / "examples"),
        root_dir=str(tmp_path),
        image_name="site-chosen-name",
        sync_on_start=False,
    )
    try:
        listing = sync.list_examples()
    finally:
        sync.close()
    wanted = ["common"] if flavour == "scipy" else ["common", flavour]
    assert listing["categories"] == wanted
    assert {item["category"] for item in listing["items"]} == set(wanted)
