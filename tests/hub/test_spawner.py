"""TkKubeSpawner in process: the real KubeSpawner, the real inventory, the simulated API.

Pod manifests come from KubeSpawner's own ``get_pod_manifest()`` after ``load_user_options``,
so these tests see exactly what would be sent to the cluster.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace

import pytest
from kubernetes_asyncio.config import kube_config
from traitlets.config import Config

from jupyter_tk.hub.catalog import ImageCatalog
from jupyter_tk.hub.kubernetes.inventory import KubernetesInventory
from jupyter_tk.hub.kubernetes.spawner import ClusterRefused, TkKubeSpawner
from jupyter_tk.hub.kubernetes.unschedulable import ServerUnschedulable, plain_scheduler_message
from jupyter_tk.hub.policy import Policy
from jupyter_tk.hub.quantities import parse_quantity
from jupyter_tk.hub.spawner_mixin import ShowTheForm
from jupyter_tk.hub.validation import InvalidOptions, SpawnNotAllowed
from tests.fakes.clusters import GPU_TAINT, gfd_labels, make_cluster, make_node, make_pod
from tests.fakes.kubernetes import SimulatedKubernetes
from tests.support.spawn_fixtures import CATALOG_ITEMS, GIB, GPU, MIG, POLICY

HOSTNAME = "kubernetes.io/hostname"


def lab_cluster():
    """small cluster (cpu-1, gpu-1 with 1 of 2 A100 free, cordoned cpu-2) plus a MIG node."""
    cluster = make_cluster("small")
    cluster.nodes.append(
        make_node(
            "mig-1",
            cpu="32",
            memory="128Gi",
            extended={"nvidia.com/gpu": 0, MIG: 7},
            labels=gfd_labels("NVIDIA-A100-80GB-PCIe", 81920, 1, mig={"1g.10gb": (7, 9728)}),
            taints=[GPU_TAINT],
        )
    )
    return cluster


@pytest.fixture
async def sim(tmp_path, monkeypatch):
    api = SimulatedKubernetes(lab_cluster())
    await api.start()
    kubeconfig = api.write_kubeconfig(tmp_path / "kubeconfig")
    # KubeSpawner loads the default kubeconfig ($KUBECONFIG, read by kubernetes_asyncio at
    # import time) and then points at k8s_api_host (set below to this simulated API).
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(kubeconfig))
    yield api
    await TkKubeSpawner._stop_all_reflectors()
    await api.stop()


@pytest.fixture
async def make_spawner(sim, tmp_path):
    """Spawners sharing one fresh policy, catalog and inventory (per test, not per process)."""
    suffix = uuid.uuid4().hex[:8]
    classes = {
        "inventory_class": type(f"Inventory{suffix}", (KubernetesInventory,), {}),
        "policy_class": type(f"Policy{suffix}", (Policy,), {}),
        "catalog_class": type(f"Catalog{suffix}", (ImageCatalog,), {}),
    }
    created = []

    def make(groups=("gpu-lab",), name="alice", presets=(), **traits) -> TkKubeSpawner:
        config = Config()
        config.KubernetesInventory.kubeconfig = str(tmp_path / "kubeconfig")
        config.Policy.rules = POLICY["rules"]
        config.Policy.presets = POLICY["presets"] + list(presets)
        config.ImageCatalog.images = CATALOG_ITEMS
        config.KubeSpawner.k8s_api_host = sim.url
        config.KubeSpawner.namespace = "default"
        user = SimpleNamespace(
            name=name,
            id=len(created) + 1,
            url=f"/user/{name}/",
            groups=[SimpleNamespace(name=g) for g in groups],
        )
        spawner = TkKubeSpawner(_mock=True, config=config, user=user, **classes, **traits)
        created.append(spawner)
        return spawner

    yield make
    if created:
        await created[0].tk_inventory.stop()


async def manifest(spawner: TkKubeSpawner, user_options: dict) -> dict:
    spawner.user_options = user_options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    return spawner.api.api_client.sanitize_for_serialization(pod)


def notebook(pod: dict) -> dict:
    return next(c for c in pod["spec"]["containers"] if c["name"] == "notebook")


def amounts(resources: dict) -> dict:
    """Quantities as numbers (KubeSpawner sends 4.0 and "4" alike)."""
    return {name: float(parse_quantity(value)) for name, value in resources.items()}


def env(pod: dict) -> dict:
    return {e["name"]: e.get("value") for e in notebook(pod)["env"]}


def required_terms(pod: dict) -> list:
    affinity = pod["spec"].get("affinity") or {}
    node = (affinity.get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    )
    return (node or {}).get("nodeSelectorTerms", [])


async def test_a_gpu_preset_on_any_node(make_spawner):
    pod = await manifest(make_spawner(), {"profile": "gpu-1", "image": "tk-jupyter-ml-gpu"})
    resources = notebook(pod)["resources"]
    assert amounts(resources["limits"]) == {"cpu": 4, "memory": 16 * GIB, GPU: 1}
    assert amounts(resources["requests"]) == {"cpu": 4, "memory": 16 * GIB, GPU: 1}
    assert notebook(pod)["image"] == "nvcr.io/nvidia/pytorch:24.05-py3"
    assert required_terms(pod) == []
    assert {"key": GPU, "operator": "Exists", "effect": "NoSchedule"} in pod["spec"]["tolerations"]
    assert env(pod)["JUPYTER_TK_PROFILE"] == "gpu-1"
    assert env(pod)["JUPYTER_IMAGE"] == "nvcr.io/nvidia/pytorch:24.05-py3"
    assert "NVIDIA_VISIBLE_DEVICES" not in env(pod)


async def test_a_mig_slice_pinned_to_its_node(make_spawner):
    options = {
        "profile": "custom",
        "image": "tk-jupyter-ml-gpu",
        "node": "mig-1",
        "cpu": 3,
        "memory": "12Gi",
        "gpu": {"resource": MIG, "count": 1},
    }
    pod = await manifest(make_spawner(), options)
    assert notebook(pod)["resources"]["limits"][MIG] == "1"
    assert GPU not in notebook(pod)["resources"]["limits"]
    assert required_terms(pod) == [
        {"matchExpressions": [{"key": HOSTNAME, "operator": "In", "values": ["mig-1"]}]}
    ]
    assert env(pod)["JUPYTER_TK_PROFILE"] == "custom"


async def test_a_cpu_server_pinned_gets_no_gpu_and_no_gpu_toleration(make_spawner):
    pod = await manifest(
        make_spawner(), {"profile": "cpu-basic", "image": "tk-jupyter-scipy", "node": "cpu-1"}
    )
    limits = notebook(pod)["resources"]["limits"]
    assert amounts(limits) == {"cpu": 2, "memory": 4 * GIB}
    assert required_terms(pod)[0]["matchExpressions"][0]["values"] == ["cpu-1"]
    assert not pod["spec"].get("tolerations")
    assert env(pod)["NVIDIA_VISIBLE_DEVICES"] == "void"
    assert notebook(pod)["image"] == "quay.io/jupyter/scipy-notebook:2024-05-27"


async def test_the_guarantee_ratio_scales_requests_not_limits(make_spawner):
    spawner = make_spawner(guarantee_ratio=0.5)
    pod = await manifest(spawner, {"profile": "custom", "cpu": 3, "memory": "6Gi"})
    resources = notebook(pod)["resources"]
    assert amounts(resources["limits"]) == {"cpu": 3, "memory": 6 * GIB}
    assert amounts(resources["requests"]) == {"cpu": 1.5, "memory": 3 * GIB}


async def test_operator_settings_are_kept_and_a_later_spawn_does_not_inherit(make_spawner):
    spawner = make_spawner(
        tolerations=[{"key": "site", "operator": "Exists"}],
        node_affinity_required=[
            {"matchExpressions": [{"key": "pool", "operator": "In", "values": ["nb"]}]}
        ],
        extra_resource_limits={"example.com/scratch": "1"},
        environment={"SITE": "lab"},
    )
    pod = await manifest(
        spawner, {"profile": "gpu-1", "image": "tk-jupyter-ml-gpu", "node": "gpu-1"}
    )
    expressions = required_terms(pod)[0]["matchExpressions"]
    assert [e["key"] for e in expressions] == ["pool", HOSTNAME]  # ANDed in the same term
    assert len(pod["spec"]["tolerations"]) == 2
    assert notebook(pod)["resources"]["limits"]["example.com/scratch"] == "1"
    assert env(pod)["SITE"] == "lab"

    pod = await manifest(spawner, {"profile": "cpu-basic", "image": "tk-jupyter-scipy"})
    limits = notebook(pod)["resources"]["limits"]
    assert GPU not in limits and limits["example.com/scratch"] == "1"
    assert [e["key"] for e in required_terms(pod)[0]["matchExpressions"]] == ["pool"]
    assert pod["spec"]["tolerations"] == [{"key": "site", "operator": "Exists"}]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"profile": "gpu-2"}, "No node has room"),
        ({"image": "nope"}, "not in the image list"),
        ({"profile": "custom", "cpu": "1e309"}, "far more than any server"),
        ({"node": "cpu-2"}, "cordoned"),
        ({"profile": "custom", "gpu": {"resource": "amd.com/gpu", "count": 1}}, "GPU kind"),
    ],
)
async def test_bad_rest_options_are_refused_before_anything_is_created(
    make_spawner, sim, options, message
):
    spawner = make_spawner()
    spawner.user_options = options
    with pytest.raises(InvalidOptions, match=message) as info:
        await spawner.start()
    assert info.value.status_code == 400
    assert sim.created_pods == []


async def test_capacity_is_rechecked_against_the_live_cluster(make_spawner, sim):
    spawner = make_spawner()
    options = {"profile": "gpu-1", "image": "tk-jupyter-ml-gpu", "node": "gpu-1"}
    await manifest(spawner, options)
    sim.add_pod(make_pod("thief", "ml", node="gpu-1", limits={GPU: "1"}))
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        node = next(n for n in spawner.tk_inventory.snapshot()["nodes"] if n["name"] == "gpu-1")
        if node["gpus"][0]["free"] == 0:
            break
    with pytest.raises(InvalidOptions, match=r"only 0 of 2 nvidia\.com/gpu free"):
        await manifest(spawner, options)


async def test_the_form_and_deep_link_parse_to_canonical_options(make_spawner):
    spawner = make_spawner()
    options = await spawner.run_options_from_form(
        {
            "profile": ["custom"],
            "image": ["tk-jupyter-scipy"],
            "node": [""],
            "cpu": ["1.5"],
            "memory": ["3Gi"],
            "gpu_resource": [""],
            "gpu_count": ["0"],
        }
    )
    assert options == {
        "profile": "custom",
        "image": "tk-jupyter-scipy",
        "node": None,
        "cpu": 1.5,
        "memory": "3Gi",
        "gpu": None,
    }
    query = {"image": ["tk-jupyter-ml-gpu"], "profile": ["gpu-1"]}
    # From another site (no Referer of this hub): the form opens with the link's choices.
    with pytest.raises(ShowTheForm):
        await spawner.options_from_query(query)
    # From the hub's own pages: it starts at once.
    spawner.hub = SimpleNamespace(base_url="/hub/")
    spawner.handler = SimpleNamespace(
        request=SimpleNamespace(
            headers={"Referer": "http://hub.example/hub/home"},
            protocol="http",
            host="hub.example",
        )
    )
    deep = await spawner.options_from_query(query)
    assert deep["gpu"] == {"resource": GPU, "count": 1}
    with pytest.raises(InvalidOptions, match="not in the image list"):
        await spawner.options_from_query({"image": ["nope"]})
    # Nothing the form knows (e.g. only ?_xsrf=...): show the form, start nothing.
    with pytest.raises(ShowTheForm) as info:
        await spawner.options_from_query({"_xsrf": ["x"]})
    assert info.value.status_code == 200 and info.value.jupyterhub_message == ""


async def test_the_form_renders_live_data_for_the_user(make_spawner):
    spawner = make_spawner()
    spawner.user_options = {"profile": "gpu-1", "node": "gpu-1", "image": "tk-jupyter-ml-gpu"}
    html = await spawner.get_options_form()
    assert 'value="gpu-1" selected' in html
    assert "1/2 NVIDIA-A100-SXM4-40GB" in html
    assert "cpu-2 — 3 CPU · 15.8 GiB free (cordoned)" in html
    assert "data-tk-spawn" in html and "mock_base_url" in html  # the hub's base URL is used


async def test_a_user_no_rule_matches_sees_a_clear_refusal(make_spawner):
    spawner = make_spawner(
        groups=(),
    )
    spawner.tk_policy.rules = [{"groups": ["staff"], "max": {"cpu": 1, "memory": "1Gi"}}]
    html = await spawner.get_options_form()
    assert (
        "You are not allowed to start a server: no policy rule matches your groups (none)" in html
    )
    assert 'name="profile"' not in html
    with pytest.raises(SpawnNotAllowed) as info:
        await spawner.run_options_from_form({"profile": ["custom"]})
    assert info.value.status_code == 403


async def test_fail_fast_catalog_refuses_to_render(make_spawner, tmp_path):
    spawner = make_spawner()
    spawner.tk_catalog.source = str(tmp_path / "missing.json")
    spawner.tk_catalog.fail_fast = True
    html = await spawner.get_options_form()
    assert "Servers cannot be started right now: the image catalog is unavailable" in html
    assert "missing.json" in html


async def test_an_unschedulable_pod_fails_in_bounded_time_with_the_reason(make_spawner, sim):
    # The operator asks for a resource no node has: the form cannot know, the scheduler can.
    spawner = make_spawner(
        unschedulable_timeout=1.5, extra_resource_limits={"example.com/fpga": "1"}
    )
    spawner.user_options = {"profile": "cpu-basic", "image": "tk-jupyter-scipy"}
    started = time.monotonic()
    with pytest.raises(ServerUnschedulable) as info:
        await asyncio.wait_for(spawner.start(), timeout=30)
    assert time.monotonic() - started < 10
    assert "No node could take your server within 1.5 seconds" in str(info.value)
    assert "not enough free example.com/fpga" in str(info.value)
    assert [p["metadata"]["name"] for p in sim.created_pods] == [spawner.pod_name]


@pytest.mark.parametrize(
    ("scheduler", "plain"),
    [
        (
            "0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
            "0/3 nodes are available: 3 not enough free nvidia.com/gpu.",
        ),
        (
            "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
            "1 node(s) were unschedulable. preemption: 0/2 nodes are available.",
            "0/2 nodes are available: 1 not the node you picked, 1 cordoned.",
        ),
        (
            "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: ml}.",
            "0/1 nodes are available: 1 reserved (taint dedicated: ml).",
        ),
    ],
)
def test_scheduler_messages_in_plain_words(scheduler, plain):
    assert plain_scheduler_message(scheduler) == plain


# -- admission: room held from the fit check until the watch shows the pod ----------------------

MIG_3G = "nvidia.com/mig-3g.20gb"


def gpu_free(spawner: TkKubeSpawner, node_name: str, resource: str) -> int:
    node = next(n for n in spawner.tk_inventory.snapshot()["nodes"] if n["name"] == node_name)
    return next(g["free"] for g in node["gpus"] if g["resource"] == resource)


async def wait_until(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "not true in time"
        await asyncio.sleep(0.05)


async def start_all(spawners, options) -> list:
    # Synced first: this is about a hub that has been up a while, not its first seconds.
    assert await spawners[0].tk_inventory.wait_synced(10)
    for spawner in spawners:
        spawner.user_options = options
    return await asyncio.wait_for(
        asyncio.gather(*(s.start() for s in spawners), return_exceptions=True), 60
    )


@pytest.mark.parametrize("node", [None, "gpu-1"])
async def test_concurrent_spawns_for_the_last_gpu_admit_exactly_one(make_spawner, sim, node):
    # gpu-1 has one of its two A100s free; three users ask for it at the same moment.
    spawners = [make_spawner(name=n, unschedulable_timeout=3) for n in ("ann", "ben", "cy")]
    options = {"profile": "gpu-1", "image": "tk-jupyter-ml-gpu", "node": node}
    results = await start_all(spawners, options)

    admitted = [r for r in results if isinstance(r, str)]
    refused = [r for r in results if isinstance(r, InvalidOptions)]
    assert (len(admitted), len(refused)) == (1, 2), results
    assert all(r.status_code == 400 for r in refused)
    reason = "only 0 of 2 nvidia.com/gpu free" if node else "1 not enough nvidia.com/gpu"
    assert all(reason in str(r) for r in refused), refused
    assert len(sim.created_pods) == 1  # the refused ones created nothing
    # Once the pod shows up in the watch the held room turns into the pod's own request.
    inventory = spawners[0].tk_inventory
    await wait_until(lambda: inventory.reservations() == {})
    assert gpu_free(spawners[0], "gpu-1", GPU) == 0


async def test_concurrent_spawns_for_the_last_mig_slice_admit_exactly_one(make_spawner, sim):
    labels = gfd_labels("NVIDIA-A100-40GB", 40960, 1, mig={"3g.20gb": (1, 20096)})
    sim.add_node(
        make_node(
            "mig-3g",
            cpu="16",
            memory="64Gi",
            extended={"nvidia.com/gpu": 0, MIG_3G: 1},
            labels=labels,
            taints=[GPU_TAINT],
        )
    )
    spawners = [make_spawner(name=n, unschedulable_timeout=3) for n in ("ann", "ben")]
    options = {
        "profile": "custom",
        "image": "tk-jupyter-ml-gpu",
        "node": "mig-3g",
        "cpu": 2,
        "memory": "4Gi",
        "gpu": {"resource": MIG_3G, "count": 1},
    }
    results = await start_all(spawners, options)
    assert sorted(type(r).__name__ for r in results) == ["InvalidOptions", "str"], results
    refused = next(r for r in results if isinstance(r, InvalidOptions))
    assert f"only 0 of 1 {MIG_3G} free" in str(refused)
    assert len(sim.created_pods) == 1


async def test_a_failed_spawn_gives_the_room_back(make_spawner, sim):
    sim.create_failure = (
        403,
        "Forbidden",
        'pods "jupyter-ann" is forbidden: exceeded quota: gpus, requested: '
        "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=4, limited: "
        "requests.nvidia.com/gpu=4",
    )
    spawner = make_spawner(name="ann")
    spawner.user_options = {"profile": "gpu-1", "image": "tk-jupyter-ml-gpu", "node": "gpu-1"}
    with pytest.raises(ClusterRefused) as info:
        await asyncio.wait_for(spawner.start(), 60)
    # The reason, as the API server's Status says it; not the raw ApiException with headers.
    assert str(info.value) == ("The cluster refused to start your server: " + sim.create_failure[2])
    assert info.value.jupyterhub_message == str(info.value)
    assert "HTTP response headers" not in str(info.value)
    assert spawner.tk_inventory.reservations() == {}
    assert gpu_free(spawner, "gpu-1", GPU) == 1

    sim.create_failure = None
    other = make_spawner(name="ben")
    other.user_options = spawner.user_options
    assert isinstance(await asyncio.wait_for(other.start(), 60), str)


# -- preset overrides from the policy file -------------------------------------------------------

SHM_PRESET = {
    "slug": "torch",
    "display_name": "PyTorch with a big /dev/shm",
    "cpu": 2,
    "memory": "8Gi",
    "kubespawner_override": {
        "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}}],
        "volume_mounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
        "environment": {"OMP_NUM_THREADS": "2"},
        "image_pull_policy": "Always",
        "cpu_guarantee": 0.5,  # requests less than the limit; only this preset
    },
}


async def test_a_preset_override_reaches_the_pod_and_does_not_leak(make_spawner, sim):
    spawner = make_spawner(
        name="ann", presets=[SHM_PRESET], environment={"SITE": "lab"}, volumes=[]
    )
    spawner.user_options = {"profile": "torch", "image": "tk-jupyter-scipy"}
    await asyncio.wait_for(spawner.start(), 60)
    [pod] = sim.created_pods
    assert {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in pod["spec"][
        "volumes"
    ]
    container = notebook(pod)
    assert {"name": "dshm", "mountPath": "/dev/shm"} in [
        {k: m[k] for k in ("name", "mountPath")} for m in container["volumeMounts"]
    ]
    assert container["imagePullPolicy"] == "Always"
    assert amounts(container["resources"]["requests"])["cpu"] == 0.5
    environment = {e["name"]: e.get("value") for e in container["env"]}
    assert (environment["OMP_NUM_THREADS"], environment["SITE"]) == ("2", "lab")
    assert environment["JUPYTER_TK_PROFILE"] == "torch"  # the validated options still apply

    # The next spawn with another preset gets none of it.
    later = await manifest(spawner, {"profile": "cpu-basic", "image": "tk-jupyter-scipy"})
    assert "dshm" not in [v["name"] for v in later["spec"].get("volumes") or ()]
    assert "OMP_NUM_THREADS" not in env(later) and env(later)["SITE"] == "lab"
    assert notebook(later).get("imagePullPolicy") != "Always"
    custom = await manifest(spawner, {"profile": "custom", "cpu": 3, "memory": "6Gi"})
    assert amounts(notebook(custom)["resources"]["requests"])["cpu"] == 3


async def test_a_user_cannot_send_overrides(make_spawner, sim):
    spawner = make_spawner(name="ann", presets=[SHM_PRESET])
    for sent in ("spawner_overrides", "kubespawner_override"):
        spawner.user_options = {"profile": "cpu-basic", sent: {"privileged": True}}
        with pytest.raises(InvalidOptions, match="Unknown option") as info:
            await spawner.start()
        assert info.value.status_code == 400
    assert sim.created_pods == []


async def test_an_unknown_trait_in_a_preset_is_a_clear_error_at_spawn(make_spawner, sim):
    broken = {**SHM_PRESET, "slug": "broken", "kubespawner_override": {"volums": []}}
    spawner = make_spawner(name="ann", presets=[broken])
    spawner.user_options = {"profile": "broken", "image": "tk-jupyter-scipy"}
    with pytest.raises(InvalidOptions, match="'volums', which is not a KubeSpawner setting"):
        await spawner.start()
    assert sim.created_pods == []
    assert spawner.tk_inventory.reservations() == {}
