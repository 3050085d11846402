"""The simulated Kubernetes API itself, through the real kubernetes_asyncio client.

The inventory tests and the KubeSpawner tests trust it, so its scheduler, selectors, watch
semantics and errors are checked here against what a real API server does.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from tests.fakes.clusters import make_pod

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@pytest.fixture
async def core(api, tmp_path):
    configuration = client.Configuration()
    await config.load_kube_config(
        config_file=str(api.write_kubeconfig(tmp_path / "kc")),
        client_configuration=configuration,
    )
    async with client.ApiClient(configuration) as api_client:
        yield client.CoreV1Api(api_client)


def notebook_pod(name, requests=None, limits=None, **spec):
    pod = make_pod(name, "jhub", requests=requests, limits=limits)
    pod["metadata"]["labels"] = {"component": "singleuser-server"}
    pod["spec"].update(spec)
    return pod


async def create(core, pod):
    return await core.create_namespaced_pod("jhub", pod, _preload_content=False)


async def test_created_pod_is_scheduled_and_running(api, core):
    response = await create(core, notebook_pod("jupyter-alice", {"cpu": "1", "memory": "1Gi"}))
    assert response.status == 201
    pod = (await core.read_namespaced_pod("jupyter-alice", "jhub")).to_dict()
    assert pod["spec"]["node_name"] == "cpu-1"  # the first node (by name) that fits
    assert pod["status"]["phase"] == "Running"
    assert pod["status"]["pod_ip"] == "127.0.0.1"
    assert all(status["ready"] for status in pod["status"]["container_statuses"])
    assert [p["metadata"]["name"] for p in api.created_pods] == ["jupyter-alice"]


async def test_no_room_stays_pending_with_the_schedulers_reason(api, core):
    pod = notebook_pod("greedy", limits={"nvidia.com/gpu": "2"}, tolerations=[GPU_TOLERATION])
    await create(core, pod)
    stored = api.store.get("pods", "jhub/greedy")
    assert stored["status"]["phase"] == "Pending"
    assert "nodeName" not in stored["spec"]
    [condition] = stored["status"]["conditions"]
    message = (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient nvidia.com/gpu."
    )
    assert (condition["type"], condition["status"]) == ("PodScheduled", "False")
    assert (condition["reason"], condition["message"]) == ("Unschedulable", message)
    events = (await core.list_namespaced_event("jhub")).items
    failed = [e for e in events if e.reason == "FailedScheduling"]
    assert [e.message for e in failed] == [message]
    assert failed[0].involved_object.name == "greedy"
    assert failed[0].type == "Warning"


async def test_pending_pod_is_scheduled_once_room_appears(api, core):
    pod = notebook_pod("waiting", limits={"nvidia.com/gpu": "2"}, tolerations=[GPU_TOLERATION])
    await create(core, pod)
    assert api.store.get("pods", "jhub/waiting")["status"]["phase"] == "Pending"
    await core.delete_namespaced_pod("train", "ml")
    scheduled = api.store.get("pods", "jhub/waiting")
    assert scheduled["spec"]["nodeName"] == "gpu-1"
    assert scheduled["status"]["phase"] == "Running"


@pytest.mark.parametrize(
    ("spec", "expected_node", "reason"),
    [
        ({"nodeSelector": {"kubernetes.io/hostname": "gpu-1"}}, None, "untolerated taint"),
        (
            {"nodeSelector": {"kubernetes.io/hostname": "gpu-1"}, "tolerations": [GPU_TOLERATION]},
            "gpu-1",
            None,
        ),
        (
            {
                "tolerations": [GPU_TOLERATION],
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchFields": [
                                        {
                                            "key": "metadata.name",
                                            "operator": "In",
                                            "values": ["gpu-1"],
                                        }
                                    ]
                                }
                            ]
                        }
                    }
                },
            },
            "gpu-1",
            None,
        ),
        (
            {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [
                                {
                                    "matchExpressions": [
                                        {
                                            "key": "kubernetes.io/hostname",
                                            "operator": "In",
                                            "values": ["cpu-2"],
                                        }
                                    ]
                                }
                            ]
                        }
                    }
                }
            },
            None,
            "1 node(s) were unschedulable",
        ),
        (
            {"nodeSelector": {"kubernetes.io/hostname": "absent"}},
            None,
            "node(s) didn't match Pod's node affinity/selector",
        ),
    ],
)
async def test_node_pinning_by_selector_and_affinity(api, core, spec, expected_node, reason):
    await create(core, notebook_pod("pinned", {"cpu": "1"}, **spec))
    stored = api.store.get("pods", "jhub/pinned")
    assert stored["spec"].get("nodeName") == expected_node
    if reason:
        assert reason in stored["status"]["conditions"][0]["message"]


async def test_invalid_quantity_is_refused_and_nothing_stored(api, core):
    with pytest.raises(ApiException) as raised:
        await core.create_namespaced_pod("jhub", notebook_pod("bad", {"cpu": "lots"}))
    assert raised.value.status == 422
    assert api.created_pods == []


async def test_duplicate_create_conflicts_and_missing_is_not_found(core):
    await create(core, notebook_pod("twice", {"cpu": "100m"}))
    with pytest.raises(ApiException) as raised:
        await core.create_namespaced_pod("jhub", notebook_pod("twice", {"cpu": "100m"}))
    assert raised.value.status == 409
    with pytest.raises(ApiException) as raised:
        await core.read_namespaced_pod("nobody", "jhub")
    assert raised.value.status == 404


async def test_generic_store_for_secrets_services_and_pvcs(core):
    await core.create_namespaced_secret("jhub", {"metadata": {"name": "s"}, "data": {"k": "dg=="}})
    await core.create_namespaced_service(
        "jhub", {"metadata": {"name": "svc"}, "spec": {"ports": [{"port": 8888}]}}
    )
    await core.create_namespaced_persistent_volume_claim(
        "jhub",
        {
            "metadata": {"name": "claim-alice"},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": "1Gi"}},
            },
        },
    )
    assert (await core.read_namespaced_secret("s", "jhub")).data == {"k": "dg=="}
    pvc = await core.read_namespaced_persistent_volume_claim("claim-alice", "jhub")
    assert pvc.spec.resources.requests == {"storage": "1Gi"}
    await core.delete_namespaced_service("svc", "jhub")
    assert (await core.list_namespaced_service("jhub")).items == []


async def test_label_and_field_selectors(api, core):
    await create(core, notebook_pod("jupyter-bob", {"cpu": "100m"}))
    mine = await core.list_namespaced_pod("jhub", label_selector="component=singleuser-server")
    assert [p.metadata.name for p in mine.items] == ["jupyter-bob"]
    others = await core.list_pod_for_all_namespaces(label_selector="component!=singleuser-server")
    assert "jupyter-bob" not in [p.metadata.name for p in others.items]
    on_gpu = await core.list_pod_for_all_namespaces(field_selector="spec.nodeName=gpu-1")
    assert [p.metadata.name for p in on_gpu.items] == ["train"]
    active = await core.list_pod_for_all_namespaces(
        field_selector="status.phase!=Succeeded,status.phase!=Failed"
    )
    assert "done" not in [p.metadata.name for p in active.items]


async def _watch_lines(core, **kwargs):
    response = await core.list_pod_for_all_namespaces(
        watch=True, timeout_seconds=1, _preload_content=False, **kwargs
    )
    lines = [json.loads(line) for line in (await response.read()).splitlines() if line]
    response.release()
    return lines


async def test_watch_resumes_from_a_resource_version(api, core):
    listed = await core.list_pod_for_all_namespaces()
    version = listed.metadata.resource_version
    api.add_pod(make_pod("late", "apps", node="cpu-1", requests={"cpu": "1"}))
    api.delete_pod("apps", "web")
    events = await _watch_lines(core, resource_version=version)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "late"),
        ("DELETED", "web"),
    ]


async def test_pod_leaving_a_field_selector_is_a_deleted_event(api, core):
    listed = await core.list_pod_for_all_namespaces()
    api.set_pod_phase("apps", "db", "Failed")
    events = await _watch_lines(
        core,
        resource_version=listed.metadata.resource_version,
        field_selector="status.phase!=Succeeded,status.phase!=Failed",
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("DELETED", "db")]


async def test_too_old_resource_version_is_410(api, core):
    listed = await core.list_pod_for_all_namespaces()
    api.force_gone()
    events = await _watch_lines(core, resource_version=listed.metadata.resource_version)
    assert events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    relisted = await core.list_pod_for_all_namespaces()
    assert await _watch_lines(core, resource_version=relisted.metadata.resource_version) == []


async def test_watches_answering_410_forever_as_a_status_or_an_event(api, core):
    listed = await core.list_pod_for_all_namespaces()
    version = listed.metadata.resource_version
    api.watch_gone = "status"
    with pytest.raises(ApiException) as info:
        await core.list_pod_for_all_namespaces(watch=True, resource_version=version)
    assert info.value.status == 410
    assert json.loads(info.value.body)["reason"] == "Expired"
    api.watch_gone = "event"
    events = await _watch_lines(core, resource_version=version)
    assert [(e["type"], e["object"]["code"]) for e in events] == [("ERROR", 410)]
    # Lists keep working: only watches are broken.
    assert len((await core.list_node()).items) == 3


async def test_a_hung_api_answers_nothing_until_resumed(api, core):
    api.hang()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(core.list_node(), 0.5)
    pending = asyncio.ensure_future(core.list_node())
    await asyncio.sleep(0.2)
    assert not pending.done()
    api.resume()
    assert len((await asyncio.wait_for(pending, 5)).items) == 3


async def test_pod_creation_can_be_refused_with_a_status(api, core):
    api.create_failure = (403, "Forbidden", 'pods "x" is forbidden: exceeded quota: gpus')
    with pytest.raises(ApiException) as info:
        await core.create_namespaced_pod("jhub", notebook_pod("x", {"cpu": "1"}))
    assert info.value.status == 403
    status = json.loads(info.value.body)
    assert (status["kind"], status["reason"]) == ("Status", "Forbidden")
    assert status["message"] == 'pods "x" is forbidden: exceeded quota: gpus'
    assert api.created_pods == []


async def test_paged_list_is_complete(api, core):
    names, token = [], None
    while True:
        page = await core.list_pod_for_all_namespaces(limit=2, _continue=token)
        names += [p.metadata.name for p in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert sorted(names) == sorted(p["metadata"]["name"] for p in api.pods())


def test_runs_as_a_process_and_writes_a_kubeconfig(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    process = subprocess.Popen(
        [
            sys.executable,
            *("-m", "tests.fakes.kubernetes", "--cluster", "gpu-lab"),
            *("--kubeconfig", str(kubeconfig)),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        assert line.startswith("READY http://127.0.0.1:")
        assert line.split()[1] in kubeconfig.read_text()

        async def count_nodes():
            configuration = client.Configuration()
            await config.load_kube_config(str(kubeconfig), client_configuration=configuration)
            async with client.ApiClient(configuration) as api_client:
                return len((await client.CoreV1Api(api_client).list_node()).items)

        assert asyncio.run(count_nodes()) == 10
    finally:
        process.terminate()
        process.wait(10)
        process.stdout.close()
