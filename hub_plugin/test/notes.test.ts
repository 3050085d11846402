import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { gpuUseLines, memoryAdvisory, memoryNotes } from '../src/notes.ts';
import { nodeLabel } from '../src/placement.ts';
import type { GpuDevice } from '../src/types.ts';
import { a100, GiB, localNode, node } from './fixtures.ts';

function device(index: number, extra: Partial<GpuDevice> = {}): GpuDevice {
  return {
    uuid: `GPU-${index}`,
    index,
    parent_uuid: null,
    utilization_gpu: 3,
    memory_used: GiB,
    memory_total: 80 * GiB,
    taken_by: [],
    error: null,
    ...extra
  };
}

describe('memoryNotes', () => {
  it('says memory is advisory where the node does not enforce it', () => {
    const note = 'Memory is advisory on this machine: no cgroup v2 hierarchy.';
    assert.deepEqual(memoryNotes([localNode({ memory_note: note })]), [note]);
    assert.equal(memoryAdvisory(localNode()), true);
    assert.match(nodeLabel(localNode()), /^ws — 8 CPU · 32 GiB free · memory advisory$/);
  });

  it('says nothing for Kubernetes nodes, which have no such field', () => {
    assert.deepEqual(memoryNotes([node('cpu-1', 8, 32), node('gpu-1', 16, 64)]), []);
    assert.equal(memoryAdvisory(node('cpu-1', 8, 32)), false);
    assert.equal(memoryAdvisory(localNode({ memory_enforced: true, memory_note: null })), false);
    assert.doesNotMatch(nodeLabel(node('cpu-1', 8, 32)), /advisory/);
  });

  it('says one note once, and names the nodes when they differ', () => {
    const same = [localNode({ name: 'a' }), localNode({ name: 'b' })];
    assert.equal(memoryNotes(same).length, 1);
    const differ = [localNode({ name: 'a' }), localNode({ name: 'b', memory_note: 'Other.' })];
    assert.deepEqual(
      memoryNotes(differ).map(text => text.split(':')[0]),
      ['a', 'b']
    );
  });
});

describe('gpuUseLines', () => {
  it('describes each GPU in words: free, busy, memory, and who holds it', () => {
    const gpus = [
      {
        ...a100(1, 2),
        devices: [device(0), device(1, { taken_by: ['alice'], utilization_gpu: 40 })]
      }
    ];
    assert.deepEqual(gpuUseLines([localNode({ gpus })]), [
      {
        resource: 'nvidia.com/gpu',
        text:
          'nvidia.com/gpu — GPU 0: free, 3% busy, 1 GiB of 80 GiB used; ' +
          'GPU 1: in use by alice, 40% busy, 1 GiB of 80 GiB used'
      }
    ]);
  });

  it('numbers MIG slices of one GPU and leaves out what NVML does not say', () => {
    const slice = { utilization_gpu: null, parent_uuid: 'GPU-2', memory_total: 10 * GiB };
    const gpus = [
      {
        ...a100(2, 2),
        resource: 'nvidia.com/mig-1g.10gb',
        devices: [device(2, slice), device(2, { ...slice, memory_used: null })]
      }
    ];
    const [line] = gpuUseLines([localNode({ gpus })]);
    assert.equal(
      line.text,
      'nvidia.com/mig-1g.10gb — GPU 2 slice 1: free, 1 GiB of 10 GiB used; GPU 2 slice 2: free'
    );
  });

  it('keeps a failed GPU in the list with its error', () => {
    const gpus = [{ ...a100(0, 1), devices: [device(0, { error: 'GPU is lost' })] }];
    assert.match(gpuUseLines([localNode({ gpus })])[0].text, /GPU 0: unavailable \(GPU is lost\)$/);
  });

  it('adds nothing for Kubernetes nodes and names the node when several have devices', () => {
    assert.deepEqual(gpuUseLines([node('gpu-1', 16, 64, { gpus: [a100(1)] })]), []);
    // Kubernetes kinds carry `physical_count` (GFD), never a `devices` list; a non-list is ignored.
    const counted = [
      { ...a100(1), devices: 4 as unknown as GpuDevice[] },
      { ...a100(1), devices: null as unknown as GpuDevice[] }
    ];
    assert.deepEqual(gpuUseLines([node('gpu-1', 16, 64, { gpus: counted })]), []);
    const gpus = [{ ...a100(1, 1), devices: [device(0)] }];
    const lines = gpuUseLines([localNode({ name: 'a', gpus }), localNode({ name: 'b', gpus })]);
    assert.deepEqual(
      lines.map(line => line.text.split(' · ')[0]),
      ['a', 'b']
    );
  });
});
