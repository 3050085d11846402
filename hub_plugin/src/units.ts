/**
 * How amounts are written; mirrors `jupyter_tk/hub/quantities.py` so server-rendered and live text
 * read the same (checked by the shared cases in `tests/vectors/form_rules.json`).
 */
import type { GpuInfo } from './types.ts';

const BINARY_UNITS: [string, number][] = [
  ['Ti', 1024 ** 4],
  ['Gi', 1024 ** 3],
  ['Mi', 1024 ** 2],
  ['Ki', 1024]
];

function trimZeros(text: string): string {
  return text.includes('.') ? text.replace(/0+$/, '').replace(/\.$/, '') : text;
}

/** `2` -> "2", `0.5` -> "0.5", `1.25` -> "1.25" (millicore precision), rounded like Python's
 *  `round(cores, 3)`: from the number's exact value, an exact tie to the even millicore. */
export function formatCores(cores: number): string {
  let text = cores.toFixed(3); // from the exact value; an exact tie goes up
  // A binary number is exactly halfway between two millicores only when it is an odd number
  // of sixteenths (x * 1000 = k + 1/2 needs x = j / 16 with j odd).
  const sixteenths = cores * 16;
  if (Number.isInteger(sixteenths) && sixteenths % 2 !== 0) {
    const down = Math.floor(cores * 1000);
    text = ((down % 2 === 0 ? down : down + 1) / 1000).toFixed(3);
  }
  return trimZeros(text) || '0';
}

/** Bytes for people, binary units, at most one decimal: "7.5 GiB". */
export function formatBytes(amount: number): string {
  for (const [suffix, size] of BINARY_UNITS) {
    if (Math.abs(amount) >= size) {
      return `${trimZeros((amount / size).toFixed(1))} ${suffix}B`;
    }
  }
  return `${Math.trunc(amount)} B`;
}

/** Bytes as the shortest exact Kubernetes quantity: 17179869184 -> "16Gi". */
export function formatMemoryQuantity(amount: number): string {
  for (const [suffix, size] of BINARY_UNITS) {
    if (amount >= size && amount % size === 0) {
      return `${amount / size}${suffix}`;
    }
  }
  return String(amount);
}

/** One GPU entry as "NVIDIA-A100-SXM4-80GB · MIG 1g.10gb · 10 GiB · shared". */
export function formatGpuKind(gpu: GpuInfo): string {
  let product = gpu.product || gpu.resource;
  const suffix = `-MIG-${gpu.mig_profile}`;
  if (gpu.mig_profile && product.endsWith(suffix)) {
    // GFD names a slice "<GPU>-MIG-1g.10gb"; say it once.
    product = product.slice(0, -suffix.length);
  }
  const parts = [product];
  if (gpu.mig_profile) {
    parts.push(`MIG ${gpu.mig_profile}`);
  }
  if (gpu.memory_mib) {
    parts.push(formatBytes(gpu.memory_mib * 1024 ** 2));
  }
  if (gpu.shared) {
    parts.push('shared');
  }
  return parts.join(' · ');
}

/** The grammar of a Kubernetes quantity (k8s.io/apimachinery), as `quantities.py` has it. */
export const QUANTITY =
  /^([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(?:(Ki|Mi|Gi|Ti|Pi|Ei)|[eE]([+-]?[0-9]+)|([mkMGTPE]?))$/;
const BINARY_EXPONENT: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };
const DECIMAL_EXPONENT: Record<string, number> = {
  m: -3,
  '': 0,
  k: 3,
  M: 6,
  G: 9,
  T: 12,
  P: 15,
  E: 18
};

/**
 * A Kubernetes quantity ("512Mi", "2", "500m", "1e3") as a number, or null when it is not one
 * (surrounding spaces included: the form trims what people type before this, as the server
 * does). The server parses exactly (Decimal); for the form's checks a float is enough.
 */
export function parseQuantity(text: string): number | null {
  const match = QUANTITY.exec(text);
  if (!match) {
    return null;
  }
  const number = Number(match[1]);
  let value: number;
  if (match[2]) {
    value = number * 1024 ** BINARY_EXPONENT[match[2]];
  } else if (match[3] !== undefined) {
    value = number * 10 ** Number(match[3]);
  } else {
    value = number * 10 ** DECIMAL_EXPONENT[match[4] ?? ''];
  }
  return Number.isFinite(value) ? value : null;
}
