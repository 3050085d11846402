/**
 * One model of the GPU state for the whole page: a single Lumino `Poll` feeds both the
 * sidebar panel and the status-bar item, and only runs while one of them needs it.
 */
import { IPoll, Poll } from '@lumino/polling';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { ISignal, Signal } from '@lumino/signaling';

import { fetchGpuHistory, fetchGpus, IGpuSnapshot } from '../api';
import { describeError } from '../request';
import { DeviceHistories } from './history';

/** How far back the sparklines reach, in seconds (the server keeps ~10 minutes). */
export const HISTORY_WINDOW_SECONDS = 600;

/** Slowest retry after repeated failures, in milliseconds. */
const MAX_BACKOFF_MS = 60_000;

/** The smallest refresh interval the settings allow, in seconds. */
export const MIN_INTERVAL_SECONDS = 0.5;

export class GpuModel implements IDisposable {
  constructor(options: GpuModel.IOptions = {}) {
    this._interval = Math.max(MIN_INTERVAL_SECONDS, options.interval ?? 2);
    this.histories = new DeviceHistories(this._historyCapacity());
    this._poll = new Poll({
      auto: false,
      factory: () => this._refresh(),
      frequency: this._frequency(),
      name: 'jupyter-tk:gpu',
      standby: 'when-hidden'
    });
  }

  /** Sparkline data per device UUID. */
  readonly histories: DeviceHistories;

  /** Emitted after every poll, successful or not. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** The last snapshot received, kept while later polls fail. */
  get snapshot(): IGpuSnapshot | null {
    return this._snapshot;
  }

  /** Why the last poll failed, or `null`. */
  get error(): string | null {
    return this._error;
  }

  /**
   * Seconds between two points of a sparkline when nothing is wrong: the slower of the
   * server's sampling (history) and this page's polling. Longer gaps mean missing data.
   */
  get sampleSpacing(): number {
    return Math.max(this._interval, this._serverInterval);
  }

  /** Refresh interval in seconds. */
  get interval(): number {
    return this._interval;
  }

  set interval(seconds: number) {
    const value = Math.max(MIN_INTERVAL_SECONDS, seconds);
    if (value === this._interval) {
      return;
    }
    this._interval = value;
    this._poll.frequency = this._frequency();
  }

  get isDisposed(): boolean {
    return this._poll.isDisposed;
  }

  /**
   * Declare a consumer (the visible panel, the status-bar item). Polling runs while at
   * least one consumer holds its handle; dispose the handle to let go.
   */
  acquire(): IDisposable {
    this._consumers += 1;
    if (this._consumers === 1) {
      void this._poll.start();
    }
    return new DisposableDelegate(() => {
      this._consumers -= 1;
      if (this._consumers === 0 && !this._poll.isDisposed) {
        void this._poll.stop();
      }
    });
  }

  /** Poll now instead of waiting for the next tick. */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  /**
   * Load the server's recent history once, so a panel opened late still draws its
   * sparklines. Failures are ignored: live samples fill the chart anyway.
   */
  loadHistory(): Promise<void> {
    if (!this._historyLoad) {
      this._historyLoad = fetchGpuHistory().then(
        history => {
          this._serverInterval = history.interval;
          this.histories.seed(history);
          this._changed.emit();
        },
        error => {
          console.warn('jupyter-tk: GPU history unavailable:', error);
        }
      );
    }
    return this._historyLoad;
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    Signal.clearData(this);
  }

  private async _refresh(): Promise<void> {
    try {
      const snapshot = await fetchGpus();
      this._snapshot = snapshot;
      this._error = null;
      this.histories.record(snapshot);
    } catch (error) {
      this._error = describeError(error);
      throw error; // lets the poll back off
    } finally {
      this._changed.emit();
    }
  }

  private _frequency(): IPoll.Frequency {
    return {
      interval: this._interval * 1000,
      backoff: true,
      max: Math.max(MAX_BACKOFF_MS, this._interval * 1000)
    };
  }

  private _historyCapacity(): number {
    // Room for the window at the fastest allowed interval, plus the server's seed.
    return Math.ceil(HISTORY_WINDOW_SECONDS / MIN_INTERVAL_SECONDS) + 1;
  }

  private _changed = new Signal<this, void>(this);
  private _consumers = 0;
  private _error: string | null = null;
  private _historyLoad: Promise<void> | null = null;
  private _interval: number;
  private _poll: Poll;
  private _serverInterval = 0;
  private _snapshot: IGpuSnapshot | null = null;
}

export namespace GpuModel {
  export interface IOptions {
    /** Refresh interval in seconds (at least 0.5). */
    interval?: number;
  }
}
