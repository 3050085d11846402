/**
 * The browser's side of the shared cases in `tests/vectors/form_rules.json`: the same inputs
 * `tests/vectors/test_form_rules.py` runs against the server's Python must give the same
 * outputs here, so the live form and the server never say different things.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';

import { customLimitsText, evaluate } from '../src/evaluate.ts';
import { normalizeRegistry, parseImageReference } from '../src/imageReference.ts';
import {
  cpuNotes,
  gpuNotes,
  gpuUseLines,
  liveGpuLines,
  liveNodeLabel,
  memoryNotes
} from '../src/notes.ts';
import {
  gpuAbsence,
  gpuKindLabel,
  gpuKinds,
  nodeLabel,
  nodeUnfitReason,
  sizeLimits,
  whyNothingFits
} from '../src/placement.ts';
import type {
  Choice,
  FormConfig,
  GpuInfo,
  NodeInfo,
  ResourceRequest,
  Snapshot,
  Toleration
} from '../src/types.ts';
import {
  formatBytes,
  formatCores,
  formatGpuKind,
  formatMemoryQuantity,
  parseQuantity
} from '../src/units.ts';

interface PyRequest {
  cpu: number;
  memory: number;
  gpu_resource: string | null;
  gpu_count: number;
}
interface Fit {
  node: NodeInfo;
  nodes: NodeInfo[];
  request: PyRequest;
  ratio: number;
  tolerations: Toleration[];
  expected: string | null;
}
interface Expected {
  problem: string | null;
  presetReasons: Record<string, string>;
  customLimits: string;
  cpuBound: string;
  memoryBound: string;
  gpuBound: string;
  gpuKindLabels: string[];
  gpuResource: string;
  gpuNotes: string[];
  memoryNote: string;
  gpuUse: string[];
  summary?: string;
  nodeReasons?: Record<string, string | null>;
}

const vectors = JSON.parse(
  readFileSync(new URL('../../tests/vectors/form_rules.json', import.meta.url), 'utf-8')
);

function request(data: PyRequest): ResourceRequest {
  return {
    cpu: data.cpu,
    memory: data.memory,
    gpuResource: data.gpu_resource,
    gpuCount: data.gpu_count
  };
}

describe('shared vectors: quantities', () => {
  const units = vectors.units;
  it('formats cores', () => {
    for (const [cores, text] of units.format_cores as [number, string][]) {
      assert.equal(formatCores(cores), text, String(cores));
    }
  });
  it('formats bytes', () => {
    for (const [amount, text] of units.format_bytes as [number, string][]) {
      assert.equal(formatBytes(amount), text, String(amount));
    }
  });
  it('formats memory quantities', () => {
    for (const [amount, text] of units.format_memory_quantity as [number, string][]) {
      assert.equal(formatMemoryQuantity(amount), text, String(amount));
    }
  });
  it('parses quantities', () => {
    for (const [text, value] of units.parse_quantity as [string, number | null][]) {
      assert.equal(parseQuantity(text), value, JSON.stringify(text));
    }
  });
  it('describes GPU kinds', () => {
    for (const [gpu, text] of units.format_gpu_kind as [GpuInfo, string][]) {
      assert.equal(formatGpuKind(gpu), text);
    }
  });
});

describe('shared vectors: placement', () => {
  const placement = vectors.placement;
  it('says why a node cannot take a request', () => {
    for (const c of placement.node_unfit_reason as Fit[]) {
      const got = nodeUnfitReason(c.node, request(c.request), c.ratio, c.tolerations);
      assert.equal(got, c.expected, `${c.node.name} ${JSON.stringify(c.request)}`);
    }
  });
  it('says why nothing fits', () => {
    for (const c of placement.why_nothing_fits as Fit[]) {
      assert.equal(whyNothingFits(c.nodes, request(c.request), c.ratio, c.tolerations), c.expected);
    }
  });
  it('computes the one size maximum', () => {
    for (const c of placement.size_limits) {
      assert.deepEqual(sizeLimits(c.caps, c.nodes, c.ratio), c.expected);
    }
  });
  it('says when a GPU exists nowhere', () => {
    for (const c of placement.gpu_absence) {
      assert.equal(gpuAbsence(c.nodes, c.resource, c.source), c.expected);
    }
  });
  it('labels nodes and GPU kinds', () => {
    for (const c of placement.node_label) {
      assert.equal(nodeLabel(c.node), c.expected);
    }
    for (const c of placement.gpu_kind_labels) {
      assert.deepEqual(gpuKinds(c.nodes).map(gpuKindLabel), c.expected);
    }
  });
});

describe('shared vectors: node notes', () => {
  const notes = vectors.node_notes;
  it('says where memory is advisory, why GPUs are missing, and how GPUs are used', () => {
    for (const c of notes.memory_notes) {
      assert.deepEqual(memoryNotes(c.nodes), c.expected);
    }
    for (const c of notes.gpu_notes) {
      assert.deepEqual(gpuNotes(c.nodes), c.expected);
    }
    for (const c of notes.gpu_use_lines) {
      assert.deepEqual(gpuUseLines(c.nodes), c.expected);
    }
    for (const c of notes.cpu_notes) {
      assert.deepEqual(cpuNotes(c.nodes), c.expected);
    }
    for (const c of notes.live_node_label) {
      assert.equal(liveNodeLabel(c.label, c.name, c.gpu_metrics), c.expected);
    }
    for (const c of notes.live_gpu_lines) {
      assert.deepEqual(liveGpuLines(c.selected, c.gpu_metrics), c.expected);
    }
  });
});

describe('shared vectors: image references', () => {
  for (const c of vectors.image_reference as {
    reference: string;
    error: string | null;
    registry: string | null;
  }[]) {
    it(`reads ${JSON.stringify(c.reference.slice(0, 40))}`, () => {
      let error: string | null = null;
      let registry: string | null = null;
      try {
        registry = normalizeRegistry(parseImageReference(c.reference).registry);
      } catch (e) {
        error = (e as Error).message;
      }
      assert.deepEqual({ error, registry }, { error: c.error, registry: c.registry });
    });
  }
});

describe('shared vectors: the whole form', () => {
  const { contexts, snapshots, cases } = vectors.evaluate as {
    contexts: Record<string, { config: FormConfig }>;
    snapshots: Record<string, Snapshot>;
    cases: {
      name: string;
      context: string;
      snapshot: string;
      choice: Choice;
      expected: Expected;
    }[];
  };
  for (const c of cases) {
    it(c.name, () => {
      const config = contexts[c.context].config;
      const result = evaluate(config, snapshots[c.snapshot], c.choice);
      const got: Expected = {
        problem: result.problems[0] ?? null,
        presetReasons: result.presetReasons,
        customLimits: customLimitsText(result.customLimits),
        cpuBound: result.boundTexts.cpu,
        memoryBound: result.boundTexts.memory,
        gpuBound: result.boundTexts.gpus,
        gpuKindLabels: result.gpuKinds.map(row => row.label),
        gpuResource: result.gpuResource,
        gpuNotes: result.gpuNotes,
        memoryNote: result.memoryNotes.join(' '),
        gpuUse: result.gpuUse.map(line => line.text)
      };
      if (c.expected.summary !== undefined) {
        got.summary = result.summary;
        got.nodeReasons = Object.fromEntries(result.nodes.map(row => [row.name, row.reason]));
      }
      assert.deepEqual(got, c.expected);
      assert.ok(result.problems.length <= 1);
    });
  }
});
