"""Generated clusters (Node and Pod API objects as dicts) for the simulated Kubernetes API.

- `make_node(name, cpu=, memory=, extended={"nvidia.com/gpu": 2}, labels=, taints=,
  ready=, unschedulable=)`: a Node; NotReady / cordoned nodes get the taints the node
  controller adds (`node.kubernetes.io/not-ready`, `node.kubernetes.io/unschedulable`).
- `gfd_labels(product, memory_mib, count, replicas=, strategy=, mig={profile: (count, MiB)})`:
  NVIDIA GPU Feature Discovery labels.
- `make_pod(name, namespace=, node=, requests=, limits=, phase=, init_containers=, overhead=)`
- `make_cluster("small" | "gpu-lab" | "large", nodes=1000, pods=30000, seed=0) -> Cluster`:
  `small` is the hand-computed cluster of the tests; `gpu-lab` has MIG, time-slicing,
  renamed shared GPUs, AMD/Intel GPUs and cordoned / NotReady / tainted nodes; `large` is
  for benchmarks (realistically sized pods, built fast by sharing unchanging parts).

Objects handed to the simulated API are never mutated there, so sharing parts is safe.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

__all__ = ["Cluster", "gfd_labels", "make_cluster", "make_node", "make_pod"]


@dataclass
class Cluster:
    nodes: list[dict] = field(default_factory=list)
    pods: list[dict] = field(default_factory=list)


NODE_INFO = {
    "architecture": "amd64",
    "bootID": "00000000-0000-0000-0000-000000000000",
    "containerRuntimeVersion": "containerd://1.7.0",
    "kernelVersion": "6.1.0",
    "kubeProxyVersion": "v1.31.0",
    "kubeletVersion": "v1.31.0",
    "machineID": "0" * 32,
    "operatingSystem": "linux",
    "osImage": "Debian GNU/Linux 12 (bookworm)",
    "systemUUID": "00000000-0000-0000-0000-000000000000",
}


def make_node(
    name: str,
    *,
    cpu: str = "16",
    memory: str = "64Gi",
    pods: int = 110,
    extended: dict[str, int] | None = None,
    labels: dict[str, str] | None = None,
    taints: list[dict] | None = None,
    ready: bool = True,
    unschedulable: bool = False,
) -> dict:
    allocatable = {
        "cpu": cpu,
        "memory": memory,
        "pods": str(pods),
        "ephemeral-storage": "100Gi",
        "hugepages-2Mi": "0",
    }
    allocatable.update({k: str(v) for k, v in (extended or {}).items()})
    taints = list(taints or [])
    if not ready:
        taints.append({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"})
    if unschedulable:
        taints.append({"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"})
    spec: dict = {"podCIDR": "10.244.0.0/24"}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                **(labels or {}),
            },
        },
        "spec": spec,
        "status": {
            "capacity": dict(allocatable),
            "allocatable": allocatable,
            "conditions": [
                {
                    "type": "MemoryPressure",
                    "status": "False",
                    "reason": "KubeletHasSufficientMemory",
                },
                {"type": "DiskPressure", "status": "False", "reason": "KubeletHasNoDiskPressure"},
                {
                    "type": "Ready",
                    "status": "True" if ready else "Unknown",
                    "reason": "KubeletReady" if ready else "NodeStatusUnknown",
                },
            ],
            "nodeInfo": NODE_INFO,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        },
    }


def gfd_labels(
    product: str,
    memory_mib: int,
    count: int,
    *,
    replicas: int | None = None,
    strategy: str | None = None,
    mig: dict[str, tuple[int, int]] | None = None,
) -> dict[str, str]:
    """Labels GPU Feature Discovery puts on a node (MIG profiles in the mixed strategy)."""
    shared = replicas is not None and replicas > 1
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": product + ("-SHARED" if shared else ""),
        "nvidia.com/gpu.memory": str(memory_mib),
        "nvidia.com/gpu.count": str(count),
        "nvidia.com/gpu.family": "ampere",
        "nvidia.com/cuda.driver.major": "550",
    }
    if replicas is not None:
        labels["nvidia.com/gpu.replicas"] = str(replicas)
        labels["nvidia.com/gpu.sharing-strategy"] = strategy or "time-slicing"
    if mig:
        labels["nvidia.com/mig.strategy"] = "mixed"
        for profile, (slices, slice_mib) in mig.items():
            labels[f"nvidia.com/mig-{profile}.count"] = str(slices)
            labels[f"nvidia.com/mig-{profile}.memory"] = str(slice_mib)
            labels[f"nvidia.com/mig-{profile}.product"] = f"{product}-MIG-{profile}"
    return labels


def _container(name: str, requests: dict | None, limits: dict | None) -> dict:
    resources = {}
    if requests:
        resources["requests"] = dict(requests)
    if limits:
        resources["limits"] = dict(limits)
    return {"name": name, "image": f"registry.example/{name}:1", "resources": resources}


def make_pod(
    name: str,
    namespace: str = "default",
    *,
    node: str | None = None,
    requests: dict | None = None,
    limits: dict | None = None,
    phase: str = "Running",
    containers: list[dict] | None = None,
    init_containers: list[dict] | None = None,
    overhead: dict | None = None,
    labels: dict | None = None,
) -> dict:
    """A Pod; `requests`/`limits` make one container unless `containers` is given."""
    spec: dict = {"containers": containers or [_container("main", requests, limits)]}
    if init_containers:
        spec["initContainers"] = init_containers
    if overhead:
        spec["overhead"] = overhead
    if node:
        spec["nodeName"] = node
    status: dict = {"phase": phase if node else "Pending"}
    if node and phase == "Running":
        status["podIP"] = "127.0.0.1"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": dict(labels or {})},
        "spec": spec,
        "status": status,
    }


def container(name: str, requests=None, limits=None, restart_policy: str | None = None) -> dict:
    """A container dict for `make_pod(containers=...)` / `init_containers=...`."""
    made = _container(name, requests, limits)
    if restart_policy:
        made["restartPolicy"] = restart_policy
    return made


# -- named clusters ------------------------------------------------------------------------------

GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def small_cluster() -> Cluster:
    """Three nodes whose figures the tests compute by hand."""
    a100 = gfd_labels("NVIDIA-A100-SXM4-40GB", 40960, 2)
    return Cluster(
        nodes=[
            make_node("cpu-1", cpu="8", memory="32Gi"),
            make_node(
                "gpu-1",
                cpu="32",
                memory="128Gi",
                extended={"nvidia.com/gpu": 2},
                labels=a100,
                taints=[GPU_TAINT],
            ),
            make_node("cpu-2", cpu="4", memory="16Gi", unschedulable=True),
        ],
        pods=[
            make_pod("web", "apps", node="cpu-1", requests={"cpu": "500m", "memory": "1Gi"}),
            make_pod("db", "apps", node="cpu-1", requests={"cpu": "1500m", "memory": "2Gi"}),
            make_pod("done", "apps", node="cpu-1", requests={"cpu": "4"}, phase="Succeeded"),
            make_pod(
                "train",
                "ml",
                node="gpu-1",
                requests={"cpu": "4", "memory": "16Gi"},
                limits={"nvidia.com/gpu": "1"},
            ),
            make_pod(
                "migrate",
                "apps",
                node="cpu-2",
                requests={"cpu": "250m", "memory": "256Mi"},
                init_containers=[container("setup", {"cpu": "1", "memory": "128Mi"})],
            ),
        ],
    )


def gpu_lab_cluster() -> Cluster:
    """One node of every GPU flavour the inventory understands, plus broken/cordoned nodes."""
    nodes = [
        make_node(
            "a100-mig",
            cpu="64",
            memory="512Gi",
            extended={
                "nvidia.com/gpu": 0,
                "nvidia.com/mig-1g.10gb": 7,
                "nvidia.com/mig-3g.40gb": 2,
            },
            labels=gfd_labels(
                "NVIDIA-A100-80GB-PCIe", 81920, 2, mig={"1g.10gb": (7, 9728), "3g.40gb": (2, 40192)}
            ),
            taints=[GPU_TAINT],
        ),
        make_node(
            "h100",
            cpu="96",
            memory="1Ti",
            extended={"nvidia.com/gpu": 8},
            labels=gfd_labels("NVIDIA-H100-80GB-HBM3", 81559, 8),
            taints=[GPU_TAINT],
        ),
        make_node(
            "t4-shared",
            cpu="16",
            memory="64Gi",
            extended={"nvidia.com/gpu": 4},
            labels=gfd_labels("Tesla-T4", 15360, 1, replicas=4),
        ),
        make_node(
            "l4-mps",
            cpu="32",
            memory="128Gi",
            extended={"nvidia.com/gpu.shared": 8},
            labels=gfd_labels("NVIDIA-L4", 23034, 2, replicas=4, strategy="mps"),
        ),
        make_node("rocm", cpu="64", memory="256Gi", extended={"amd.com/gpu": 2}),
        make_node("arc", cpu="16", memory="64Gi", extended={"gpu.intel.com/i915": 1}),
        make_node("no-labels", cpu="16", memory="64Gi", extended={"nvidia.com/gpu": 1}),
        make_node("cordoned", cpu="16", memory="64Gi", unschedulable=True),
        make_node("not-ready", cpu="16", memory="64Gi", ready=False),
        make_node(
            "dedicated",
            cpu="16",
            memory="64Gi",
            taints=[{"key": "dedicated", "value": "ml", "effect": "NoSchedule"}],
        ),
    ]
    pods = [
        make_pod("slice", "lab", node="a100-mig", limits={"nvidia.com/mig-1g.10gb": "2"}),
        make_pod("big", "lab", node="h100", requests={"cpu": "8"}, limits={"nvidia.com/gpu": "3"}),
        make_pod("share", "lab", node="t4-shared", limits={"nvidia.com/gpu": "1"}),
        make_pod("mps", "lab", node="l4-mps", limits={"nvidia.com/gpu.shared": "5"}),
        make_pod("rocm-job", "lab", node="rocm", limits={"amd.com/gpu": "1"}),
    ]
    return Cluster(nodes=nodes, pods=pods)


def large_cluster(nodes: int = 1000, pods: int = 30000, seed: int = 0) -> Cluster:
    """`nodes` nodes (every tenth with 8 GPUs) and `pods` running pods spread over them."""
    rng = random.Random(seed)
    cluster = Cluster()
    a100 = gfd_labels("NVIDIA-A100-SXM4-80GB", 81920, 8)
    for index in range(nodes):
        gpu = index % 10 == 0
        cluster.nodes.append(
            make_node(
                f"node-{index:04d}",
                cpu="128",
                memory="1Ti",
                extended={"nvidia.com/gpu": 8} if gpu else None,
                labels=a100 if gpu else None,
                taints=[GPU_TAINT] if gpu else None,
            )
        )
    # Real pods carry far more than their requests; these parts are shared between pods.
    shared_env = [{"name": f"VAR_{i}", "value": "x" * 24} for i in range(6)]
    shared_mounts = [
        {"name": "kube-api-access", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"},
        {"name": "data", "mountPath": "/data"},
    ]
    shared_tolerations = [
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
        {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    ]
    shared_conditions = [
        {"type": t, "status": "True", "lastTransitionTime": "2025-01-01T00:00:00Z"}
        for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
    ]
    cpus, memories = ("100m", "250m", "500m", "1", "2"), ("128Mi", "512Mi", "1Gi", "2Gi")
    for index in range(pods):
        node_index = index % nodes
        node = f"node-{node_index:04d}"
        requests = {"cpu": rng.choice(cpus), "memory": rng.choice(memories)}
        limits = {"memory": requests["memory"]}
        if node_index % 10 == 0 and index // nodes < 5:
            limits["nvidia.com/gpu"] = "1"
        app = f"app-{index % 97}"
        cluster.pods.append(
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": f"{app}-{index:06d}",
                    "namespace": f"team-{index % 40}",
                    "uid": f"00000000-0000-0000-0000-{index:012d}",
                    "labels": {"app": app, "tier": "backend", "pod-template-hash": "5d9f8c7b6"},
                    "annotations": {"kubectl.kubernetes.io/restartedAt": "2025-01-01T00:00:00Z"},
                    "ownerReferences": [
                        {
                            "apiVersion": "apps/v1",
                            "kind": "ReplicaSet",
                            "name": f"{app}-5d9f8c7b6",
                            "uid": f"11111111-0000-0000-0000-{index % 97:012d}",
                        }
                    ],
                },
                "spec": {
                    "nodeName": node,
                    "containers": [
                        {
                            "name": "main",
                            "image": f"registry.example/{app}:1.0",
                            "args": ["--port=8080", "--log-level=info"],
                            "env": shared_env,
                            "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                            "resources": {"requests": requests, "limits": limits},
                            "volumeMounts": shared_mounts,
                        }
                    ],
                    "serviceAccountName": "default",
                    "tolerations": shared_tolerations,
                },
                "status": {
                    "phase": "Running",
                    "podIP": f"10.{node_index // 250}.{node_index % 250}.{index % 250}",
                    "hostIP": "127.0.0.1",
                    "conditions": shared_conditions,
                    "containerStatuses": [
                        {
                            "name": "main",
                            "image": f"registry.example/{app}:1.0",
                            "imageID": f"registry.example/{app}@sha256:{index:064d}",
                            "ready": True,
                            "restartCount": 0,
                            "started": True,
                        }
                    ],
                },
            }
        )
    return cluster


def cpu_only_cluster() -> Cluster:
    """Two CPU nodes and no GPU anywhere (a cluster without GPU nodes)."""
    return Cluster(
        nodes=[
            make_node("cpu-1", cpu="8", memory="32Gi"),
            make_node("cpu-2", cpu="4", memory="16Gi"),
        ],
        pods=[make_pod("web", "apps", node="cpu-1", requests={"cpu": "500m", "memory": "1Gi"})],
    )


_CLUSTERS = {
    "small": small_cluster,
    "gpu-lab": gpu_lab_cluster,
    "large": large_cluster,
    "cpu-only": cpu_only_cluster,
}


def make_cluster(name: str, **sizes: int) -> Cluster:
    """A named cluster: "small", "gpu-lab", "cpu-only" or "large" (which takes nodes=, pods=,
    seed=)."""
    try:
        factory = _CLUSTERS[name]
    except KeyError:
        raise ValueError(f"unknown cluster {name!r}; choose from {sorted(_CLUSTERS)}") from None
    return factory(**sizes)
