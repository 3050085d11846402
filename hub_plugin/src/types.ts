/**
 * Types of the spawn form. The `/hub/api/tk/resources` snapshot is generated from
 * jupyter_tk/hub/contract.py into ./contract.ts (docs/contracts.md); the form configuration is
 * rendered by `jupyter_tk/hub/form_view.py` (`_front_end_config`).
 */

export type {
  Amounts,
  GpuDevice,
  GpuKind as GpuInfo,
  Node as NodeInfo,
  ResourcesSnapshot as Snapshot,
  Taint
} from './contract';

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
  /** The size of a custom choice whose fields are left empty (cores, bytes). */
  defaults: { cpu: number; memory: number };
  nodeGlobs: string[];
  customProfile: string;
  presets: PresetConfig[];
  images: { name: string; displayName: string; gpuRequired: boolean }[];
  customImages: { allowed: boolean; registries: string[] };
  /** Why the last submission was refused (shown by Start until the choice changes); "" if not. */
  refusal?: string;
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
