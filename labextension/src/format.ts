/**
 * Number formatting shared by the GPU panel and the status bar. Pure functions, no DOM.
 * Missing values (`null`, NaN) render as an en dash so a card never shows "null".
 */

export const MISSING = '–';

const KIB = 1024;
const GIB = KIB ** 3;
const BYTE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

function isNumber(value: number | null | undefined): value is number {
  return typeof value === 'number' && Number.isFinite(value);
}

/** Round for display: one decimal below 10, none above (e.g. 3.2, 9.8, 20, 80). */
export function roundForDisplay(value: number): string {
  const rounded = value < 10 ? Math.round(value * 10) / 10 : Math.round(value);
  return String(rounded);
}

/** Bytes as GiB without a unit: `21474836480` -> `"20"`. */
export function formatGiB(bytes: number | null | undefined): string {
  return isNumber(bytes) ? roundForDisplay(bytes / GIB) : MISSING;
}

/** Used against total memory in GiB: `"20/80 GiB"`. */
export function formatMemoryPair(
  used: number | null | undefined,
  total: number | null | undefined
): string {
  if (!isNumber(used) && !isNumber(total)) {
    return MISSING;
  }
  return `${formatGiB(used)}/${formatGiB(total)} GiB`;
}

/** Bytes with a binary unit that fits: `"512 MiB"`, `"1.5 GiB"`. */
export function formatBytes(bytes: number | null | undefined): string {
  if (!isNumber(bytes) || bytes < 0) {
    return MISSING;
  }
  let value = bytes;
  let unit = 0;
  while (value >= KIB && unit < BYTE_UNITS.length - 1) {
    value /= KIB;
    unit += 1;
  }
  return `${unit === 0 ? value : roundForDisplay(value)} ${BYTE_UNITS[unit]}`;
}

/** `73` -> `"73%"`. */
export function formatPercent(value: number | null | undefined): string {
  return isNumber(value) ? `${Math.round(value)}%` : MISSING;
}

/** `54` -> `"54 °C"`. */
export function formatTemperature(celsius: number | null | undefined): string {
  return isNumber(celsius) ? `${Math.round(celsius)} °C` : MISSING;
}

/** Power draw against its limit: `"123 / 300 W"`, or `"123 W"` without a limit. */
export function formatPower(
  usage: number | null | undefined,
  limit: number | null | undefined
): string {
  if (!isNumber(usage)) {
    return MISSING;
  }
  if (!isNumber(limit)) {
    return `${Math.round(usage)} W`;
  }
  return `${Math.round(usage)} / ${Math.round(limit)} W`;
}

/** Share of `part` in `total` as a percent clamped to 0..100, or `null` when unknown. */
export function percentOf(
  part: number | null | undefined,
  total: number | null | undefined
): number | null {
  if (!isNumber(part) || !isNumber(total) || total <= 0) {
    return null;
  }
  return Math.min(100, Math.max(0, (part / total) * 100));
}

/**
 * Short form of an NVML UUID, like `nvidia-smi -L` users recognise it:
 * `GPU-5f3a9c1e-1111-...` -> `GPU-5f3a9c1e`. Other strings are cut to 12 characters.
 */
export function shortUuid(uuid: string): string {
  const match = /^([A-Za-z]+-)([0-9a-fA-F]{8})/.exec(uuid);
  if (match) {
    return match[1] + match[2];
  }
  return uuid.length > 12 ? uuid.slice(0, 12) : uuid;
}
