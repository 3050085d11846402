/**
 * Shapes shared with the server: the `/hub/api/tk/resources` snapshot (ARCHITECTURE.md) and
 * the form configuration rendered by `jupyter_tk/hub/form_view.py` (`_front_end_config`).
 */

/** Resource name -> amount: cpu in cores, memory in bytes, extended resources as counts. */
export type Amounts = Record<string, number>;

export interface GpuInfo {
  resource: string;
  product: string | null;
  memory_mib: number | null;
  count: number;
  free: number;
  shared: boolean;
  mig_profile: string | null;
  /** Additive: the local inventory lists each device of this kind with its live use; the
   *  Kubernetes inventory gives the number of GPUs behind the resource (GFD label) or null. */
  devices?: GpuDevice[] | number | null;
}

export interface GpuDevice {
  uuid: string;
  index: number;
  parent_uuid?: string | null;
  /** Percent; null where NVML does not say (MIG). */
  utilization_gpu: number | null;
  /** Bytes. */
  memory_used: number | null;
  memory_total: number | null;
  /** The servers holding it (user names). */
  taken_by: string[];
  error?: string | null;
}

export interface Taint {
  key: string;
  value?: string | null;
  effect: string;
}

export interface NodeInfo {
  name: string;
  ready: boolean;
  schedulable: boolean;
  unschedulable?: boolean;
  allocatable: Amounts;
  requested: Amounts;
  free: Amounts;
  gpus: GpuInfo[];
  taints: Taint[];
  /** Additive (local inventory): false where memory limits are not enforced (no cgroup v2). */
  memory_enforced?: boolean;
  /** Why memory is advisory, in words; null where it is enforced. */
  memory_note?: string | null;
}

export interface Snapshot {
  source: string;
  generated_at: number;
  age_seconds: number;
  stale: boolean;
  nodes: NodeInfo[];
}

export interface Toleration {
  key?: string;
  operator?: string;
  value?: string;
  effect?: string;
}

export interface PresetConfig {
  slug: string;
  displayName: string;
  cpu: number;
  memory: number;
  gpu: { resource: string; count: number } | null;
}

export interface FormConfig {
  resourcesUrl: string;
  refreshSeconds: number;
  guaranteeRatio: number;
  tolerations: { cpu: Toleration[]; gpu: Toleration[] };
  caps: { cpu: number; memory: number; gpus: number };
  minimum: { cpu: number; memory: number };
  nodeGlobs: string[];
  customProfile: string;
  presets: PresetConfig[];
  images: { name: string; displayName: string; gpuRequired: boolean }[];
  customImages: { allowed: boolean; registries: string[] };
}

/** What a server asks for: limits in cores and bytes, plus GPUs. */
export interface ResourceRequest {
  cpu: number;
  memory: number;
  gpuResource: string | null;
  gpuCount: number;
}

/** The raw values of the form's fields, as the user left them. */
export interface Choice {
  profile: string;
  image: string;
  customImage: string;
  node: string;
  cpu: string;
  memory: string;
  gpuResource: string;
  gpuCount: string;
}
