"""Fixtures of the deployment-kit tests: TkKubeSpawner configured like the shipped presets."""

from __future__ import annotations

import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.config import kube_config
from traitlets.config import Config, PyFileConfigLoader

from jupyter_tk.hub.catalog import ImageCatalog
from jupyter_tk.hub.kubernetes.inventory import KubernetesInventory
from jupyter_tk.hub.kubernetes.spawner import TkKubeSpawner
from jupyter_tk.hub.policy import Policy
from tests.fakes.clusters import make_cluster
from tests.fakes.kubernetes import SimulatedKubernetes
from tests.support.spawn_fixtures import CATALOG_ITEMS, POLICY

REPO = Path(__file__).resolve().parents[2]
STORAGE_PRESETS = REPO / "share" / "jupyterhub" / "storage"


def load_preset(name: str) -> Config:
    """The preset file as JupyterHub loads a config file (get_config, load_subconfig)."""
    path = STORAGE_PRESETS / f"{name}.py"
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


@pytest.fixture
async def kube_api(tmp_path, monkeypatch):
    api = SimulatedKubernetes(make_cluster("small"))
    await api.start()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    # KubeSpawner loads the default kubeconfig, then talks to k8s_api_host (this API).
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    api.kubeconfig = kubeconfig
    yield api
    await TkKubeSpawner._stop_all_reflectors()
    await api.stop()


@pytest.fixture
async def make_spawner(kube_api):
    """TkKubeSpawner for a user, with a preset's config (or none) on top of the test policy."""
    suffix = uuid.uuid4().hex[:8]
    classes = {
        "inventory_class": type(f"Inventory{suffix}", (KubernetesInventory,), {}),
        "policy_class": type(f"Policy{suffix}", (Policy,), {}),
        "catalog_class": type(f"Catalog{suffix}", (ImageCatalog,), {}),
    }
    created = []

    def make(preset: str | None, username: str = "alice", extra: Config | None = None):
        config = Config()
        config.KubernetesInventory.kubeconfig = str(kube_api.kubeconfig)
        config.Policy.rules = POLICY["rules"]
        config.Policy.presets = POLICY["presets"]
        config.ImageCatalog.images = CATALOG_ITEMS
        config.KubeSpawner.k8s_api_host = kube_api.url
        config.KubeSpawner.namespace = "default"
        if preset:
            config.merge(load_preset(preset))
        if extra:
            config.merge(extra)
        user = SimpleNamespace(
            name=username,
            id=1,
            url=f"/user/{username}/",
            groups=[SimpleNamespace(name="gpu-lab")],
        )
        spawner = TkKubeSpawner(_mock=True, config=config, user=user, **classes)
        created.append(spawner)
        return spawner

    yield make
    if created:
        await created[0].tk_inventory.stop()


async def pod_manifest(spawner: TkKubeSpawner, user_options: dict) -> dict:
    """What KubeSpawner would POST: get_pod_manifest() serialized by the kubernetes client."""
    spawner.user_options = user_options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    return spawner.api.api_client.sanitize_for_serialization(pod)


def assert_valid_kubernetes(obj: dict) -> None:
    """Validate against the Kubernetes OpenAPI schema (strict: unknown fields are errors)."""
    import kubernetes_validate

    try:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as error:
        name = (obj.get("metadata") or {}).get("name")
        raise AssertionError(
            f"{obj.get('kind')} {name}: {error.message} at {'.'.join(map(str, error.path))}"
        ) from None
