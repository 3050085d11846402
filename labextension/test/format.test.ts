import { describe, expect, it } from 'vitest';

import {
  formatBytes,
  formatGiB,
  formatMemoryPair,
  formatPercent,
  formatPower,
  formatTemperature,
  MISSING,
  percentOf,
  shortUuid
} from '../src/format';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

describe('formatGiB / formatMemoryPair', () => {
  it.each([
    [20 * GiB, '20'],
    [80 * GiB, '80'],
    [3.24 * GiB, '3.2'],
    [9.84 * GiB, '9.8'],
    [9.96 * GiB, '10'],
    [0, '0'],
    [512 * MiB, '0.5'],
    [null, MISSING]
  ])('formats %s bytes as %s', (bytes, text) => {
    expect(formatGiB(bytes)).toBe(text);
  });

  it('pairs used and total memory like the status bar shows them', () => {
    expect(formatMemoryPair(20 * GiB, 80 * GiB)).toBe('20/80 GiB');
    expect(formatMemoryPair(3.2 * GiB, 9.8 * GiB)).toBe('3.2/9.8 GiB');
  });

  it('keeps the known half when one side is missing, and dashes when both are', () => {
    expect(formatMemoryPair(null, 80 * GiB)).toBe(`${MISSING}/80 GiB`);
    expect(formatMemoryPair(null, null)).toBe(MISSING);
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [512 * MiB, '512 MiB'],
    [1.5 * GiB, '1.5 GiB'],
    [2048 * GiB, '2 TiB'],
    [null, MISSING],
    [-1, MISSING],
    [Number.NaN, MISSING]
  ])('formats %s as %s', (bytes, text) => {
    expect(formatBytes(bytes)).toBe(text);
  });
});

describe('small figures', () => {
  it('rounds percent, temperature and power for display', () => {
    expect(formatPercent(72.6)).toBe('73%');
    expect(formatPercent(null)).toBe(MISSING);
    expect(formatTemperature(54.4)).toBe('54 °C');
    expect(formatPower(123.4, 300)).toBe('123 / 300 W');
    expect(formatPower(123.4, null)).toBe('123 W');
    expect(formatPower(null, 300)).toBe(MISSING);
  });

  it('computes a clamped share, or null when it cannot', () => {
    expect(percentOf(20, 80)).toBe(25);
    expect(percentOf(120, 80)).toBe(100);
    expect(percentOf(5, 0)).toBeNull();
    expect(percentOf(null, 80)).toBeNull();
  });
});

describe('shortUuid', () => {
  it.each([
    ['GPU-5f3a9c1e-1111-2222-3333-444455556666', 'GPU-5f3a9c1e'],
    ['MIG-0a1b2c3d-aaaa-bbbb-cccc-ddddeeeeffff', 'MIG-0a1b2c3d'],
    ['something-else-entirely', 'something-el'],
    ['short', 'short']
  ])('%s -> %s', (uuid, short) => {
    expect(shortUuid(uuid)).toBe(short);
  });
});
