/**
 * Reading the per-id results of `POST jupyter-tk/api/examples/copy` and `.../reset`.
 * Pure logic, no DOM.
 */
import type { IExamplesActionResult } from '../api';

/** An example the server did not copy or reset, and why (its words). */
export interface IActionFailure {
  id: string;
  message: string;
}

/**
 * Examples of a batch that were not handled: errors, refusals with a reason (e.g. an
 * edited copy asked to be copied over), and ids the server did not answer for.
 * A skip without a message ("already up to date") is not a failure.
 */
export function failuresOf(
  result: IExamplesActionResult | null | undefined,
  batch: readonly string[]
): IActionFailure[] {
  const failures: IActionFailure[] = [];
  const answered = new Set<string>();
  for (const entry of result?.results ?? []) {
    answered.add(entry.id);
    if (entry.action === 'error' || (entry.action === 'skipped' && entry.message)) {
      failures.push({ id: entry.id, message: entry.message || entry.action });
    }
  }
  for (const id of batch) {
    if (!answered.has(id)) {
      failures.push({ id, message: 'the server did not answer for this example' });
    }
  }
  return failures;
}

/** Paths where the server kept the user's versions (reset). */
export function backupsOf(result: IExamplesActionResult | null | undefined): string[] {
  return (result?.results ?? [])
    .map(entry => entry.backup)
    .filter((path): path is string => typeof path === 'string' && path.length > 0);
}

/** Ids whose file the server replaced with the original (update or reset). */
export function replacedOf(result: IExamplesActionResult | null | undefined): string[] {
  return (result?.results ?? [])
    .filter(entry => entry.action === 'updated')
    .map(entry => entry.id);
}
