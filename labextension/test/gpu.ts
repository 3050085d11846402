import type { IGpuDevice } from '../src/api';

const GiB = 1024 ** 3;

/** A device as the server sends it, with realistic defaults. */
export function device(overrides: Partial<IGpuDevice> = {}): IGpuDevice {
  return {
    index: 0,
    uuid: 'GPU-00000000-0000-0000-0000-000000000000',
    name: 'NVIDIA A100-SXM4-80GB',
    mig: false,
    parent_uuid: null,
    utilization_gpu: 10,
    utilization_memory: 5,
    memory_used: 20 * GiB,
    memory_total: 80 * GiB,
    temperature: 40,
    power_usage: 100,
    power_limit: 400,
    processes: [],
    attribution: 'pid',
    kernels: [],
    error: null,
    ...overrides
  };
}

/** A MIG instance of `parent`: no utilization, no power, like NVML reports it. */
export function migInstance(
  parent: string,
  index: number,
  usedGiB: number
): IGpuDevice {
  return device({
    index,
    uuid: `MIG-${index}0000000-0000-0000-0000-000000000000`,
    name: 'NVIDIA A100-SXM4-40GB MIG 1g.5gb',
    mig: true,
    parent_uuid: parent,
    utilization_gpu: null,
    utilization_memory: null,
    memory_used: usedGiB * GiB,
    memory_total: 4.75 * GiB,
    power_usage: null,
    power_limit: null
  });
}
