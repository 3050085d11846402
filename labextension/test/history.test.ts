import { describe, expect, it } from 'vitest';

import type { IGpuSnapshot } from '../src/api';
import {
  DeviceHistories,
  HistoryRing,
  sparklinePaths,
  sparklineValues,
  sparklineWindow
} from '../src/gpu/history';
import { device, migInstance } from './gpu';

const GiB = 1024 ** 3;

function sample(t: number, utilization: number | null = t) {
  return { t, utilization, memoryUsed: null };
}

describe('HistoryRing', () => {
  it('keeps the newest samples in time order once full', () => {
    const ring = new HistoryRing(3);
    [1, 2, 3, 4, 5].forEach(t => ring.push(sample(t)));
    expect(ring.toArray().map(s => s.t)).toEqual([3, 4, 5]);
    expect(ring.length).toBe(3);
    expect(ring.last?.t).toBe(5);
  });

  it('drops samples that are not newer than the last one', () => {
    const ring = new HistoryRing(5);
    expect(ring.push(sample(10))).toBe(true);
    expect(ring.push(sample(10))).toBe(false);
    expect(ring.push(sample(9))).toBe(false);
    expect(ring.toArray().map(s => s.t)).toEqual([10]);
  });

  it('refuses a useless capacity', () => {
    expect(() => new HistoryRing(0)).toThrow(RangeError);
    expect(() => new HistoryRing(1.5)).toThrow(RangeError);
  });
});

describe('DeviceHistories', () => {
  const uuid = 'GPU-1';
  const live = (t: number, utilization: number): IGpuSnapshot => ({
    available: true,
    reason: null,
    driver_version: null,
    cuda_driver_version: null,
    timestamp: t,
    interval: 1,
    devices: [device({ uuid, utilization_gpu: utilization })]
  });

  it('seeds from the server history, then appends live samples without duplicates', () => {
    const histories = new DeviceHistories(100);
    histories.seed({
      interval: 1,
      seconds: 600,
      devices: {
        [uuid]: {
          timestamps: [100, 101, 102],
          utilization_gpu: [10, null, 30],
          memory_used: [1, 2, 3]
        }
      }
    });
    histories.record(live(102, 99)); // same instant as the seed's last point: dropped
    histories.record(live(103, 40));

    expect(histories.get(uuid).map(s => [s.t, s.utilization])).toEqual([
      [100, 10],
      [101, null],
      [102, 30],
      [103, 40]
    ]);
    expect(histories.get('GPU-unknown')).toEqual([]);
  });

  it('keeps only the newest points of a seed longer than its capacity', () => {
    const histories = new DeviceHistories(2);
    histories.seed({
      interval: 1,
      seconds: 600,
      devices: {
        [uuid]: {
          timestamps: [1, 2, 3, 4],
          utilization_gpu: [1, 2, 3, 4],
          memory_used: [0, 0, 0, 0]
        }
      }
    });
    expect(histories.get(uuid).map(s => s.t)).toEqual([3, 4]);
  });

  it('records a failed device as a gap', () => {
    const histories = new DeviceHistories(10);
    histories.record({
      ...live(5, 50),
      devices: [device({ uuid, error: 'lost', utilization_gpu: 50 })]
    });
    expect(histories.get(uuid)[0].utilization).toBeNull();
  });
});

describe('sparklineValues', () => {
  it('plots utilization for a whole GPU and memory share for a MIG instance', () => {
    const samples = [{ t: 1, utilization: 50, memoryUsed: 2 * GiB }];
    expect(sparklineValues(samples, device())).toEqual([{ t: 1, v: 50 }]);
    const mig = migInstance('GPU-p', 1, 0);
    mig.memory_total = 4 * GiB;
    expect(sparklineValues(samples, mig)).toEqual([{ t: 1, v: 50 }]);
    expect(
      sparklineValues([{ t: 1, utilization: 7, memoryUsed: 1 * GiB }], mig)
    ).toEqual([{ t: 1, v: 25 }]);
  });
});

describe('sparklinePaths', () => {
  const box = { width: 100, height: 10, window: 10, end: 10 };

  it('maps time to x and percent to y (0 at the bottom)', () => {
    const paths = sparklinePaths(
      [
        { t: 0, v: 0 },
        { t: 5, v: 50 },
        { t: 10, v: 100 }
      ],
      box
    );
    expect(paths.line).toBe('M0,10L50,5L100,0');
    expect(paths.area).toBe('M0,10L0,10L50,5L100,0L100,10Z');
  });

  it('breaks the line at unknown values and clamps out-of-range ones', () => {
    const paths = sparklinePaths(
      [
        { t: 1, v: 150 },
        { t: 2, v: -5 },
        { t: 3, v: null },
        { t: 4, v: 20 },
        { t: 5, v: 20 }
      ],
      box
    );
    expect(paths.line).toBe('M10,0L20,10M40,8L50,8');
  });

  it('breaks the line where the gap is longer than maxGap, and dots lone points', () => {
    const points = [
      { t: 1, v: 10 },
      { t: 2, v: 10 },
      { t: 6, v: 10 },
      { t: 7, v: 10 }
    ];
    expect(sparklinePaths(points, { ...box, maxGap: 5 }).line).toBe(
      'M10,9L20,9L60,9L70,9'
    );
    const paths = sparklinePaths(points, { ...box, maxGap: 1.5 });
    expect(paths.line).toBe('M10,9L20,9M60,9L70,9');
    expect(sparklinePaths([{ t: 5, v: 50 }], box)).toEqual({
      line: 'M50,5L50,5',
      area: ''
    });
  });

  it('breaks the line over a long gap in sampling', () => {
    const paths = sparklinePaths(
      [
        { t: 1, v: 10 },
        { t: 2, v: 10 },
        { t: 3, v: 10 },
        { t: 9, v: 10 }
      ],
      box
    );
    expect(paths.line).toBe('M10,9L20,9L30,9M90,9L90,9');
  });

  it('leaves out points outside the window and draws nothing for no data', () => {
    expect(sparklinePaths([{ t: -5, v: 10 }], box)).toEqual({ line: '', area: '' });
    expect(sparklinePaths([], box)).toEqual({ line: '', area: '' });
  });
});

describe('sparklineWindow', () => {
  it('spans the history held, within the bounds', () => {
    expect(sparklineWindow([sample(1000)], 1200, 60, 600)).toBe(200);
    expect(sparklineWindow([sample(1190)], 1200, 60, 600)).toBe(60);
    expect(sparklineWindow([sample(0)], 1200, 60, 600)).toBe(600);
    expect(sparklineWindow([], 1200, 60, 600)).toBe(60);
  });
});
