import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import {
  gpuKinds,
  nodeLabel,
  nodeUnfitReason,
  schedulingAmounts,
  taintIsTolerated,
  whyNothingFits
} from '../src/placement.ts';
import type { ResourceRequest } from '../src/types.ts';
import { a100, GiB, GPU_TAINT, node } from './fixtures.ts';

const cpuOnly: ResourceRequest = { cpu: 2, memory: 4 * GiB, gpuResource: null, gpuCount: 0 };
const oneGpu: ResourceRequest = {
  cpu: 2,
  memory: 4 * GiB,
  gpuResource: 'nvidia.com/gpu',
  gpuCount: 1
};
const gpuTolerations = [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }];

describe('nodeUnfitReason', () => {
  it('accepts a node with room', () => {
    assert.equal(nodeUnfitReason(node('a', 4, 8), cpuOnly, 1, []), null);
  });

  const table: [string, Parameters<typeof node>[3], ResourceRequest, string][] = [
    ['not ready', { ready: false }, cpuOnly, 'not ready'],
    ['cordoned', { schedulable: false }, cpuOnly, 'cordoned'],
    ['short of CPU', { free: { cpu: 1.5, memory: 8 * GiB } }, cpuOnly, 'only 1.5 CPU free'],
    ['short of memory', { free: { cpu: 4, memory: 2 * GiB } }, cpuOnly, 'only 2 GiB memory free'],
    ['without the GPU kind', {}, oneGpu, 'no nvidia.com/gpu'],
    ['with its GPUs taken', { gpus: [a100(0)] }, oneGpu, 'only 0 of 4 nvidia.com/gpu free'],
    [
      'tainted for GPUs only',
      { taints: [GPU_TAINT], gpus: [a100(4)] },
      cpuOnly,
      'tainted nvidia.com/gpu:NoSchedule'
    ]
  ];
  for (const [what, extra, request, reason] of table) {
    it(`refuses a node ${what}`, () => {
      assert.equal(nodeUnfitReason(node('a', 4, 8, extra), request, 1, []), reason);
    });
  }

  it('lets a GPU request tolerate the GPU taint', () => {
    const gpuNode = node('g', 8, 32, { taints: [GPU_TAINT], gpus: [a100(1)] });
    assert.equal(nodeUnfitReason(gpuNode, oneGpu, 1, gpuTolerations), null);
  });

  it('ignores PreferNoSchedule taints', () => {
    const soft = node('a', 4, 8, {
      taints: [{ key: 'x', value: null, effect: 'PreferNoSchedule' }]
    });
    assert.equal(nodeUnfitReason(soft, cpuOnly, 1, []), null);
  });

  it('checks what the pod requests, limits times the guarantee ratio', () => {
    const small = node('a', 1, 2);
    assert.match(nodeUnfitReason(small, cpuOnly, 1, []) ?? '', /only 1 CPU/);
    assert.equal(nodeUnfitReason(small, cpuOnly, 0.5, []), null);
  });
});

describe('tolerations', () => {
  it('match like Kubernetes', () => {
    const taint = { key: 'k', value: 'v', effect: 'NoSchedule' };
    assert.ok(taintIsTolerated(taint, [{ operator: 'Exists' }]));
    assert.ok(taintIsTolerated(taint, [{ key: 'k', operator: 'Equal', value: 'v' }]));
    assert.ok(!taintIsTolerated(taint, [{ key: 'k', value: 'w' }]));
    assert.ok(!taintIsTolerated(taint, [{ key: 'k', operator: 'Exists', effect: 'NoExecute' }]));
  });
});

describe('schedulingAmounts', () => {
  it('rounds up to millicores and bytes', () => {
    assert.deepEqual(schedulingAmounts({ ...cpuOnly, cpu: 0.333, memory: 3 }, 0.5), [0.167, 2]);
  });
});

describe('summaries', () => {
  it('counts reasons like the scheduler', () => {
    const nodes = [node('a', 1, 8), node('b', 1, 8), node('c', 8, 8, { ready: false })];
    assert.equal(
      whyNothingFits(nodes, cpuOnly, 1, []),
      '0/3 nodes you may use can take it: 2 not enough CPU, 1 not ready'
    );
  });

  it('lists GPU kinds with free counts across nodes', () => {
    const kinds = gpuKinds([
      node('a', 8, 8, { gpus: [a100(1)] }),
      node('b', 8, 8, { gpus: [a100(3)] })
    ]);
    assert.equal(kinds.length, 1);
    assert.equal(kinds[0].totalFree, 4);
    assert.equal(kinds[0].maxFreeOnOneNode, 3);
  });

  it('labels a node with free amounts and state', () => {
    const label = nodeLabel(node('g', 12, 40, { gpus: [a100(2)], schedulable: false }));
    assert.equal(label, 'g — 12 CPU · 40 GiB free · 2/4 NVIDIA-A100-SXM4-80GB · 80 GiB (cordoned)');
  });
});
