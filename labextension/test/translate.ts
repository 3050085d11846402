import type { ITranslate } from '../src/trans';

/** The untranslated bundle: fills `%1`, `%2`… like JupyterLab's `nullTranslator`. */
export const trans: ITranslate = {
  __: (msgid, ...args) => fill(msgid, args),
  _n: (msgid, plural, n, ...args) => fill(n === 1 ? msgid : plural, [n, ...args])
};

function fill(text: string, args: unknown[]): string {
  return text.replace(/%(\d+)/g, (match, index) => {
    const value = args[Number(index) - 1];
    return value === undefined ? match : String(value);
  });
}
