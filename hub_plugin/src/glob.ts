/** Python's `fnmatch.fnmatchcase` (the policy's node globs), compiled to a RegExp. */

const cache = new Map<string, RegExp>();

function translate(pattern: string): string {
  let out = '';
  let i = 0;
  while (i < pattern.length) {
    const c = pattern[i++];
    if (c === '*') {
      out += '.*';
    } else if (c === '?') {
      out += '.';
    } else if (c === '[') {
      let j = i;
      if (pattern[j] === '!') {
        j++;
      }
      if (pattern[j] === ']') {
        j++;
      }
      while (j < pattern.length && pattern[j] !== ']') {
        j++;
      }
      if (j >= pattern.length) {
        out += '\\[';
      } else {
        let body = pattern.slice(i, j).replace(/\\/g, '\\\\');
        i = j + 1;
        if (body.startsWith('!')) {
          body = '^' + body.slice(1);
        } else if (body.startsWith('^')) {
          body = '\\' + body;
        }
        out += `[${body}]`;
      }
    } else {
      out += c.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
    }
  }
  return `^(?:${out})$`;
}

/** Whether `name` matches the glob `pattern` (case-sensitive, `*`, `?`, `[seq]`, `[!seq]`). */
export function fnmatchcase(name: string, pattern: string): boolean {
  let regexp = cache.get(pattern);
  if (!regexp) {
    regexp = new RegExp(translate(pattern), 's');
    cache.set(pattern, regexp);
  }
  return regexp.test(name);
}
