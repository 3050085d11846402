/**
 * Short per-device history for the sparklines: seeded once from
 * `GET jupyter-tk/api/gpus/history`, then extended by every live snapshot.
 * Pure logic, no DOM.
 */
import type { IGpuDevice, IGpuHistory, IGpuSnapshot } from '../api';
import { percentOf } from '../format';

/** One point of a device's history. */
export interface ISample {
  /** Seconds since the epoch. */
  t: number;
  /** Percent; `null` where unknown (MIG instances, failed reads). */
  utilization: number | null;
  /** Bytes; `null` where unknown. */
  memoryUsed: number | null;
}

/**
 * A fixed-size ring of samples in time order. Samples not newer than the last one are
 * dropped, so the seed and the live stream can overlap without duplicates.
 */
export class HistoryRing {
  constructor(readonly capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this._buffer = new Array<ISample>(capacity);
  }

  get length(): number {
    return this._length;
  }

  /** The newest sample, if any. */
  get last(): ISample | undefined {
    if (this._length === 0) {
      return undefined;
    }
    return this._buffer[(this._start + this._length - 1) % this.capacity];
  }

  /** Append a sample; returns false when it is not newer than the last one. */
  push(sample: ISample): boolean {
    const last = this.last;
    if (last !== undefined && sample.t <= last.t) {
      return false;
    }
    if (this._length < this.capacity) {
      this._buffer[(this._start + this._length) % this.capacity] = sample;
      this._length += 1;
    } else {
      this._buffer[this._start] = sample;
      this._start = (this._start + 1) % this.capacity;
    }
    return true;
  }

  /** Samples oldest first. */
  toArray(): ISample[] {
    const out: ISample[] = [];
    for (let i = 0; i < this._length; i++) {
      out.push(this._buffer[(this._start + i) % this.capacity]);
    }
    return out;
  }

  private _buffer: ISample[];
  private _start = 0;
  private _length = 0;
}

/** The rings of every device, keyed by UUID. */
export class DeviceHistories {
  /**
   * @param capacity samples kept per device (e.g. 10 minutes at the poll interval)
   */
  constructor(readonly capacity: number) {}

  get(uuid: string): ISample[] {
    return this._rings.get(uuid)?.toArray() ?? [];
  }

  /** Merge the server's history; older points than what is held are ignored. */
  seed(history: IGpuHistory): void {
    for (const [uuid, series] of Object.entries(history.devices)) {
      const ring = this._ring(uuid);
      const n = series.timestamps.length;
      // The server keeps more than a ring may hold: only the newest points matter.
      for (let i = Math.max(0, n - this.capacity); i < n; i++) {
        ring.push({
          t: series.timestamps[i],
          utilization: series.utilization_gpu[i] ?? null,
          memoryUsed: series.memory_used[i] ?? null
        });
      }
    }
  }

  /** Append one live snapshot. */
  record(snapshot: IGpuSnapshot): void {
    for (const device of snapshot.devices) {
      this._ring(device.uuid).push({
        t: snapshot.timestamp,
        utilization: device.error ? null : device.utilization_gpu,
        memoryUsed: device.error ? null : device.memory_used
      });
    }
  }

  private _ring(uuid: string): HistoryRing {
    let ring = this._rings.get(uuid);
    if (!ring) {
      ring = new HistoryRing(this.capacity);
      this._rings.set(uuid, ring);
    }
    return ring;
  }

  private _rings = new Map<string, HistoryRing>();
}

/**
 * What a device's sparkline plots, in percent: GPU utilization, or memory use where
 * utilization is not reported (MIG instances).
 */
export function sparklineValues(
  samples: ISample[],
  device: Pick<IGpuDevice, 'mig' | 'memory_total' | 'utilization_gpu'>
): { t: number; v: number | null }[] {
  const useMemory = device.mig || device.utilization_gpu === null;
  return samples.map(s => ({
    t: s.t,
    v: useMemory ? percentOf(s.memoryUsed, device.memory_total) : s.utilization
  }));
}

/**
 * Seconds a sparkline spans: the history held, between `min` and `max`, so a server that
 * started a minute ago draws a full-width chart instead of a dot at the right edge.
 */
export function sparklineWindow(
  samples: ISample[],
  end: number,
  min: number,
  max: number
): number {
  const span = samples.length > 0 ? end - samples[0].t : 0;
  return Math.min(max, Math.max(min, span));
}

export interface ISparklineOptions {
  width: number;
  height: number;
  /** Seconds shown, ending at `end`. */
  window: number;
  /** Seconds since the epoch at the right edge. */
  end: number;
  /** Value at the top edge (100 for percent). */
  max?: number;
  /**
   * Longest time between two samples that still joins them, in seconds; longer gaps
   * (sampling paused, polls failed) break the line. Default: 3 x the median spacing.
   */
  maxGap?: number;
}

/** SVG paths of a sparkline: the line, and the area under it. */
export interface ISparklinePaths {
  line: string;
  area: string;
}

/**
 * SVG path data for a time series: x by time within the window, y from 0 (bottom) to
 * `max` (top). A `null` value, or a gap longer than `maxGap`, breaks the line so missing
 * data never looks like a ramp. A lone point becomes a zero-length segment, which a
 * round line cap draws as a dot.
 */
export function sparklinePaths(
  points: { t: number; v: number | null }[],
  options: ISparklineOptions
): ISparklinePaths {
  const { width, height, window, end } = options;
  const max = options.max ?? 100;
  const start = end - window;
  const visible = points.filter(p => p.t >= start && p.t <= end);
  const gapLimit = options.maxGap ?? 3 * medianSpacing(visible);

  const segments: [number, number][][] = [];
  let current: [number, number][] = [];
  let previousT: number | null = null;
  for (const { t, v } of visible) {
    const gap = previousT !== null && gapLimit > 0 && t - previousT > gapLimit;
    if (v === null || gap) {
      if (current.length) {
        segments.push(current);
      }
      current = [];
    }
    if (v !== null) {
      const x = ((t - start) / window) * width;
      const y = height - (Math.min(max, Math.max(0, v)) / max) * height;
      current.push([x, y]);
    }
    previousT = t;
  }
  if (current.length) {
    segments.push(current);
  }

  const fmt = (n: number) => String(Math.round(n * 10) / 10);
  const line = segments
    .map(seg =>
      seg.length === 1
        ? `M${fmt(seg[0][0])},${fmt(seg[0][1])}L${fmt(seg[0][0])},${fmt(seg[0][1])}`
        : seg.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${fmt(x)},${fmt(y)}`).join('')
    )
    .join('');
  const area = segments
    .filter(seg => seg.length > 1)
    .map(seg => {
      const first = seg[0];
      const last = seg[seg.length - 1];
      const top = seg.map(([x, y]) => `L${fmt(x)},${fmt(y)}`).join('');
      return `M${fmt(first[0])},${fmt(height)}${top}L${fmt(last[0])},${fmt(height)}Z`;
    })
    .join('');
  return { line, area };
}

function medianSpacing(points: { t: number }[]): number {
  if (points.length < 2) {
    return 0;
  }
  const gaps = points
    .slice(1)
    .map((p, i) => p.t - points[i].t)
    .sort((a, b) => a - b);
  return gaps[Math.floor(gaps.length / 2)];
}
