import { describe, expect, it } from 'vitest';

import type { ExampleStatus, IExampleItem } from '../src/api';
import {
  actionsFor,
  batches,
  buildExampleTree,
  copiesFolder,
  IFolderNode,
  idsWithStatus,
  statusInfo,
  STATUSES
} from '../src/examples/tree';
import { trans } from './translate';

function item(id: string, status: ExampleStatus = 'new'): IExampleItem {
  const category = id.split('/')[0];
  return { id, category, path: `examples/img/${id}`, status, size: 0, error: null };
}

function names(node: IFolderNode): string[] {
  return node.children.map(c => (c.kind === 'folder' ? `${c.name}/` : c.name));
}

describe('buildExampleTree', () => {
  const items = [
    item('ml-gpu/train.ipynb', 'modified'),
    item('common/zeta.ipynb'),
    item('common/llm/chat.ipynb', 'update-available'),
    item('common/alpha.ipynb', 'unchanged'),
    item('common/llm/rag/index.ipynb'),
    item('common/data10.csv'),
    item('common/data9.csv')
  ];

  it('orders categories as the server lists them, then folders before files by name', () => {
    const roots = buildExampleTree(items, ['common', 'ml-gpu', 'empty']);
    expect(roots.map(r => r.name)).toEqual(['common', 'ml-gpu', 'empty']);
    expect(names(roots[0])).toEqual([
      'llm/',
      'alpha.ipynb',
      'data9.csv',
      'data10.csv',
      'zeta.ipynb'
    ]);
    const llm = roots[0].children[0] as IFolderNode;
    expect(llm.key).toBe('common/llm');
    expect(names(llm)).toEqual(['rag/', 'chat.ipynb']);
    expect(roots[2].children).toEqual([]);
  });

  it('counts files by status on every folder above them', () => {
    const [common, mlGpu] = buildExampleTree(items, ['common', 'ml-gpu']);
    expect(common.total).toBe(6);
    expect(common.counts).toEqual({ new: 4, 'update-available': 1, unchanged: 1 });
    expect((common.children[0] as IFolderNode).counts).toEqual({
      'update-available': 1,
      new: 1
    });
    expect(mlGpu.counts).toEqual({ modified: 1 });
  });

  it('adds categories the listing did not name', () => {
    const roots = buildExampleTree([item('extra/a.ipynb')], ['common']);
    expect(roots.map(r => r.name)).toEqual(['common', 'extra']);
  });

  it('keeps the full item on each file node', () => {
    const [common] = buildExampleTree([item('common/a.ipynb', 'conflict')]);
    expect(common.children[0]).toEqual({
      kind: 'file',
      name: 'a.ipynb',
      item: item('common/a.ipynb', 'conflict')
    });
  });
});

describe('statuses', () => {
  it('gives every status a readable label and an explanation', () => {
    const labels = STATUSES.map(s => statusInfo(s, trans).label);
    expect(labels).toEqual([
      'New',
      'Up to date',
      'Update available',
      'Edited',
      'Edited, update available',
      'Deleted'
    ]);
    for (const status of STATUSES) {
      expect(statusInfo(status, trans).description.length).toBeGreaterThan(20);
    }
  });

  it.each<[ExampleStatus, string[]]>([
    ['new', ['copy']],
    ['unchanged', ['open']],
    ['update-available', ['update', 'open']],
    ['modified', ['open', 'reset']],
    ['conflict', ['open', 'reset']],
    ['deleted', ['restore']]
  ])('%s allows %j', (status, actions) => {
    expect(actionsFor(status)).toEqual(actions);
  });

  it('never offers to copy over an edit', () => {
    for (const status of ['modified', 'conflict'] as ExampleStatus[]) {
      expect(actionsFor(status)).not.toContain('copy');
      expect(actionsFor(status)).not.toContain('update');
    }
  });
});

describe('batches and selections', () => {
  it('splits ids into batches of at most n', () => {
    expect(batches([1, 2, 3, 4, 5], 2)).toEqual([[1, 2], [3, 4], [5]]);
    expect(batches([], 3)).toEqual([]);
    expect(() => batches([1], 0)).toThrow(RangeError);
  });

  it('selects ids by status in list order', () => {
    const list = [item('c/a', 'new'), item('c/b', 'unchanged'), item('c/c', 'new')];
    expect(idsWithStatus(list, ['new'])).toEqual(['c/a', 'c/c']);
  });
});

describe('copiesFolder', () => {
  it('reads the folder of the copies from the item paths', () => {
    expect(copiesFolder([item('common/a.ipynb')])).toBe('examples/img');
    expect(copiesFolder([{ ...item('c/a'), path: 'c/a' }])).toBe('');
    expect(copiesFolder([])).toBeNull();
    expect(copiesFolder([{ ...item('c/a'), path: 'elsewhere/b' }])).toBeNull();
  });
});
