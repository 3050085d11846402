/**
 * How devices are arranged and summarised: MIG grouping for the panel, the status-bar
 * text. Pure logic, no DOM; strings go through the caller's translation bundle.
 */
import type { IGpuDevice, IGpuSnapshot } from '../api';
import { formatMemoryPair, formatPercent, percentOf } from '../format';
import type { ITranslate } from '../trans';

/** A row of the panel: a whole GPU, or the MIG instances of one MIG-enabled GPU. */
export type DeviceEntry =
  | { kind: 'device'; device: IGpuDevice }
  | { kind: 'mig'; parentUuid: string; devices: IGpuDevice[] };

/**
 * Group MIG instances under their parent GPU, keeping the server's device order: a
 * group appears where its first instance appeared; instances are sorted by index.
 */
export function groupDevices(devices: IGpuDevice[]): DeviceEntry[] {
  const entries: DeviceEntry[] = [];
  const groups = new Map<string, IGpuDevice[]>();
  for (const device of devices) {
    if (device.mig && device.parent_uuid) {
      let group = groups.get(device.parent_uuid);
      if (!group) {
        group = [];
        groups.set(device.parent_uuid, group);
        entries.push({ kind: 'mig', parentUuid: device.parent_uuid, devices: group });
      }
      group.push(device);
    } else {
      entries.push({ kind: 'device', device });
    }
  }
  for (const group of groups.values()) {
    group.sort((a, b) => a.index - b.index);
  }
  return entries;
}

/** `<GPU name> MIG <profile>` as NVML names MIG devices, e.g. `... MIG 1c.2g.20gb+me`. */
const MIG_NAME = /^(.+) (MIG (?:\d+c\.)?\d+g\.\d+gb(?:\+\w+)?)$/i;

/**
 * Title of a device card. A MIG instance is named by its profile (`MIG 2g.10gb`), since
 * its group heading already names the GPU.
 */
export function deviceTitle(device: IGpuDevice): string {
  const match = device.mig ? MIG_NAME.exec(device.name) : null;
  return match ? match[2] : device.name;
}

/** The GPU model of a MIG group, from its instances' names, or `null` if unknown. */
export function migParentName(devices: IGpuDevice[]): string | null {
  for (const device of devices) {
    const match = MIG_NAME.exec(device.name);
    if (match) {
      return match[1];
    }
  }
  return null;
}

/**
 * The device the status bar shows: with several GPUs, the busiest one, because "is my
 * job using a GPU" is what the status bar answers; a mean would hide one saturated GPU
 * among idle ones. Busiest = highest GPU utilization. Devices that report none (MIG
 * instances) are compared by memory share, and only when no device reports utilization,
 * since the two percentages do not measure the same thing. Ties keep the first device;
 * failed devices are only chosen when every device failed.
 */
export function busiestDevice(devices: IGpuDevice[]): IGpuDevice | null {
  const healthy = devices.filter(d => !d.error);
  if (healthy.length === 0) {
    return devices[0] ?? null;
  }
  const withUtilization = healthy.filter(d => d.utilization_gpu !== null);
  const candidates = withUtilization.length > 0 ? withUtilization : healthy;
  const load = (d: IGpuDevice) =>
    d.utilization_gpu ?? percentOf(d.memory_used, d.memory_total) ?? 0;
  return candidates.reduce((best, d) => (load(d) > load(best) ? d : best));
}

export interface IStatusSummary {
  /** e.g. `GPU 73% · 20/80 GiB`, or `GPU max 73% · 20/80 GiB` with several GPUs. */
  text: string;
  /** Tooltip: one line per device. */
  title: string;
}

/** One line per device for tooltips: `0 NVIDIA A100: 73% · 20/80 GiB`. */
export function deviceLine(device: IGpuDevice, trans: ITranslate): string {
  const label = `${device.index} ${device.name}`;
  if (device.error) {
    return trans.__('%1: error: %2', label, device.error);
  }
  const memory = formatMemoryPair(device.memory_used, device.memory_total);
  if (device.utilization_gpu === null) {
    return `${label}: ${memory}`;
  }
  return `${label}: ${formatPercent(device.utilization_gpu)} · ${memory}`;
}

/**
 * Status-bar text for a snapshot, or `null` when there is nothing to show (no snapshot,
 * no GPU available, or no device) so the item hides.
 */
export function statusSummary(
  snapshot: IGpuSnapshot | null,
  trans: ITranslate
): IStatusSummary | null {
  if (!snapshot || !snapshot.available || snapshot.devices.length === 0) {
    return null;
  }
  const device = busiestDevice(snapshot.devices)!;
  const several = snapshot.devices.length > 1;
  const lines = snapshot.devices.map(d => deviceLine(d, trans));
  const title = several
    ? [
        trans.__(
          'Busiest of %1 GPUs shown; click for details',
          snapshot.devices.length
        ),
        ...lines
      ].join('\n')
    : [lines[0], trans.__('Click for details')].join('\n');

  let figures: string;
  if (device.error) {
    figures = trans.__('error');
  } else {
    const memory = formatMemoryPair(device.memory_used, device.memory_total);
    figures =
      device.utilization_gpu === null
        ? memory
        : `${formatPercent(device.utilization_gpu)} · ${memory}`;
  }
  const text = several ? trans.__('GPU max %1', figures) : trans.__('GPU %1', figures);
  return { text, title };
}
