/**
 * State of the Examples panel: the listing from the server, the action in progress
 * (copies run in batches of ids so large copies show progress) and the last failures.
 */
import { ISignal, Signal } from '@lumino/signaling';
import type { IDisposable } from '@lumino/disposable';

import {
  copyExamples,
  fetchExamples,
  IExamplesActionResult,
  IExamplesListing,
  resetExamples
} from '../api';
import { describeError } from '../request';
import { batches } from './tree';
import { backupsOf, failuresOf, IActionFailure, replacedOf } from './results';

/** While the background sync runs, the listing is re-read this often (ms). */
const SYNC_RECHECK_MS = 2000;

export interface IProgress {
  /** What is being done, for people ("Copying 40 examples"). */
  label: string;
  done: number;
  total: number;
}

export class ExamplesModel implements IDisposable {
  constructor(options: ExamplesModel.IOptions = {}) {
    this.batchSize = options.batchSize ?? 25;
  }

  /** Ids sent per copy request; smaller batches mean finer progress. */
  batchSize: number;

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /**
   * Paths (relative to the server root) whose file the server just replaced with the
   * original: a document open on one of them shows the old content until it is reloaded.
   */
  get replaced(): ISignal<this, string[]> {
    return this._replaced;
  }

  get listing(): IExamplesListing | null {
    return this._listing;
  }

  /** Why the last request failed, or `null`. */
  get error(): string | null {
    return this._error;
  }

  get loading(): boolean {
    return this._loading;
  }

  /** The copy or reset in progress, or `null`. */
  get progress(): IProgress | null {
    return this._progress;
  }

  /** Examples the last action could not handle, with the server's reason. */
  get failures(): IActionFailure[] {
    return this._failures;
  }

  /** Where the last reset kept the user's versions (paths relative to the server root). */
  get backups(): string[] {
    return this._backups;
  }

  get isDisposed(): boolean {
    return this._isDisposed;
  }

  /** Re-read the listing. */
  async refresh(): Promise<void> {
    if (this._isDisposed) {
      return;
    }
    this._loading = true;
    this._changed.emit();
    try {
      this._listing = await fetchExamples();
      this._error = null;
    } catch (error) {
      this._error = describeError(error);
    } finally {
      this._loading = false;
      this._scheduleSyncRecheck();
      this._emit();
    }
  }

  /**
   * Copy (or update, or restore) examples by id, in batches, then re-read the listing.
   * The server never overwrites an edited copy, whatever is asked.
   */
  copy(ids: string[], label: string): Promise<void> {
    return this._run(ids, label, batch => copyExamples({ ids: batch }));
  }

  /** Reset examples to the original; the server keeps the user's version beside it. */
  reset(ids: string[], label: string): Promise<void> {
    return this._run(ids, label, batch => resetExamples(batch));
  }

  dispose(): void {
    if (this._isDisposed) {
      return;
    }
    this._isDisposed = true;
    if (this._recheck !== null) {
      clearTimeout(this._recheck);
    }
    Signal.clearData(this);
  }

  private async _run(
    ids: string[],
    label: string,
    send: (batch: string[]) => Promise<IExamplesActionResult>
  ): Promise<void> {
    if (this._progress || ids.length === 0) {
      return;
    }
    this._failures = [];
    this._backups = [];
    this._error = null;
    this._progress = { label, done: 0, total: ids.length };
    this._emit();
    try {
      for (const batch of batches(ids, this.batchSize)) {
        try {
          const result = await send(batch);
          this._failures.push(...failuresOf(result, batch));
          this._backups.push(...backupsOf(result));
          const paths = new Map(this._listing?.items.map(item => [item.id, item.path]));
          const replaced = replacedOf(result)
            .map(id => paths.get(id))
            .filter((path): path is string => path !== undefined);
          if (replaced.length > 0 && !this._isDisposed) {
            this._replaced.emit(replaced);
          }
        } catch (error) {
          // The whole batch was refused (HTTP error): nothing of it was written.
          const message = describeError(error);
          this._failures.push(...batch.map(id => ({ id, message })));
        }
        this._progress = {
          ...this._progress,
          done: this._progress.done + batch.length
        };
        this._emit();
      }
    } finally {
      this._progress = null;
      await this.refresh();
    }
  }

  private _scheduleSyncRecheck(): void {
    if (this._recheck !== null) {
      clearTimeout(this._recheck);
      this._recheck = null;
    }
    if (this._listing?.sync.running && !this._isDisposed) {
      this._recheck = setTimeout(() => {
        this._recheck = null;
        void this.refresh();
      }, SYNC_RECHECK_MS);
    }
  }

  private _emit(): void {
    if (!this._isDisposed) {
      this._changed.emit();
    }
  }

  private _backups: string[] = [];
  private _changed = new Signal<this, void>(this);
  private _replaced = new Signal<this, string[]>(this);
  private _error: string | null = null;
  private _failures: IActionFailure[] = [];
  private _isDisposed = false;
  private _listing: IExamplesListing | null = null;
  private _loading = false;
  private _progress: IProgress | null = null;
  private _recheck: ReturnType<typeof setTimeout> | null = null;
}

export namespace ExamplesModel {
  export interface IOptions {
    /** Ids per copy request (default 25). */
    batchSize?: number;
  }
}
