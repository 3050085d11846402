/**
 * What the form should show for a choice and a snapshot: pure, so it is unit-tested without a
 * DOM. Mirrors `jupyter_tk/hub/form_view.py` (first render) and the client-visible parts of
 * `jupyter_tk/hub/validation.py` (the server stays the authority on submit).
 */
import { fnmatchcase } from './glob.ts';
import { gpuUseLines, memoryNotes, type GpuUseLine } from './notes.ts';
import {
  gpuKindLabel,
  gpuKinds,
  largestRequest,
  nodeLabel,
  nodeUnfitReason,
  wantsGpu,
  whyNothingFits,
  type GpuKind,
  type SizeLimits
} from './placement.ts';
import type { Choice, FormConfig, NodeInfo, ResourceRequest, Snapshot } from './types.ts';
import { formatBytes, formatCores, parseQuantity } from './units.ts';

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
  /** Preset slug -> why it cannot fit right now (absent when it fits). */
  presetReasons: Record<string, string>;
  bounds: { cpu: number; memory: number; gpus: number };
  /** The most a custom size may ask for: the cap, or less where no node is that large. */
  customLimits: SizeLimits;
  /** Why memory limits may not hold where the server will run (empty on Kubernetes). */
  memoryNotes: string[];
  /** Live use of each GPU, per kind, where the inventory knows it (empty on Kubernetes). */
  gpuUse: GpuUseLine[];
  summary: string;
  /** Problems the server would refuse the submission for, in the order a user fixes them. */
  problems: string[];
}

function usableNodes(config: FormConfig, snapshot: Snapshot): NodeInfo[] {
  return snapshot.nodes.filter(node => config.nodeGlobs.some(glob => fnmatchcase(node.name, glob)));
}

function isReady(node: NodeInfo): boolean {
  return node.ready && node.schedulable !== false;
}

/** The request of the chosen preset, or of the custom fields (collecting what is wrong). */
function chosenRequest(
  config: FormConfig,
  choice: Choice,
  problems: string[]
): ResourceRequest | null {
  const preset = config.presets.find(p => p.slug === choice.profile);
  if (preset) {
    return {
      cpu: preset.cpu,
      memory: preset.memory,
      gpuResource: preset.gpu?.resource ?? null,
      gpuCount: preset.gpu?.count ?? 0
    };
  }
  const { caps, minimum } = config;
  const cpu = parseQuantity(choice.cpu);
  const memory = parseQuantity(choice.memory);
  const count = /^[0-9]{1,6}$/.test(choice.gpuCount.trim()) ? Number(choice.gpuCount) : NaN;
  if (cpu === null || cpu <= 0) {
    problems.push('CPU must be a number such as 2, 0.5 or 500m.');
  } else if (cpu < minimum.cpu) {
    problems.push(`Request at least ${formatCores(minimum.cpu)} CPU.`);
  } else if (cpu > caps.cpu) {
    problems.push(`${formatCores(cpu)} CPU is over your limit of ${formatCores(caps.cpu)} CPU.`);
  }
  if (memory === null || memory <= 0 || !Number.isInteger(memory)) {
    problems.push('Memory must be a whole number of bytes such as 8Gi or 512Mi.');
  } else if (memory < minimum.memory) {
    problems.push(`Request at least ${formatBytes(minimum.memory)} of memory.`);
  } else if (memory > caps.memory) {
    problems.push(
      `${formatBytes(memory)} of memory is over your limit of ${formatBytes(caps.memory)}.`
    );
  }
  const gpuResource = choice.gpuResource || null;
  let gpuCount = 0;
  if (gpuResource) {
    if (Number.isNaN(count)) {
      problems.push('The number of GPUs must be a whole number.');
    } else if (count > caps.gpus) {
      problems.push(
        caps.gpus
          ? `${count} GPU(s) requested, but your limit is ${caps.gpus}.`
          : 'Your group may not use GPUs.'
      );
    } else {
      gpuCount = count;
    }
  }
  if (cpu === null || memory === null || problems.length) {
    return null;
  }
  return { cpu, memory, gpuResource: gpuCount ? gpuResource : null, gpuCount };
}

/** The Custom card's line: "Up to 16 CPU · 64 GiB · 2 GPUs" (no GPU part for 0). */
export function customLimitsText(limits: SizeLimits): string {
  let text = `Up to ${formatCores(limits.cpu)} CPU · ${formatBytes(limits.memory)}`;
  if (limits.gpus) {
    text += ` · ${limits.gpus} GPU${limits.gpus > 1 ? 's' : ''}`;
  }
  return text;
}

/** Only what is shown: validation still checks the caps and the free amounts. */
function customLimits(config: FormConfig, nodes: NodeInfo[]): SizeLimits {
  const largest = largestRequest(nodes, config.guaranteeRatio);
  const { caps } = config;
  return largest
    ? {
        cpu: Math.min(caps.cpu, largest.cpu),
        memory: Math.min(caps.memory, largest.memory),
        gpus: Math.min(caps.gpus, largest.gpus)
      }
    : { ...caps };
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
  const tolerationsFor = (request: ResourceRequest) =>
    wantsGpu(request) ? config.tolerations.gpu : config.tolerations.cpu;
  const unfit = (node: NodeInfo, request: ResourceRequest) =>
    nodeUnfitReason(node, request, ratio, tolerationsFor(request));

  const problems: string[] = [];
  const request = chosenRequest(config, choice, problems);
  const nodes = usableNodes(config, snapshot);
  const selected = nodes.find(node => node.name === choice.node) ?? null;
  if (choice.node && !selected) {
    problems.push(`There is no node called ${choice.node} in the cluster right now.`);
  }

  const nodeRows = nodes.map(node => {
    const reason = request ? unfit(node, request) : null;
    return {
      name: node.name,
      label: nodeLabel(node),
      reason,
      // The selected node stays enabled: a disabled option would not be submitted.
      disabled: reason !== null && node.name !== choice.node
    };
  });

  const candidates = selected ? [selected] : nodes;
  const presetReasons: Record<string, string> = {};
  for (const preset of config.presets) {
    const presetRequest: ResourceRequest = {
      cpu: preset.cpu,
      memory: preset.memory,
      gpuResource: preset.gpu?.resource ?? null,
      gpuCount: preset.gpu?.count ?? 0
    };
    if (!candidates.some(node => unfit(node, presetRequest) === null)) {
      presetReasons[preset.slug] = selected
        ? 'does not fit the chosen node right now'
        : 'no node has room right now';
    }
  }

  const ready = candidates.filter(isReady);
  const here = new Map<string, GpuKind>(gpuKinds(ready).map(kind => [kind.resource, kind]));
  const kindRows = gpuKinds(nodes.filter(isReady)).map(kind => {
    const absent = Boolean(selected) && !here.has(kind.resource);
    const shown = here.get(kind.resource) ?? kind;
    return {
      resource: kind.resource,
      label: gpuKindLabel(shown) + (absent ? ` — not on ${choice.node}` : ''),
      disabled: absent && kind.resource !== choice.gpuResource
    };
  });

  const bestCpu = Math.max(0, ...ready.map(n => Number(n.free?.cpu ?? 0)));
  const bestMemory = Math.max(0, ...ready.map(n => Number(n.free?.memory ?? 0)));
  const kind = here.get(choice.gpuResource);
  const mostGpus = kind
    ? kind.maxFreeOnOneNode
    : Math.max(0, ...[...here.values()].map(k => k.maxFreeOnOneNode));
  const bounds = {
    cpu: Math.max(
      Math.min(config.caps.cpu, Math.floor((bestCpu / ratio) * 1000) / 1000),
      config.minimum.cpu
    ),
    memory: Math.max(
      Math.min(config.caps.memory, Math.floor(bestMemory / ratio)),
      config.minimum.memory
    ),
    gpus: Math.min(config.caps.gpus, mostGpus)
  };

  const image = config.images.find(i => i.name === choice.image);
  if (!choice.image && !choice.customImage.trim()) {
    problems.push('Type the custom image to use, or pick one from the list.');
  }
  if (request && image?.gpuRequired && !wantsGpu(request)) {
    problems.push(
      `The image ${image.name} needs a GPU: choose a GPU preset or request at least one GPU.`
    );
  }
  if (request && selected) {
    const reason = unfit(selected, request);
    if (reason) {
      problems.push(`The node ${selected.name} cannot take this right now: ${reason}.`);
    }
  } else if (request && !selected && !choice.node) {
    if (!nodes.some(node => unfit(node, request) === null)) {
      problems.push(
        `Nothing fits this choice right now: ${whyNothingFits(nodes, request, ratio, tolerationsFor(request))}.`
      );
    }
  }

  return {
    request,
    nodes: nodeRows,
    gpuKinds: kindRows,
    presetReasons,
    bounds,
    customLimits: customLimits(config, nodes),
    memoryNotes: memoryNotes(candidates),
    gpuUse: gpuUseLines(ready),
    summary: request
      ? describeRequest(request, selected ? selected.name : '', imageText(config, choice))
      : 'Fix the size below to see what will be requested.',
    problems
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
