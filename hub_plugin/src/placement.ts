/**
 * Which nodes can take a server of a given size right now, and why the others cannot.
 * Mirrors `jupyter_tk/hub/placement.py`; the shared cases in `tests/vectors/form_rules.json`
 * check that both say the same.
 */
import { memoryAdvisory } from './notes.ts';
import type { NodeInfo, ResourceRequest, Taint, Toleration } from './types.ts';
import { formatBytes, formatCores, formatGpuKind } from './units.ts';

const BLOCKING_EFFECTS = new Set(['NoSchedule', 'NoExecute']);

export function wantsGpu(request: ResourceRequest): boolean {
  return Boolean(request.gpuResource) && request.gpuCount > 0;
}

/** CPU cores and memory bytes the pod requests for limits scaled by `ratio` (rounded up). */
export function schedulingAmounts(request: ResourceRequest, ratio: number): [number, number] {
  const cpu = Math.ceil(Number((request.cpu * ratio * 1000).toFixed(6))) / 1000;
  const memory = Math.ceil(Number((request.memory * ratio).toFixed(3)));
  return [cpu, memory];
}

/** Kubernetes' toleration matching for one taint. */
export function taintIsTolerated(taint: Taint, tolerations: Toleration[]): boolean {
  return tolerations.some(toleration => {
    const effect = toleration.effect || '';
    if (effect && effect !== taint.effect) {
      return false;
    }
    const key = toleration.key || '';
    if ((toleration.operator || 'Equal') === 'Exists') {
      return !key || key === taint.key;
    }
    return key === taint.key && (toleration.value || '') === (taint.value || '');
  });
}

function taintText(taint: Taint): string {
  const key = taint.value ? `${taint.key}=${taint.value}` : taint.key;
  return `${key}:${taint.effect}`;
}

/** null when `node` can take `request` now, else a short reason ("only 2 CPU free"). */
export function nodeUnfitReason(
  node: NodeInfo,
  request: ResourceRequest,
  ratio: number,
  tolerations: Toleration[]
): string | null {
  if (!node.ready) {
    return 'not ready';
  }
  if (node.schedulable === false) {
    return 'cordoned';
  }
  for (const taint of node.taints || []) {
    if (BLOCKING_EFFECTS.has(taint.effect) && !taintIsTolerated(taint, tolerations)) {
      return `tainted ${taintText(taint)}`;
    }
  }
  const [cpu, memory] = schedulingAmounts(request, ratio);
  const freeCpu = Number(node.free?.cpu ?? 0);
  if (cpu > freeCpu + 1e-9) {
    return `only ${formatCores(Math.max(freeCpu, 0))} CPU free`;
  }
  const freeMemory = Number(node.free?.memory ?? 0);
  if (memory > freeMemory) {
    return `only ${formatBytes(Math.max(freeMemory, 0))} memory free`;
  }
  if (wantsGpu(request)) {
    const gpu = (node.gpus || []).find(g => g.resource === request.gpuResource);
    if (!gpu) {
      return `no ${request.gpuResource}`;
    }
    if (gpu.free < request.gpuCount) {
      return `only ${gpu.free} of ${gpu.count} ${request.gpuResource} free`;
    }
  }
  return null;
}

function reasonKind(reason: string): string {
  if (reason.startsWith('only ') && reason.endsWith(' free')) {
    // "only 2 CPU free", "only 1 GiB memory free", "only 0 of 4 nvidia.com/gpu free"
    const words = reason.split(' ');
    return `not enough ${words[words.length - 2]}`;
  }
  if (reason.startsWith('tainted ')) {
    return 'with a taint not tolerated';
  }
  if (reason.startsWith('no ')) {
    return `without ${reason.slice(3)}`;
  }
  return reason;
}

/** "0/3 nodes you may use can take it: 2 cordoned, 1 not enough CPU". */
export function whyNothingFits(
  nodes: NodeInfo[],
  request: ResourceRequest,
  ratio: number,
  tolerations: Toleration[]
): string {
  if (!nodes.length) {
    return 'no node you may use is known right now';
  }
  const counts = new Map<string, number>();
  for (const node of nodes) {
    const reason = nodeUnfitReason(node, request, ratio, tolerations);
    if (reason !== null) {
      const kind = reasonKind(reason);
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
  }
  const parts = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([kind, count]) => `${count} ${kind}`)
    .join(', ');
  return `0/${nodes.length} nodes you may use can take it: ${parts}`;
}

/** The most a server could ask for on any one of `nodes` were it empty. */
export interface SizeLimits {
  /** Cores (as a limit). */
  cpu: number;
  /** Bytes (as a limit). */
  memory: number;
  /** GPUs of one kind. */
  gpus: number;
}

/**
 * The allocatable amounts of the largest of `nodes` (CPU and memory divided by `ratio`, since
 * a pod requests `ratio` of its limits; each the largest there is, not one node's shape);
 * null when there are no nodes.
 */
export function largestRequest(nodes: NodeInfo[], ratio: number): SizeLimits | null {
  if (!nodes.length) {
    return null;
  }
  let cpu = 0;
  let memory = 0;
  let gpus = 0;
  for (const node of nodes) {
    cpu = Math.max(cpu, Number(node.allocatable?.cpu ?? 0));
    memory = Math.max(memory, Number(node.allocatable?.memory ?? 0));
    for (const gpu of node.gpus || []) {
      gpus = Math.max(gpus, gpu.count);
    }
  }
  return {
    cpu: Math.floor((cpu / ratio) * 1000) / 1000,
    memory: Math.floor(memory / ratio),
    gpus
  };
}

/**
 * The most one custom server may ask for: the policy's caps, or less where no node is that
 * large (`placement.size_limits`). The one number the help text, the Custom card and a refusal
 * show.
 */
export function sizeLimits(caps: SizeLimits, nodes: NodeInfo[], ratio: number): SizeLimits {
  const largest = largestRequest(nodes, ratio);
  if (!largest) {
    return { ...caps };
  }
  return {
    cpu: Math.min(caps.cpu, largest.cpu),
    memory: Math.min(caps.memory, largest.memory),
    gpus: Math.min(caps.gpus, largest.gpus)
  };
}

/** How the form names where servers run: the hub's machine, or the nodes of a cluster. */
export function placeName(source: string): string {
  return source === 'local' ? 'this machine' : 'any node you may use';
}

/** Why `resource` can never be had on `nodes` (not merely now); null when one offers it.
 *  With `resource` null: why there are no GPUs at all, null when there are some. */
export function gpuAbsence(
  nodes: NodeInfo[],
  resource: string | null,
  source: string
): string | null {
  const offered = new Set(nodes.flatMap(node => (node.gpus || []).map(gpu => gpu.resource)));
  // No node known at all (an inventory that has not answered yet) proves nothing.
  if (!nodes.length || (resource === null ? offered.size > 0 : offered.has(resource))) {
    return null;
  }
  const local = source === 'local';
  if (!offered.size) {
    return local ? 'this machine has no GPU' : 'no node you may use offers GPUs';
  }
  return local ? `this machine has no ${resource}` : `no node you may use offers ${resource}`;
}

export interface GpuKind {
  resource: string;
  description: string;
  totalFree: number;
  maxFreeOnOneNode: number;
  nodes: number;
}

export function gpuKindLabel(kind: GpuKind): string {
  let free = `${kind.totalFree} free`;
  if (kind.nodes > 1) {
    free += `, up to ${kind.maxFreeOnOneNode} on one node`;
  }
  return `${kind.description} — ${free} (${kind.resource})`;
}

/** The GPU kinds on `nodes`, sorted by resource name. */
export function gpuKinds(nodes: NodeInfo[]): GpuKind[] {
  const kinds = new Map<string, GpuKind & { texts: string[] }>();
  for (const node of nodes) {
    for (const gpu of node.gpus || []) {
      let kind = kinds.get(gpu.resource);
      if (!kind) {
        kind = {
          resource: gpu.resource,
          description: '',
          totalFree: 0,
          maxFreeOnOneNode: 0,
          nodes: 0,
          texts: []
        };
        kinds.set(gpu.resource, kind);
      }
      const text = formatGpuKind(gpu);
      if (!kind.texts.includes(text)) {
        kind.texts.push(text);
      }
      kind.totalFree += gpu.free;
      kind.maxFreeOnOneNode = Math.max(kind.maxFreeOnOneNode, gpu.free);
      kind.nodes += 1;
    }
  }
  return [...kinds.values()]
    .sort((a, b) => (a.resource < b.resource ? -1 : a.resource > b.resource ? 1 : 0))
    .map(({ texts, ...kind }) => ({ ...kind, description: texts.join(' / ') }));
}

/** "gpu-a — 12 CPU · 40 GiB free · 2/4 NVIDIA-A100 · 80 GiB" (+ state when not usable); a
 *  node that does not enforce memory limits says "memory advisory" after its memory. */
export function nodeLabel(node: NodeInfo): string {
  const parts = [
    `${formatCores(Number(node.free?.cpu ?? 0))} CPU`,
    `${formatBytes(Number(node.free?.memory ?? 0))} free`
  ];
  if (memoryAdvisory(node)) {
    parts.push('memory advisory');
  }
  for (const gpu of node.gpus || []) {
    parts.push(`${gpu.free}/${gpu.count} ${formatGpuKind(gpu)}`);
  }
  let label = `${node.name} — ${parts.join(' · ')}`;
  if (!node.ready) {
    label += ' (NotReady)';
  } else if (node.unschedulable || node.schedulable === false) {
    label += ' (cordoned)';
  }
  return label;
}
