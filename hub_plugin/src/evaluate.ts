/**
 * What the form should show for a choice and a snapshot: pure, so it is unit-tested without a
 * DOM. Mirrors `jupyter_tk/hub/form_view.py` (first render) and, through `validate.ts`,
 * `jupyter_tk/hub/validation.py` (the server stays the authority on submit). Both are bound to
 * the shared cases in `tests/vectors/form_rules.json`: the same inputs, the same texts.
 */
import { fnmatchcase } from './glob.ts';
import {
  cpuNotes,
  gpuNotes,
  gpuUseLines,
  liveGpuLines,
  liveNodeLabel,
  memoryNotes,
  type GpuUseLine
} from './notes.ts';
import {
  gpuAbsence,
  gpuKindLabel,
  gpuKinds,
  nodeLabel,
  nodeUnfitReason,
  placeName,
  sizeLimits,
  wantsGpu,
  type GpuKind,
  type SizeLimits
} from './placement.ts';
import type {
  Choice,
  FormConfig,
  NodeInfo,
  PresetConfig,
  ResourceRequest,
  Snapshot
} from './types.ts';
import { formatBytes, formatCores, parseQuantity } from './units.ts';
import { refusalOf } from './validate.ts';

export interface NodeRow {
  name: string;
  label: string;
  reason: string | null;
  disabled: boolean;
}

export interface GpuKindRow {
  resource: string;
  label: string;
  disabled: boolean;
}

export interface Evaluation {
  /** The request the choice stands for; null while a custom field does not parse. */
  request: ResourceRequest | null;
  nodes: NodeRow[];
  gpuKinds: GpuKindRow[];
  /** The GPU kind the choice stands for (a preset's own), for the greyed fields to agree. */
  gpuResource: string;
  /** Preset slug -> why it cannot fit right now (absent when it fits). */
  presetReasons: Record<string, string>;
  bounds: { cpu: number; memory: number; gpus: number };
  /** The help under each size field: "0.1 to 16", "e.g. 8Gi or 512Mi; 256 MiB to 64 GiB",
   *  "0 to 2" (or why there can be no GPU). */
  boundTexts: { cpu: string; memory: string; gpus: string };
  /** The most a custom size may ask for: the cap, or less where no node is that large. */
  customLimits: SizeLimits;
  /** Why memory limits may not hold where the server will run (empty on Kubernetes). */
  memoryNotes: string[];
  /** Why there are no GPUs, where the inventory knows (e.g. no NVML on this machine). */
  gpuNotes: string[];
  /** What free CPU means where the server may run (the local machine: shared or reserved). */
  cpuNotes: string[];
  /** Live use of each GPU, per kind, where the inventory knows it (empty on Kubernetes). */
  gpuUse: GpuUseLine[];
  /** Live use of the chosen node's GPUs from Prometheus, and why it is missing or old. */
  liveGpus: GpuUseLine[];
  summary: string;
  /** What the server would refuse the submission for, word for word (at most one). */
  problems: string[];
}

function usableNodes(config: FormConfig, snapshot: Snapshot): NodeInfo[] {
  return snapshot.nodes.filter(node => config.nodeGlobs.some(glob => fnmatchcase(node.name, glob)));
}

function isReady(node: NodeInfo): boolean {
  return node.ready && node.schedulable !== false;
}

function presetRequest(preset: PresetConfig): ResourceRequest {
  return {
    cpu: preset.cpu,
    memory: preset.memory,
    gpuResource: preset.gpu?.resource ?? null,
    gpuCount: preset.gpu?.count ?? 0
  };
}

/** The request of the chosen preset, or of the custom fields; null while one does not parse
 *  (`validate.ts` says why). */
function chosenRequest(config: FormConfig, choice: Choice): ResourceRequest | null {
  const preset = config.presets.find(p => p.slug === choice.profile);
  if (preset) {
    return presetRequest(preset);
  }
  const cpuText = choice.cpu.trim();
  const memoryText = choice.memory.trim();
  const cpu = cpuText ? parseQuantity(cpuText) : config.defaults.cpu;
  const memory = memoryText ? parseQuantity(memoryText) : config.defaults.memory;
  const countText = choice.gpuCount.trim();
  const count = /^[0-9]{1,6}$/.test(countText) ? Number(countText) : countText ? NaN : 0;
  if (cpu === null || memory === null || cpu <= 0 || memory <= 0 || Number.isNaN(count)) {
    return null;
  }
  const gpuResource = choice.gpuResource && count ? choice.gpuResource : null;
  return { cpu, memory, gpuResource, gpuCount: gpuResource ? count : 0 };
}

/** The Custom card's line: "Up to 16 CPU · 64 GiB · 2 GPUs" (no GPU part for 0). */
export function customLimitsText(limits: SizeLimits): string {
  let text = `Up to ${formatCores(limits.cpu)} CPU · ${formatBytes(limits.memory)}`;
  if (limits.gpus) {
    text += ` · ${limits.gpus} GPU${limits.gpus > 1 ? 's' : ''}`;
  }
  return text;
}

/** `form_view.gpu_bound_text`: "0 to 2", or why there can be none (never a bare "0 to 0"). */
export function gpuBoundText(absent: string | null, limit: number, capsGpus: number): string {
  if (capsGpus === 0) {
    return '0 (your group may not use GPUs)';
  }
  if (absent !== null) {
    return absent.charAt(0).toUpperCase() + absent.slice(1);
  }
  return `0 to ${limit}`;
}

/** `form_view.preset_reason`: its GPU exists nowhere or it is larger than any node, or no
 *  (chosen) node has room now. */
export function presetReason(
  preset: PresetConfig,
  nodes: NodeInfo[],
  chosenNode: boolean,
  source: string,
  limits: SizeLimits
): string {
  if (preset.gpu && preset.gpu.count) {
    const absent = gpuAbsence(nodes, preset.gpu.resource, source);
    if (absent) {
      return absent;
    }
  }
  if (preset.cpu > limits.cpu || preset.memory > limits.memory) {
    return `more than ${placeName(source)} can hold`;
  }
  return chosenNode ? 'does not fit the chosen node right now' : 'no node has room right now';
}

export function describeRequest(request: ResourceRequest, node: string, image: string): string {
  let text = `${formatCores(request.cpu)} CPU, ${formatBytes(request.memory)} memory`;
  text += wantsGpu(request) ? `, ${request.gpuCount} ${request.gpuResource}` : ', no GPU';
  const where = node ? `on ${node}` : 'on any node that fits';
  const what = image ? ` with ${image}` : '';
  return `Will request ${text} ${where}${what}.`;
}

function imageText(config: FormConfig, choice: Choice): string {
  if (choice.image) {
    return config.images.find(i => i.name === choice.image)?.displayName ?? choice.image;
  }
  return choice.customImage.trim();
}

export function evaluate(config: FormConfig, snapshot: Snapshot, choice: Choice): Evaluation {
  const ratio = config.guaranteeRatio;
  const source = snapshot.source;
  const tolerationsFor = (request: ResourceRequest) =>
    wantsGpu(request) ? config.tolerations.gpu : config.tolerations.cpu;
  const unfit = (node: NodeInfo, request: ResourceRequest) =>
    nodeUnfitReason(node, request, ratio, tolerationsFor(request));

  const request = chosenRequest(config, choice);
  const nodes = usableNodes(config, snapshot);
  const selected = nodes.find(node => node.name === choice.node) ?? null;
  const limits = sizeLimits(config.caps, nodes, ratio);
  const refusal = refusalOf({ config, snapshot, choice, nodes, limits });

  const nodeRows = nodes.map(node => {
    const reason = request ? unfit(node, request) : null;
    return {
      name: node.name,
      label: liveNodeLabel(nodeLabel(node), node.name, snapshot.gpu_metrics),
      reason,
      // The selected node stays enabled: a disabled option would not be submitted.
      disabled: reason !== null && node.name !== choice.node
    };
  });

  const candidates = selected ? [selected] : nodes;
  const presetReasons: Record<string, string> = {};
  for (const preset of config.presets) {
    const wanted = presetRequest(preset);
    if (!candidates.some(node => unfit(node, wanted) === null)) {
      presetReasons[preset.slug] = presetReason(preset, nodes, Boolean(selected), source, limits);
    }
  }

  const ready = candidates.filter(isReady);
  const here = new Map<string, GpuKind>(gpuKinds(ready).map(kind => [kind.resource, kind]));
  const kindRows: GpuKindRow[] = gpuKinds(nodes.filter(isReady)).map(kind => {
    const absent = Boolean(selected) && !here.has(kind.resource);
    const shown = here.get(kind.resource) ?? kind;
    return {
      resource: kind.resource,
      label: gpuKindLabel(shown) + (absent ? ` — not on ${choice.node}` : ''),
      disabled: absent && kind.resource !== choice.gpuResource
    };
  });
  // The kind the choice stands for, listed even where no node offers it, so the greyed
  // fields of a preset never read "No GPU" next to "GPUs: 1".
  const gpuResource = request && wantsGpu(request) ? request.gpuResource! : choice.gpuResource;
  const absentKind = gpuAbsence(nodes, gpuResource || null, source);
  if (gpuResource && absentKind && !kindRows.some(row => row.resource === gpuResource)) {
    kindRows.push({
      resource: gpuResource,
      label: `${gpuResource} — ${absentKind}`,
      disabled: true
    });
  }

  // The size limits, as the Custom card and a refusal say them (not what is free now).
  const bounds = {
    cpu: Math.max(limits.cpu, config.minimum.cpu),
    memory: Math.max(limits.memory, config.minimum.memory),
    gpus: limits.gpus
  };

  return {
    request,
    nodes: nodeRows,
    gpuKinds: kindRows,
    gpuResource,
    presetReasons,
    bounds,
    boundTexts: {
      cpu: `${formatCores(config.minimum.cpu)} to ${formatCores(bounds.cpu)}`,
      memory: `e.g. 8Gi or 512Mi; ${formatBytes(config.minimum.memory)} to ${formatBytes(bounds.memory)}`,
      gpus: gpuBoundText(gpuAbsence(nodes, null, source), bounds.gpus, config.caps.gpus)
    },
    customLimits: limits,
    memoryNotes: memoryNotes(candidates),
    gpuNotes: gpuNotes(nodes),
    cpuNotes: cpuNotes(candidates),
    gpuUse: gpuUseLines(ready),
    liveGpus: liveGpuLines(selected ? selected.name : null, snapshot.gpu_metrics),
    summary: request
      ? describeRequest(request, selected ? selected.name : '', imageText(config, choice))
      : 'Fix the size below to see what will be requested.',
    problems: refusal ? [refusal] : []
  };
}

/** "Free resources as of 3 s ago." / "Cluster data is out of date (…)". */
export function freshnessText(ageSeconds: number, stale: boolean, error: string | null): string {
  const age =
    ageSeconds < 1
      ? 'just now'
      : ageSeconds < 120
        ? `${Math.floor(ageSeconds)} s ago`
        : `${Math.floor(ageSeconds / 60)} min ago`;
  if (error) {
    return `Could not refresh the cluster data (${error}); showing data from ${age}.`;
  }
  if (stale) {
    return `Cluster data is out of date (last update ${age}); free amounts may have changed.`;
  }
  return `Free resources as of ${age}.`;
}
