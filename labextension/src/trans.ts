/**
 * The part of JupyterLab's `TranslationBundle` the pure modules use, so they (and their
 * unit tests) do not need the translation service. `%1`, `%2`… are placeholders.
 */
export interface ITranslate {
  __(msgid: string, ...args: unknown[]): string;
  _n(msgid: string, msgidPlural: string, n: number, ...args: unknown[]): string;
}
