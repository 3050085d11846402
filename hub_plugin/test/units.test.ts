import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  formatBytes,
  formatCores,
  formatGpuKind,
  formatMemoryQuantity,
  parseQuantity
} from '../src/units.ts';
import { a100 } from './fixtures.ts';

describe('units', () => {
  it('writes cores with millicore precision', () => {
    assert.equal(formatCores(2), '2');
    assert.equal(formatCores(0.5), '0.5');
    assert.equal(formatCores(1.2345), '1.234'); // as Python's round(): 1.2345 is 1.23449999...
    assert.equal(formatCores(0), '0');
  });

  it('writes bytes in binary units like the server', () => {
    assert.equal(formatBytes(7.5 * 1024 ** 3), '7.5 GiB');
    assert.equal(formatBytes(512 * 1024 ** 2), '512 MiB');
    assert.equal(formatBytes(100), '100 B');
  });

  it('writes memory as the shortest exact quantity', () => {
    assert.equal(formatMemoryQuantity(16 * 1024 ** 3), '16Gi');
    assert.equal(formatMemoryQuantity(1536 * 1024 ** 2), '1536Mi');
    assert.equal(formatMemoryQuantity(1000), '1000');
  });

  for (const [text, expected] of [
    ['512Mi', 512 * 1024 ** 2],
    ['2', 2],
    ['500m', 0.5],
    ['1e3', 1000],
    ['1.5Gi', 1.5 * 1024 ** 3],
    ['2G', 2e9],
    ['abc', null],
    ['1e309', null],
    ['١', null],
    ['', null],
    ['5 Gi', null]
  ] as [string, number | null][]) {
    it(`parses the quantity ${JSON.stringify(text)}`, () => {
      assert.equal(parseQuantity(text), expected);
    });
  }

  it('describes MIG slices and shared GPUs', () => {
    const mig = {
      ...a100(3),
      resource: 'nvidia.com/mig-1g.10gb',
      mig_profile: '1g.10gb',
      memory_mib: 9856
    };
    assert.equal(formatGpuKind(mig), 'NVIDIA-A100-SXM4-80GB · MIG 1g.10gb · 9.6 GiB');
    assert.equal(
      formatGpuKind({ ...mig, product: 'NVIDIA-A100-80GB-PCIe-MIG-1g.10gb' }),
      'NVIDIA-A100-80GB-PCIe · MIG 1g.10gb · 9.6 GiB'
    );
    assert.equal(
      formatGpuKind({ ...a100(1), shared: true }),
      'NVIDIA-A100-SXM4-80GB · 80 GiB · shared'
    );
    assert.equal(
      formatGpuKind({ ...a100(1), resource: 'amd.com/gpu', product: null, memory_mib: null }),
      'amd.com/gpu'
    );
  });
});
