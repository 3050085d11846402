import { describe, expect, it } from 'vitest';

import {
  ephemeralWarning,
  folderOf,
  IStorageFolder,
  keepFolder,
  tierText
} from '../src/storage/tiers';
import { trans } from './translate';

const THINKUBE: IStorageFolder[] = [
  { path: '', tier: 'ephemeral' },
  { path: 'scratch', tier: 'ephemeral' },
  { path: 'thinkube/notebooks', tier: 'persistent' },
  { path: 'thinkube/datasets', tier: 'shared' },
  { path: 'thinkube/examples-repo', tier: 'read-only' }
];

describe('folderOf', () => {
  it('picks the innermost folder that holds the path', () => {
    expect(folderOf('thinkube/notebooks/a/b.ipynb', THINKUBE)?.tier).toBe('persistent');
    expect(folderOf('thinkube/notebooks', THINKUBE)?.tier).toBe('persistent');
    expect(folderOf('thinkube/notebooks-old/x.ipynb', THINKUBE)?.tier).toBe(
      'ephemeral'
    );
    expect(folderOf('thinkube', THINKUBE)?.path).toBe('');
    expect(folderOf('/scratch/x', THINKUBE)?.path).toBe('scratch');
  });

  it('knows nothing without folders or outside them', () => {
    expect(folderOf('a.ipynb', [])).toBeNull();
    expect(
      folderOf('Other/a.ipynb', [{ path: 'Persist', tier: 'persistent' }])
    ).toBeNull();
  });
});

describe('texts', () => {
  it('tells users where to keep their work', () => {
    expect(keepFolder(THINKUBE)).toBe('thinkube/notebooks');
    expect(tierText('ephemeral', THINKUBE, trans).title).toBe(
      'Deleted when your server stops: keep your work in thinkube/notebooks.'
    );
    expect(tierText('ephemeral', [], trans).title).toBe(
      'Deleted when your server stops.'
    );
    expect(tierText('read-only', THINKUBE, trans).label).toBe('Read only');
  });

  it('warns only about notebooks in ephemeral folders', () => {
    expect(ephemeralWarning('scratch/run.ipynb', THINKUBE, trans)).toBe(
      '"run.ipynb" is in an ephemeral folder: it will be lost when your server stops. Copy it to thinkube/notebooks to keep it.'
    );
    expect(
      ephemeralWarning('thinkube/notebooks/run.ipynb', THINKUBE, trans)
    ).toBeNull();
    expect(ephemeralWarning('run.ipynb', [], trans)).toBeNull();
  });
});
