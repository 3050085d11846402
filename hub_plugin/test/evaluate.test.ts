import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { customLimitsText, evaluate, freshnessText } from '../src/evaluate.ts';
import type { Choice } from '../src/types.ts';
import { a100, config, GiB, GPU_TAINT, localNode, node, snapshot } from './fixtures.ts';

function choice(extra: Partial<Choice> = {}): Choice {
  return {
    profile: 'custom',
    image: 'tk-jupyter-scipy',
    customImage: '',
    node: '',
    cpu: '2',
    memory: '4Gi',
    gpuResource: '',
    gpuCount: '0',
    ...extra
  };
}

const cluster = snapshot([
  node('cpu-1', 8, 32),
  node('gpu-1', 16, 64, { taints: [GPU_TAINT], gpus: [a100(1)] }),
  node('old', 8, 32, { ready: false })
]);

describe('evaluate', () => {
  it('disables nodes that cannot take the choice, with the reason', () => {
    const result = evaluate(config(), cluster, choice({ profile: 'gpu-1' }));
    const byName = Object.fromEntries(result.nodes.map(row => [row.name, row]));
    assert.equal(byName['gpu-1'].disabled, false);
    assert.equal(byName['cpu-1'].reason, 'no nvidia.com/gpu');
    assert.equal(byName['cpu-1'].disabled, true);
    assert.equal(byName['old'].reason, 'not ready');
    assert.deepEqual(result.problems, []);
  });

  it('disables a GPU node once its last GPU is taken', () => {
    const taken = snapshot([node('gpu-1', 16, 64, { taints: [GPU_TAINT], gpus: [a100(0)] })]);
    const result = evaluate(config(), taken, choice({ profile: 'gpu-1' }));
    assert.equal(result.nodes[0].disabled, true);
    assert.equal(result.nodes[0].reason, 'only 0 of 4 nvidia.com/gpu free');
    assert.match(result.problems[0], /^No node has room for 4 CPU and 16 GiB of memory with 1/);
    assert.equal(result.presetReasons['gpu-1'], 'no node has room right now');
  });

  it('keeps the selected node enabled and says why it does not fit', () => {
    const result = evaluate(config(), cluster, choice({ node: 'old' }));
    assert.equal(result.nodes.find(row => row.name === 'old')?.disabled, false);
    assert.deepEqual(result.problems, [
      'The node old cannot take 2 CPU and 4 GiB of memory right now: not ready. ' +
        'Choose another node, “Any node that fits”, or less.'
    ]);
  });

  it('bounds the controls by the size limits, not by what is free now', () => {
    const result = evaluate(config(), cluster, choice());
    assert.deepEqual(result.bounds, { cpu: 16, memory: 64 * GiB, gpus: 2 });
    const small = evaluate(config(), cluster, choice({ node: 'cpu-1' }));
    assert.deepEqual(small.bounds, { cpu: 16, memory: 64 * GiB, gpus: 2 });
  });

  it('disables GPU kinds absent from the chosen node', () => {
    const result = evaluate(config(), cluster, choice({ node: 'cpu-1' }));
    assert.equal(result.gpuKinds.length, 1);
    assert.equal(result.gpuKinds[0].disabled, true);
    assert.match(result.gpuKinds[0].label, /not on cpu-1$/);
  });

  it('only lists nodes the policy lets the user pick', () => {
    const result = evaluate(config({ nodeGlobs: ['gpu-*'] }), cluster, choice());
    assert.deepEqual(
      result.nodes.map(row => row.name),
      ['gpu-1']
    );
  });

  const problems: [string, Partial<Choice>, RegExp][] = [
    ['a CPU over the cap', { cpu: '32' }, /over your limit of 16 CPU/],
    ['a CPU that is not a number', { cpu: 'lots' }, /CPU must be a number/],
    [
      'memory that is not a quantity',
      { memory: '4 GB' },
      /Memory must be a number such as 8Gi or 512Mi, got '4 GB'/
    ],
    ['too little memory', { memory: '1Mi' }, /at least 256 MiB/],
    ['more GPUs than allowed', { gpuResource: 'nvidia.com/gpu', gpuCount: '3' }, /limit is 2/],
    ['a GPU image without a GPU', { image: 'tk-jupyter-ml-gpu' }, /needs a GPU/],
    ['an empty custom image', { image: '', customImage: ' ' }, /Type the custom image/],
    ['a node that is gone', { node: 'vanished' }, /no node called 'vanished'/]
  ];
  for (const [what, extra, expected] of problems) {
    it(`reports ${what}`, () => {
      const result = evaluate(config(), cluster, choice(extra));
      assert.ok(
        result.problems.some(problem => expected.test(problem)),
        JSON.stringify(result.problems)
      );
    });
  }

  it('offers a custom size up to the cap, or the largest node where that is smaller', () => {
    // The cap is 16 CPU, 64 GiB, 2 GPUs; the largest node has 16 CPU, 64 GiB and 1 A100 of 4.
    const result = evaluate(config(), cluster, choice());
    assert.deepEqual(result.customLimits, { cpu: 16, memory: 64 * GiB, gpus: 2 });
    assert.equal(customLimitsText(result.customLimits), 'Up to 16 CPU · 64 GiB · 2 GPUs');
    const small = snapshot([node('ws', 2, 23.5, { gpus: [a100(0, 1)] })]);
    const limits = evaluate(config(), small, choice()).customLimits;
    assert.deepEqual(limits, { cpu: 2, memory: 23.5 * GiB, gpus: 1 });
    assert.equal(customLimitsText(limits), 'Up to 2 CPU · 23.5 GiB · 1 GPU');
    // A pod requests half its limits at ratio 0.5: a 2-core node takes a 4-core limit.
    const half = evaluate(config({ guaranteeRatio: 0.5 }), small, choice()).customLimits;
    assert.deepEqual(half, { cpu: 4, memory: 47 * GiB, gpus: 1 });
    // The cap still wins over a big node, and with no node known it is all there is.
    const big = evaluate(config(), snapshot([node('big', 128, 1024)]), choice()).customLimits;
    assert.deepEqual(big, { cpu: 16, memory: 64 * GiB, gpus: 0 });
    assert.equal(customLimitsText(big), 'Up to 16 CPU · 64 GiB');
    const none = evaluate(config(), snapshot([]), choice()).customLimits;
    assert.deepEqual(none, { cpu: 16, memory: 64 * GiB, gpus: 2 });
  });

  it('refuses with the one maximum the form shows', () => {
    const small = snapshot([node('ws', 2, 8)]);
    const result = evaluate(config(), small, choice({ cpu: '32' }));
    assert.equal(customLimitsText(result.customLimits), 'Up to 2 CPU · 8 GiB');
    assert.deepEqual(result.problems, [
      '32 CPU is more than any node you may use can hold (2 CPU).'
    ]);
  });

  it('says memory is advisory on a local node, and nothing on Kubernetes', () => {
    const local = snapshot([localNode()], { source: 'local' });
    const result = evaluate(config(), local, choice());
    assert.deepEqual(result.memoryNotes, [
      'Memory is advisory on this machine: no cgroup v2 hierarchy.'
    ]);
    assert.match(result.nodes[0].label, /memory advisory/);
    assert.deepEqual(evaluate(config(), cluster, choice()).memoryNotes, []);
    // Only the notes of where the server may run: a chosen Kubernetes node has none.
    const mixed = snapshot([localNode(), node('cpu-1', 8, 32)]);
    assert.deepEqual(evaluate(config(), mixed, choice({ node: 'cpu-1' })).memoryNotes, []);
    assert.equal(evaluate(config(), mixed, choice({ node: 'ws' })).memoryNotes.length, 1);
  });

  it('lists live GPU use of where the server may run', () => {
    const devices = [
      {
        uuid: 'GPU-0',
        index: 0,
        utilization_gpu: 7,
        memory_used: 2 * GiB,
        memory_total: 80 * GiB,
        taken_by: ['bob'],
        parent_uuid: null,
        error: null
      }
    ];
    const local = snapshot([localNode({ gpus: [{ ...a100(0, 1), devices }] })]);
    const result = evaluate(config(), local, choice());
    assert.deepEqual(
      result.gpuUse.map(line => line.text),
      ['nvidia.com/gpu — GPU 0: in use by bob, 7% busy, 2 GiB of 80 GiB used']
    );
    assert.deepEqual(evaluate(config(), cluster, choice()).gpuUse, []);
  });

  it('summarises the request', () => {
    const result = evaluate(config(), cluster, choice({ profile: 'gpu-1', node: 'gpu-1' }));
    assert.equal(
      result.summary,
      'Will request 4 CPU, 16 GiB memory, 1 nvidia.com/gpu on gpu-1 with SciPy.'
    );
  });
});

describe('freshnessText', () => {
  it('says how old the data is and whether it is stale', () => {
    assert.equal(freshnessText(0.2, false, null), 'Free resources as of just now.');
    assert.equal(freshnessText(42, false, null), 'Free resources as of 42 s ago.');
    assert.match(freshnessText(300, true, null), /out of date \(last update 5 min ago\)/);
    assert.match(
      freshnessText(3, false, 'HTTP 502'),
      /Could not refresh the cluster data \(HTTP 502\)/
    );
  });
});
