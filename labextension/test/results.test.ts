import { describe, expect, it } from 'vitest';

import type { IExampleResult } from '../src/api';
import { backupsOf, failuresOf, replacedOf } from '../src/examples/results';

function result(
  id: string,
  action: IExampleResult['action'],
  message: string | null = null,
  backup: string | null = null
): IExampleResult {
  return { id, status: 'unchanged', action, message, backup };
}

describe('failuresOf', () => {
  it('reports errors and reasoned refusals, not plain skips or successes', () => {
    const failures = failuresOf(
      {
        results: [
          result('c/copied', 'copied'),
          result('c/updated', 'updated'),
          result('c/same', 'skipped'),
          result('c/edited', 'skipped', 'you edited your copy'),
          result('c/full', 'error', 'not enough free space')
        ]
      },
      ['c/copied', 'c/updated', 'c/same', 'c/edited', 'c/full']
    );
    expect(failures).toEqual([
      { id: 'c/edited', message: 'you edited your copy' },
      { id: 'c/full', message: 'not enough free space' }
    ]);
  });

  it('reports ids the server did not answer for', () => {
    expect(failuresOf({ results: [result('c/a', 'copied')] }, ['c/a', 'c/b'])).toEqual([
      { id: 'c/b', message: 'the server did not answer for this example' }
    ]);
    expect(failuresOf(null, ['c/a'])).toHaveLength(1);
  });
});

describe('backupsOf', () => {
  it('lists where the user versions were kept', () => {
    expect(
      backupsOf({
        results: [
          result('c/a.ipynb', 'updated', null, 'ex/img/c/a.mine-20250101-120000.ipynb'),
          result('c/b.ipynb', 'copied')
        ]
      })
    ).toEqual(['ex/img/c/a.mine-20250101-120000.ipynb']);
  });
});

describe('replacedOf', () => {
  it('lists the examples whose file was replaced (updated or reset), nothing else', () => {
    const replaced = replacedOf({
      results: [
        result('c/new', 'copied'),
        result('c/updated', 'updated'),
        result('c/reset', 'updated', null, 'x/c/reset.mine-20260101-000000.ipynb'),
        result('c/same', 'skipped'),
        result('c/full', 'error', 'not enough free space')
      ]
    });
    expect(replaced).toEqual(['c/updated', 'c/reset']);
    expect(replacedOf(null)).toEqual([]);
  });
});
