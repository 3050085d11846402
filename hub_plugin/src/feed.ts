/**
 * Keeps the resources snapshot fresh while the form is open: polls `/hub/api/tk/resources`
 * every few seconds with `If-None-Match` (an unchanged snapshot costs a 304), pauses while the
 * page is hidden, and backs off after failures.
 */
import type { Snapshot } from './types.ts';

export namespace ResourceFeed {
  export interface IOptions {
    url: string;
    intervalSeconds: number;
    /** Called with each new snapshot and the time (ms) it was received. */
    onSnapshot: (snapshot: Snapshot, receivedAt: number) => void;
    /** Called when the server says the snapshot is unchanged (HTTP 304). */
    onUnchanged?: (receivedAt: number) => void;
    /** Called with a message when a refresh fails, and with null when one succeeds again. */
    onError: (message: string | null) => void;
    /** Sent as `X-XSRFToken`: JupyterHub checks it on API GETs authenticated by cookie. */
    xsrfToken?: string;
    fetch?: typeof fetch;
  }
}

const MAX_BACKOFF_SECONDS = 60;

export class ResourceFeed {
  private etag: string | null = null;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private failures = 0;
  private stopped = false;
  private readonly options: ResourceFeed.IOptions;

  constructor(options: ResourceFeed.IOptions) {
    this.options = options;
  }

  start(): void {
    this.stopped = false;
    void this.tick();
    if (typeof document !== 'undefined') {
      document.addEventListener('visibilitychange', this.onVisibility);
    }
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (typeof document !== 'undefined') {
      document.removeEventListener('visibilitychange', this.onVisibility);
    }
  }

  /** Fetch once now; resolves to true when the snapshot changed. */
  async refresh(): Promise<boolean> {
    const headers: Record<string, string> = { Accept: 'application/json' };
    if (this.etag) {
      headers['If-None-Match'] = this.etag;
    }
    if (this.options.xsrfToken) {
      headers['X-XSRFToken'] = this.options.xsrfToken;
    }
    const doFetch = this.options.fetch ?? fetch;
    const response = await doFetch(this.options.url, {
      headers,
      credentials: 'same-origin',
      cache: 'no-store'
    });
    if (response.status === 304) {
      this.options.onUnchanged?.(Date.now());
      return false;
    }
    if (!response.ok) {
      throw new Error(`HTTP ${response.status}`);
    }
    const snapshot = (await response.json()) as Snapshot;
    this.etag = response.headers.get('ETag');
    this.options.onSnapshot(snapshot, Date.now());
    return true;
  }

  private onVisibility = (): void => {
    if (!document.hidden && !this.stopped) {
      void this.tick();
    }
  };

  private schedule(seconds: number): void {
    if (this.timer !== null) {
      clearTimeout(this.timer);
    }
    this.timer = setTimeout(() => void this.tick(), seconds * 1000);
  }

  private async tick(): Promise<void> {
    if (this.stopped) {
      return;
    }
    if (typeof document !== 'undefined' && document.hidden) {
      // Standby while hidden; visibilitychange restarts the loop.
      return;
    }
    try {
      await this.refresh();
      this.failures = 0;
      this.options.onError(null);
    } catch (error) {
      this.failures += 1;
      this.options.onError(error instanceof Error ? error.message : String(error));
    }
    const interval = this.options.intervalSeconds;
    const delay = Math.min(interval * 2 ** this.failures, Math.max(MAX_BACKOFF_SECONDS, interval));
    this.schedule(this.failures ? delay : interval);
  }
}
