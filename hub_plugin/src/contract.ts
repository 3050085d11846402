/*
 * Generated from jupyter_tk/hub/contract.py by `python -m tests.support.contract`: do not edit.
 * Change the Python contract and regenerate; tests/test_contracts.py checks both agree.
 */

/** Resource name -> amount: `cpu` in cores, `memory` in bytes, extended resources as counts. */
export type Amounts = { [key: string]: number };

/** A Kubernetes node taint (the local inventory has none). */
export interface Taint {
  key: string;
  value: string | null;
  effect: string;
}

/** One GPU or MIG instance of this machine with its live use (local inventory only). */
export interface GpuDevice {
  uuid: string;
  index: number;
  /** The whole GPU a MIG instance is cut from; else null. */
  parent_uuid: string | null;
  /** Percent; null where NVML does not say (MIG). */
  utilization_gpu: number | null;
  /** Bytes. */
  memory_used: number | null;
  /** Bytes. */
  memory_total: number | null;
  /**
   * The users whose servers hold it. A name the caller may not read (read:users:name) is replaced
   * by 'another user'.
   */
  taken_by: string[];
  /** Why the device cannot be used right now; else null. */
  error: string | null;
}

/** One kind of GPU on a node: an extended resource such as `nvidia.com/gpu`. */
export interface GpuKind {
  /** The resource name a server requests, e.g. nvidia.com/gpu. */
  resource: string;
  /** Product name, e.g. NVIDIA-A100-SXM4-40GB; null if unknown. */
  product: string | null;
  /** Memory of one unit in MiB; null if unknown. */
  memory_mib: number | null;
  /** Units the node offers (allocatable). */
  count: number;
  /** Units not requested by any server. */
  free: number;
  /** True where one physical GPU is offered as several units. */
  shared: boolean;
  /** MIG profile of the unit, e.g. 1g.10gb; else null. */
  mig_profile: string | null;
  /** Kubernetes: GPUs behind the resource (GFD count label). */
  physical_count?: number | null;
  /** Local: each device with its live use. */
  devices?: GpuDevice[];
}

/** One node (on the local hub: this machine) and what it can still run. */
export interface Node {
  name: string;
  ready: boolean;
  /** Ready and not cordoned: new servers may go there. */
  schedulable: boolean;
  allocatable: Amounts;
  requested: Amounts;
  free: Amounts;
  gpus: GpuKind[];
  taints: Taint[];
  /** Kubernetes: the node is cordoned. */
  unschedulable?: boolean;
  /** Local: bytes the machine has available right now. */
  memory_available?: number | null;
  /** Local: false where memory limits are not enforced (no cgroup v2). */
  memory_enforced?: boolean;
  /** Local: why memory is advisory; else null. */
  memory_note?: string | null;
  /** Local: how CPU is handed out. */
  cpu_mode?: 'shared' | 'exclusive';
  /** Local: CPU limits are applied (cgroup v2). */
  cpu_enforced?: boolean;
  /** Local: what CPU means here, in words. */
  cpu_note?: string | null;
  /** Local: why no GPU can be read; else null. */
  gpu_note?: string | null;
  /** Local: the NVIDIA driver version. */
  driver_version?: string | null;
}

/** One GPU (or MIG instance) as dcgm-exporter reports it through Prometheus. */
export interface LiveGpu {
  uuid: string;
  /** The GPU's index on its node (the parent's for MIG). */
  index: number | null;
  model: string | null;
  /** A MIG instance's profile, e.g. 1g.10gb; else null. */
  mig_profile: string | null;
  /** Percent; null where not reported (MIG). */
  utilization_gpu: number | null;
  /** Bytes. */
  memory_used: number | null;
  /** Bytes. */
  memory_total: number | null;
  /** The pod holding the GPU; null when none does. */
  pod: string | null;
  namespace: string | null;
  /** A pod holds it and it is (nearly) unused. */
  idle_allocated: boolean;
  /** What the form shows for this GPU. */
  text: string;
}

/** A node's GPUs with live figures, and the texts the form shows for them. */
export interface LiveNodeGpus {
  /** For the node list, e.g. 'GPUs 37% busy · 1 idle though allocated'. */
  summary: string;
  /** Every GPU of the node, one after the other. */
  text: string;
  /** How many GPUs are held by pods and unused. */
  idle_allocated: number;
  gpus: LiveGpu[];
}

/** Live GPU figures from Prometheus (docs/gpu-metrics.md); present when configured. */
export interface GpuMetricsBlock {
  source: 'prometheus';
  /** False until Prometheus first answered. */
  available: boolean;
  /** The figures are older than GpuMetrics.stale_after_seconds. */
  stale: boolean;
  /** Seconds since the epoch of the last answer. */
  as_of: number | null;
  /** Why the figures are unavailable or out of date; else null. */
  message: string | null;
  nodes: { [key: string]: LiveNodeGpus };
}

/** `GET /hub/api/tk/resources`: what every node can run right now. */
export interface ResourcesSnapshot {
  source: 'kubernetes' | 'local';
  /** Seconds since the epoch when this answer was made. */
  generated_at: number;
  /** Seconds since the data was last known current. */
  age_seconds: number;
  /** True once the source has been unreachable for too long. */
  stale: boolean;
  /** Seconds since the epoch when the data was last known current. */
  as_of: number;
  gpu_metrics?: GpuMetricsBlock;
  nodes: Node[];
}

/** The GPUs a server asks for. */
export interface UserOptionsGpu {
  /** A GPU kind's resource, e.g. nvidia.com/gpu. */
  resource: string;
  /** How many (default 1); the form sends a string. */
  count?: number | string;
}

/** `user_options` of a spawn (form, deep link or REST body); every key is optional. */
export interface UserOptions {
  /** A preset's slug, or 'custom' for a free choice. */
  profile?: string;
  /** A catalog name, or a full image reference where allowed. */
  image?: string;
  /** The node to run on; null or absent: any node. */
  node?: string | null;
  /** Cores: 2, 0.5, '500m'. */
  cpu?: number | string;
  /** Bytes, or a quantity such as '8Gi'. */
  memory?: number | string;
  /** null: no GPU. */
  gpu?: UserOptionsGpu | null;
}
