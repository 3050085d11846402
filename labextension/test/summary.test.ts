import { describe, expect, it } from 'vitest';

import type { IGpuSnapshot } from '../src/api';
import {
  busiestDevice,
  deviceTitle,
  groupDevices,
  migParentName,
  statusSummary
} from '../src/gpu/summary';
import { device, migInstance } from './gpu';
import { trans } from './translate';

const GiB = 1024 ** 3;
const PARENT_A = 'GPU-aaaaaaaa-0000-0000-0000-000000000000';
const PARENT_B = 'GPU-bbbbbbbb-0000-0000-0000-000000000000';

function snapshot(overrides: Partial<IGpuSnapshot> = {}): IGpuSnapshot {
  return {
    available: true,
    reason: null,
    driver_version: '550.54.15',
    cuda_driver_version: '12.4',
    timestamp: 1_700_000_000,
    interval: 1,
    devices: [device()],
    ...overrides
  };
}

describe('groupDevices', () => {
  it('groups MIG instances under their parent where the first instance appeared', () => {
    const whole = device({ index: 0, uuid: 'GPU-0' });
    const a2 = migInstance(PARENT_A, 2, 1);
    const a1 = migInstance(PARENT_A, 1, 1);
    const b3 = migInstance(PARENT_B, 3, 1);
    const last = device({ index: 4, uuid: 'GPU-4' });

    const entries = groupDevices([whole, a2, b3, a1, last]);

    expect(
      entries.map(e => (e.kind === 'device' ? e.device.uuid : e.parentUuid))
    ).toEqual(['GPU-0', PARENT_A, PARENT_B, 'GPU-4']);
    const groupA = entries[1];
    expect(groupA.kind).toBe('mig');
    if (groupA.kind === 'mig') {
      expect(groupA.devices.map(d => d.index)).toEqual([1, 2]);
    }
  });

  it('keeps a MIG device without a parent uuid as a plain card', () => {
    const orphan = migInstance(PARENT_A, 1, 1);
    orphan.parent_uuid = null;
    expect(groupDevices([orphan])).toEqual([{ kind: 'device', device: orphan }]);
  });

  it('returns nothing for no devices', () => {
    expect(groupDevices([])).toEqual([]);
  });
});

describe('busiestDevice', () => {
  it('picks the highest utilization, first index on ties', () => {
    const devices = [
      device({ index: 0, utilization_gpu: 40 }),
      device({ index: 1, utilization_gpu: 90 }),
      device({ index: 2, utilization_gpu: 90 })
    ];
    expect(busiestDevice(devices)?.index).toBe(1);
  });

  it('uses the memory share where utilization is not reported (MIG)', () => {
    const devices = [migInstance(PARENT_A, 1, 1), migInstance(PARENT_A, 2, 4)];
    expect(busiestDevice(devices)?.index).toBe(2);
  });

  it('prefers a GPU that reports utilization over a MIG instance with more memory in use', () => {
    const devices = [
      device({ index: 0, utilization_gpu: 12 }),
      migInstance(PARENT_A, 1, 4.5)
    ];
    expect(busiestDevice(devices)?.index).toBe(0);
  });

  it('passes over failed devices unless all failed', () => {
    const lost = device({ index: 0, error: 'GPU is lost', utilization_gpu: null });
    const idle = device({ index: 1, utilization_gpu: 0 });
    expect(busiestDevice([lost, idle])?.index).toBe(1);
    expect(busiestDevice([lost])?.index).toBe(0);
    expect(busiestDevice([])).toBeNull();
  });
});

describe('statusSummary', () => {
  it('shows one GPU as "GPU 73% · 20/80 GiB"', () => {
    const summary = statusSummary(
      snapshot({ devices: [device({ utilization_gpu: 73 })] }),
      trans
    );
    expect(summary?.text).toBe('GPU 73% · 20/80 GiB');
    expect(summary?.title).toContain('0 NVIDIA A100-SXM4-80GB: 73% · 20/80 GiB');
  });

  it('shows the busiest of several GPUs and lists all in the tooltip', () => {
    const summary = statusSummary(
      snapshot({
        devices: [
          device({ index: 0, utilization_gpu: 5, memory_used: 1 * GiB }),
          device({ index: 1, utilization_gpu: 97, memory_used: 70 * GiB }),
          device({ index: 2, error: 'Unknown Error', utilization_gpu: null })
        ]
      }),
      trans
    );
    expect(summary?.text).toBe('GPU max 97% · 70/80 GiB');
    expect(summary?.title.split('\n')).toEqual([
      'Busiest of 3 GPUs shown; click for details',
      '0 NVIDIA A100-SXM4-80GB: 5% · 1/80 GiB',
      '1 NVIDIA A100-SXM4-80GB: 97% · 70/80 GiB',
      '2 NVIDIA A100-SXM4-80GB: error: Unknown Error'
    ]);
  });

  it('shows memory only for MIG instances', () => {
    const summary = statusSummary(
      snapshot({ devices: [migInstance(PARENT_A, 0, 2.5)] }),
      trans
    );
    expect(summary?.text).toBe('GPU 2.5/4.8 GiB');
  });

  it('says error when the only GPU failed', () => {
    const summary = statusSummary(
      snapshot({ devices: [device({ error: 'GPU is lost' })] }),
      trans
    );
    expect(summary?.text).toBe('GPU error');
  });

  it.each([
    ['no snapshot yet', null],
    [
      'no GPU available',
      snapshot({ available: false, reason: 'no driver', devices: [] })
    ],
    ['no device', snapshot({ devices: [] })]
  ])('hides with %s', (_, value) => {
    expect(statusSummary(value, trans)).toBeNull();
  });
});

describe('titles', () => {
  it('names a MIG instance by its profile and its group by the GPU model', () => {
    const instance = migInstance(PARENT_A, 1, 1);
    expect(deviceTitle(instance)).toBe('MIG 1g.5gb');
    expect(migParentName([instance])).toBe('NVIDIA A100-SXM4-40GB');
  });

  it('keeps names that do not follow the NVML pattern', () => {
    expect(deviceTitle(device())).toBe('NVIDIA A100-SXM4-80GB');
    const odd = migInstance(PARENT_A, 1, 1);
    odd.name = 'Some MIG device';
    expect(deviceTitle(odd)).toBe('Some MIG device');
    expect(migParentName([odd])).toBeNull();
  });

  it.each([
    ['NVIDIA H100 80GB HBM3 MIG 1g.10gb', 'MIG 1g.10gb'],
    ['NVIDIA A100-SXM4-40GB MIG 1c.2g.10gb', 'MIG 1c.2g.10gb'],
    ['NVIDIA H100 80GB HBM3 MIG 1g.10gb+me', 'MIG 1g.10gb+me']
  ])('reads the profile of %s', (name, title) => {
    const instance = migInstance(PARENT_A, 1, 1);
    instance.name = name;
    expect(deviceTitle(instance)).toBe(title);
  });
});
