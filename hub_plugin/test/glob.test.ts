import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { fnmatchcase } from '../src/glob.ts';

describe('fnmatchcase (the policy node globs)', () => {
  const cases: [string, string, boolean][] = [
    ['gpu-1', '*', true],
    ['gpu-1', 'gpu-*', true],
    ['cpu-1', 'gpu-*', false],
    ['gpu-1', 'gpu-?', true],
    ['gpu-10', 'gpu-?', false],
    ['gpu-1', 'gpu-[12]', true],
    ['gpu-3', 'gpu-[!12]', true],
    ['gpu-1', 'gpu-[!12]', false],
    ['GPU-1', 'gpu-*', false],
    ['a.b', 'a?b', true],
    ['a.b', 'a.b', true],
    ['axb', 'a.b', false],
    ['node[', 'node[', true],
    ['x/y', '*', true]
  ];
  for (const [name, pattern, expected] of cases) {
    it(`${pattern} ${expected ? 'matches' : 'does not match'} ${name}`, () => {
      assert.equal(fnmatchcase(name, pattern), expected);
    });
  }
});
