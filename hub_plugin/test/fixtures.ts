import type { FormConfig, GpuInfo, NodeInfo, Snapshot } from '../src/types.ts';

export const GiB = 1024 ** 3;

export function a100(free: number, count = 4): GpuInfo {
  return {
    resource: 'nvidia.com/gpu',
    product: 'NVIDIA-A100-SXM4-80GB',
    memory_mib: 81920,
    count,
    free,
    shared: false,
    mig_profile: null
  };
}

export function node(
  name: string,
  cpu: number,
  memoryGiB: number,
  extra: Partial<NodeInfo> = {}
): NodeInfo {
  return {
    name,
    ready: true,
    schedulable: true,
    allocatable: { cpu, memory: memoryGiB * GiB },
    requested: {},
    free: { cpu, memory: memoryGiB * GiB },
    gpus: [],
    taints: [],
    ...extra
  };
}

export const GPU_TAINT = { key: 'nvidia.com/gpu', value: null, effect: 'NoSchedule' };

export function snapshot(nodes: NodeInfo[], extra: Partial<Snapshot> = {}): Snapshot {
  return {
    source: 'kubernetes',
    generated_at: 0,
    age_seconds: 0,
    stale: false,
    as_of: 0,
    nodes,
    ...extra
  };
}

export function config(extra: Partial<FormConfig> = {}): FormConfig {
  return {
    resourcesUrl: '/hub/api/tk/resources',
    refreshSeconds: 5,
    guaranteeRatio: 1,
    tolerations: {
      cpu: [],
      gpu: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]
    },
    caps: { cpu: 16, memory: 64 * GiB, gpus: 2 },
    minimum: { cpu: 0.1, memory: 256 * 1024 ** 2 },
    defaults: { cpu: 1, memory: 2 * GiB },
    nodeGlobs: ['*'],
    customProfile: 'custom',
    presets: [
      { slug: 'cpu-basic', displayName: 'CPU basic', cpu: 2, memory: 4 * GiB, gpu: null },
      {
        slug: 'gpu-1',
        displayName: '1 GPU',
        cpu: 4,
        memory: 16 * GiB,
        gpu: { resource: 'nvidia.com/gpu', count: 1 }
      }
    ],
    images: [
      { name: 'tk-jupyter-scipy', displayName: 'SciPy', gpuRequired: false },
      { name: 'tk-jupyter-ml-gpu', displayName: 'ML GPU', gpuRequired: true }
    ],
    customImages: { allowed: true, registries: ['nvcr.io'] },
    ...extra
  };
}

/** A node as the local inventory serves it: this machine, memory limits not enforced. */
export function localNode(extra: Partial<NodeInfo> = {}): NodeInfo {
  return node('ws', 8, 32, {
    memory_enforced: false,
    memory_note: 'Memory is advisory on this machine: no cgroup v2 hierarchy.',
    ...extra
  });
}
