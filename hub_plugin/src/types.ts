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
