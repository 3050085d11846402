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

/** Outcomes that mean "done": anything else with a message is reported to the user. */
const DONE_ACTIONS = new Set(['copied', 'updated', 'reset', 'restored', 'unchanged']);

type ResultEntry = { [key: string]: unknown };

function isEntry(value: unknown): value is ResultEntry {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function text(value: unknown): string | null {
  return typeof value === 'string' && value.length > 0 ? value : null;
}

/** The failure an entry describes, or `null` when the example was handled. */
function entryFailure(id: string, entry: ResultEntry): IActionFailure | null {
  const action = text(entry.action);
  const error = text(entry.error);
  const failed =
    entry.ok === false ||
    error !== null ||
    (action !== null && !DONE_ACTIONS.has(action));
  if (!failed) {
    return null;
  }
  const message =
    error ?? text(entry.message) ?? text(entry.reason) ?? action ?? 'not done';
  return { id, message };
}

/**
 * Failures in a result, whichever way the server lists them: `results` as a list of
 * `{id, action, message}` or as a map id -> entry. Ids of the batch that the server did
 * not mention are reported too, so nothing fails silently.
 */
export function failuresOf(
  result: IExamplesActionResult | null | undefined,
  batch: readonly string[]
): IActionFailure[] {
  const failures: IActionFailure[] = [];
  const seen = new Set<string>();
  const results = result?.results;
  if (Array.isArray(results)) {
    for (const entry of results) {
      if (isEntry(entry) && typeof entry.id === 'string') {
        seen.add(entry.id);
        const failure = entryFailure(entry.id, entry);
        if (failure) {
          failures.push(failure);
        }
      }
    }
  } else if (isEntry(results)) {
    for (const [id, entry] of Object.entries(results)) {
      seen.add(id);
      const failure = isEntry(entry) ? entryFailure(id, entry) : null;
      if (failure) {
        failures.push(failure);
      }
    }
  } else {
    return failures; // no per-id detail: the re-read listing shows the outcome
  }
  for (const id of batch) {
    if (!seen.has(id)) {
      failures.push({ id, message: 'no result from the server' });
    }
  }
  return failures;
}
