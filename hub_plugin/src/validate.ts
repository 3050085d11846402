/**
 * Whether the server would refuse the form as the user left it, and with which message: the
 * same checks, in the same order and words, as `parse_form` (`jupyter_tk/hub/form.py`) and
 * `validate_user_options` (`jupyter_tk/hub/validation.py`) for what a form can send. The server
 * stays the authority on submit; the shared cases in `tests/vectors/form_rules.json` check that
 * both give the same answer.
 */
import { fnmatchcase } from './glob.ts';
import { normalizeRegistry, parseImageReference, ReferenceError } from './imageReference.ts';
import {
  gpuAbsence,
  nodeUnfitReason,
  placeName,
  wantsGpu,
  whyNothingFits,
  type SizeLimits
} from './placement.ts';
import { shown } from './text.ts';
import type { Choice, FormConfig, NodeInfo, ResourceRequest, Snapshot } from './types.ts';
import { formatBytes, formatCores, parseQuantity, QUANTITY } from './units.ts';

const COUNT = /^[0-9]{1,6}$/;
const MAX_GPU_COUNT = 1024;
// As `quantities.py`: Kubernetes stores quantities in an int64 of the smallest unit, and
// longer texts or larger exponents are never real requests.
const MAX_MAGNITUDE = 2 ** 63 - 1;
const MAX_TEXT_LENGTH = 64;
const MAX_EXPONENT = 30;

/** A refusal, as the server words it. */
class Refusal extends Error {}

/** A form field as the server reads it (`form.py` trims what people type). */
function field(value: string): string {
  return value.trim();
}

function number(value: string, what: string, example: string): number {
  const match = value.length <= MAX_TEXT_LENGTH ? QUANTITY.exec(value) : null;
  if (!match) {
    throw new Refusal(`${what} must be a number such as ${example}, got ${shown(value)}.`);
  }
  const amount = parseQuantity(value);
  const exponent = match[3] === undefined ? 0 : Number(match[3]);
  if (amount === null || Math.abs(amount) > MAX_MAGNITUDE || Math.abs(exponent) > MAX_EXPONENT) {
    throw new Refusal(`${what} ${shown(value)} is far more than any server can have.`);
  }
  if (amount <= 0) {
    throw new Refusal(`${what} must be more than 0, got ${shown(value)}.`);
  }
  return amount;
}

function cpuOf(value: string, config: FormConfig): number {
  if (value === '') {
    return config.defaults.cpu;
  }
  const amount = number(value, 'CPU', '2, 0.5 or 500m');
  if (Math.abs(Math.round(amount * 1000) - amount * 1000) > 1e-6) {
    throw new Refusal(`CPU is counted in steps of 0.001 cores, got ${shown(value)}.`);
  }
  if (amount < config.minimum.cpu) {
    throw new Refusal(`Request at least ${formatCores(config.minimum.cpu)} CPU.`);
  }
  return amount;
}

function memoryOf(value: string, config: FormConfig): number {
  if (value === '') {
    return config.defaults.memory;
  }
  const amount = number(value, 'Memory', '8Gi or 512Mi');
  if (!Number.isInteger(amount)) {
    throw new Refusal(`Memory must be a whole number of bytes, got ${shown(value)}.`);
  }
  if (amount < config.minimum.memory) {
    throw new Refusal(`Request at least ${formatBytes(config.minimum.memory)} of memory.`);
  }
  return amount;
}

function gpuOf(resource: string, count: string): [string | null, number] {
  // `parse_form`: no kind, or a count of "" or "0", is no GPU.
  if (!resource || count === '' || count === '0') {
    return [null, 0];
  }
  if (!COUNT.test(count)) {
    throw new Refusal(`The number of GPUs must be a whole number, got ${shown(count)}.`);
  }
  const n = Number(count);
  if (n > MAX_GPU_COUNT) {
    throw new Refusal(`${n} GPUs is more than any server can have.`);
  }
  return n ? [resource, n] : [null, 0];
}

/** `validation.limit_message`: one maximum, named as the cap or as the largest node. */
export function limitMessage(
  what: string,
  amount: string,
  limit: string,
  cap: boolean,
  source: string
): string {
  if (cap) {
    return `${amount}${what} is over your limit of ${limit}.`;
  }
  return `${amount}${what} is more than ${placeName(source)} can hold (${limit}).`;
}

/** "2 CPU and 4 GiB of memory with 1 nvidia.com/gpu" (`validation._describe`). */
export function describeForRefusal(request: ResourceRequest): string {
  let text = `${formatCores(request.cpu)} CPU and ${formatBytes(request.memory)} of memory`;
  if (wantsGpu(request)) {
    text += ` with ${request.gpuCount} ${request.gpuResource}`;
  }
  return text;
}

function capitalized(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** Why the server would refuse `value` (trimmed) as a custom image: not allowed, not an image
 *  reference, or from a registry not listed; null when it would take it. */
export function customImageRefusal(config: FormConfig, value: string): string | null {
  if (!config.customImages.allowed) {
    return `Unknown image ${shown(value)}: pick an image from the list.`;
  }
  let registry: string;
  try {
    registry = normalizeRegistry(parseImageReference(value).registry);
  } catch (error) {
    if (error instanceof ReferenceError) {
      return `${shown(value)} is not in the image list and not a valid image reference: ${error.message}.`;
    }
    throw error;
  }
  const registries = config.customImages.registries;
  if (!registries.includes('*') && !registries.includes(registry)) {
    return (
      `${shown(value)} is not in the image list, and custom images may only come ` +
      `from ${registries.join(', ')} (it is on ${parseImageReference(value).registry}).`
    );
  }
  return null;
}

export interface RefusalInput {
  config: FormConfig;
  snapshot: Snapshot;
  choice: Choice;
  /** The snapshot's nodes the user may pick. */
  nodes: NodeInfo[];
  /** The most a custom size may ask for (`placement.sizeLimits`). */
  limits: SizeLimits;
}

function refuse({ config, snapshot, choice, nodes, limits }: RefusalInput): void {
  const image = field(choice.image);
  const customImage = field(choice.customImage);
  if (!image && !customImage) {
    throw new Refusal('Type the custom image to use, or pick one from the list.');
  }
  const preset = config.presets.find(p => p.slug === choice.profile) ?? null;
  let cpu: number;
  let memory: number;
  let gpuResource: string | null;
  let gpuCount: number;
  if (preset) {
    cpu = preset.cpu;
    memory = preset.memory;
    gpuResource = preset.gpu?.resource ?? null;
    gpuCount = preset.gpu?.count ?? 0;
  } else {
    cpu = cpuOf(field(choice.cpu), config);
    memory = memoryOf(field(choice.memory), config);
    [gpuResource, gpuCount] = gpuOf(field(choice.gpuResource), field(choice.gpuCount));
  }

  const { caps } = config;
  const source = snapshot.source;
  if (gpuCount > caps.gpus) {
    const limit = caps.gpus ? `your limit is ${caps.gpus}` : 'you may not use GPUs';
    throw new Refusal(`${gpuCount} GPU(s) requested, but ${limit}.`);
  }
  // A GPU that exists nowhere is the reason to give before any size: no size would help.
  const absent = gpuAbsence(nodes, gpuResource, source);
  if (gpuResource && gpuCount && absent) {
    const kinds = [...new Set(nodes.flatMap(n => (n.gpus || []).map(g => g.resource)))].sort();
    throw new Refusal(
      kinds.length
        ? `No node you may use offers the GPU kind ${shown(gpuResource)}; ` +
            `the kinds you may use are ${kinds.join(', ')}.`
        : `${capitalized(absent)}: choose a size without a GPU.`
    );
  }

  if (cpu > limits.cpu) {
    throw new Refusal(
      limitMessage(
        ' CPU',
        formatCores(cpu),
        `${formatCores(limits.cpu)} CPU`,
        limits.cpu >= caps.cpu,
        source
      )
    );
  }
  if (memory > limits.memory) {
    throw new Refusal(
      limitMessage(
        ' of memory',
        formatBytes(memory),
        formatBytes(limits.memory),
        limits.memory >= caps.memory,
        source
      )
    );
  }
  const listed = config.images.find(i => i.name === (image || customImage));
  if (!listed) {
    const problem = customImageRefusal(config, image || customImage);
    if (problem) {
      throw new Refusal(problem);
    }
  } else if (listed.gpuRequired && !gpuCount) {
    throw new Refusal(
      preset
        ? `The image ${listed.name} needs a GPU, and the preset ${preset.slug} has none: ` +
            `choose a GPU preset, or ${shown(config.customProfile)} with a GPU.`
        : `The image ${listed.name} needs a GPU: request at least one GPU.`
    );
  }

  const request: ResourceRequest = { cpu, memory, gpuResource, gpuCount };
  if (!snapshot.nodes.length && snapshot.stale) {
    throw new Refusal(
      "The cluster's free resources are not known yet (its API has not answered); " +
        'try again in a few seconds.'
    );
  }
  const ratio = config.guaranteeRatio;
  const tolerations = wantsGpu(request) ? config.tolerations.gpu : config.tolerations.cpu;
  const chosen = field(choice.node);
  if (!chosen) {
    if (!nodes.some(node => nodeUnfitReason(node, request, ratio, tolerations) === null)) {
      const detail = whyNothingFits(nodes, request, ratio, tolerations);
      throw new Refusal(
        `No node has room for ${describeForRefusal(request)} right now (${detail}). ` +
          'Choose less, or try again later.'
      );
    }
    return;
  }
  if (!config.nodeGlobs.some(glob => fnmatchcase(chosen, glob))) {
    throw new Refusal(`You may not start servers on the node ${shown(chosen)}.`);
  }
  const node = nodes.find(n => n.name === chosen);
  if (!node) {
    throw new Refusal(`There is no node called ${shown(chosen)} in the cluster right now.`);
  }
  const reason = nodeUnfitReason(node, request, ratio, tolerations);
  if (reason !== null) {
    throw new Refusal(
      `The node ${chosen} cannot take ${describeForRefusal(request)} right now: ${reason}. ` +
        'Choose another node, “Any node that fits”, or less.'
    );
  }
}

/** The server's refusal of this choice, word for word; null when it would be accepted. */
export function refusalOf(input: RefusalInput): string | null {
  try {
    refuse(input);
    return null;
  } catch (error) {
    if (error instanceof Refusal) {
      return error.message;
    }
    throw error;
  }
}
