/**
 * What the form says about nodes beyond their free amounts: advisory memory and live GPU use,
 * from additive snapshot fields only some inventories fill in (the local one). Nodes without
 * them (Kubernetes) add nothing; there `devices` is a number, the GPUs behind the resource.
 * Mirrors `jupyter_tk/hub/node_notes.py`; `tests/vectors/form_rules.json` checks both.
 */
import type { GpuMetricsBlock } from './contract.ts';
import type { GpuDevice, GpuInfo, NodeInfo } from './types.ts';
import { formatBytes } from './units.ts';

const DEFAULT_MEMORY_NOTE = 'Memory limits are advisory on this node: a server may use more.';

/** True when the node says it does not enforce memory limits (absent means it does). */
export function memoryAdvisory(node: NodeInfo): boolean {
  return node.memory_enforced === false;
}

function unique(texts: string[]): string[] {
  return [...new Set(texts)];
}

/** The distinct notes of `nodes` that do not enforce memory limits, in node order; with
 *  several different ones each is prefixed by its node's name. */
export function memoryNotes(nodes: NodeInfo[]): string[] {
  const noted = nodes
    .filter(memoryAdvisory)
    .map(node => [node.name, node.memory_note || DEFAULT_MEMORY_NOTE] as const);
  const texts = unique(noted.map(([, note]) => note));
  return texts.length <= 1 ? texts : unique(noted.map(([name, note]) => `${name}: ${note}`));
}

/** The distinct `gpu_note` of `nodes` (why a node shows no GPUs, e.g. "NVML is not available
 *  on this machine: ..."), in node order; with several, each prefixed by its node's name. */
export function gpuNotes(nodes: NodeInfo[]): string[] {
  return distinctNotes(nodes, node => node.gpu_note);
}

/** The distinct `cpu_note` of `nodes` (what free CPU means on the local machine: shared or
 *  reserved), in node order; with several, each prefixed by its node's name. */
export function cpuNotes(nodes: NodeInfo[]): string[] {
  return distinctNotes(nodes, node => node.cpu_note);
}

function distinctNotes(
  nodes: NodeInfo[],
  noteOf: (node: NodeInfo) => string | null | undefined
): string[] {
  const noted = nodes
    .filter(node => noteOf(node))
    .map(node => [node.name, String(noteOf(node))] as const);
  const texts = unique(noted.map(([, note]) => note));
  return texts.length <= 1 ? texts : unique(noted.map(([name, note]) => `${name}: ${note}`));
}

function deviceText(device: GpuDevice, name: string): string {
  if (device.error) {
    return `${name}: unavailable (${device.error})`;
  }
  const holders = device.taken_by || [];
  const parts = [holders.length ? `in use by ${holders.join(', ')}` : 'free'];
  if (device.utilization_gpu !== null && device.utilization_gpu !== undefined) {
    parts.push(`${device.utilization_gpu}% busy`);
  }
  if (device.memory_used !== null && device.memory_used !== undefined && device.memory_total) {
    parts.push(`${formatBytes(device.memory_used)} of ${formatBytes(device.memory_total)} used`);
  }
  return `${name}: ${parts.join(', ')}`;
}

/** "GPU 0", "GPU 1"; MIG instances (which share their parent's index) "GPU 2 slice 1". */
function deviceNames(devices: GpuDevice[]): string[] {
  const slices = new Map<string, number>();
  return devices.map(device => {
    let name = `GPU ${device.index ?? '?'}`;
    if (device.parent_uuid) {
      const slice = (slices.get(device.parent_uuid) ?? 0) + 1;
      slices.set(device.parent_uuid, slice);
      name += ` slice ${slice}`;
    }
    return name;
  });
}

export interface GpuUseLine {
  resource: string;
  text: string;
}

/** Per node and GPU kind with live per-device use: "nvidia.com/gpu — GPU 0: free, 3% busy,
 *  1 GiB of 80 GiB used; GPU 1: in use by alice, …" (the node's name first when several). */
export function gpuUseLines(nodes: NodeInfo[]): GpuUseLine[] {
  const withDevices = nodes.flatMap(node =>
    (node.gpus || [])
      // Only a list is per-device use; the Kubernetes inventory's `devices` is a count.
      .filter(gpu => Array.isArray(gpu.devices) && gpu.devices.length)
      .map(gpu => ({ node, gpu: gpu as GpuInfo & { devices: GpuDevice[] } }))
  );
  const severalNodes = new Set(withDevices.map(({ node }) => node)).size > 1;
  return withDevices.map(({ node, gpu }) => {
    const devices = gpu.devices;
    const names = deviceNames(devices);
    const described = devices.map((device, i) => deviceText(device, names[i]));
    const where = severalNodes ? `${node.name} · ` : '';
    return { resource: gpu.resource, text: `${where}${gpu.resource} — ${described.join('; ')}` };
  });
}

/** A node's list label with its live GPU summary from Prometheus, when there is one. */
export function liveNodeLabel(
  label: string,
  name: string,
  gpuMetrics: GpuMetricsBlock | null | undefined
): string {
  const live = gpuMetrics?.nodes?.[name];
  return live ? `${label} · ${live.summary}` : label;
}

/** Live per-GPU use of the chosen node (the server words it), and why the figures are
 *  missing or old; nothing without a Prometheus source. */
export function liveGpuLines(
  selected: string | null,
  gpuMetrics: GpuMetricsBlock | null | undefined
): GpuUseLine[] {
  if (!gpuMetrics) {
    return [];
  }
  const lines: GpuUseLine[] = [];
  if (gpuMetrics.message) {
    lines.push({ resource: 'live', text: gpuMetrics.message });
  }
  const live = selected ? gpuMetrics.nodes?.[selected] : undefined;
  if (live) {
    lines.push({ resource: 'live', text: `${selected} GPUs right now — ${live.text}` });
  }
  return lines;
}
