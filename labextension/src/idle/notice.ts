/**
 * What Lab says about the hub's GPU idle rule, from `GET jupyter-tk/api/activity`. Pure (no
 * JupyterLab imports) so it is unit-tested.
 */
import type { ITranslate } from '../trans';

/** The hub's notice for a server holding a GPU (durations in seconds, counted from now). */
export interface IGpuIdleNotice {
  timeout_seconds: number;
  warning_seconds: number;
  idle_seconds: number;
  stop_in_seconds: number;
  warn: boolean;
}

/** `GET jupyter-tk/api/activity`. */
export interface IActivity {
  reporting: boolean;
  kernels_busy: boolean;
  gpu_in_use: boolean;
  seconds_since_work: number;
  poll_seconds: number;
  gpu_idle: IGpuIdleNotice | null;
}

/** Seconds between two polls: what the server asks for, within [1, 60]. */
export function pollSeconds(activity: IActivity | null): number {
  const asked = activity?.poll_seconds ?? 60;
  return Math.min(60, Math.max(1, Number.isFinite(asked) ? asked : 60));
}

/** "45 seconds", "3 minutes", "1 hour 5 minutes". */
export function formatDuration(seconds: number, trans: ITranslate): string {
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 90) {
    return trans._n('%1 second', '%1 seconds', whole);
  }
  const minutes = Math.round(whole / 60);
  if (minutes < 60) {
    return trans._n('%1 minute', '%1 minutes', minutes);
  }
  const hours = Math.floor(minutes / 60);
  const rest = minutes % 60;
  const hourText = trans._n('%1 hour', '%1 hours', hours);
  return rest ? `${hourText} ${trans._n('%1 minute', '%1 minutes', rest)}` : hourText;
}

/** The warning to show now, or null when there is none (no GPU, work going on, time left). */
export function warningText(
  activity: IActivity | null,
  now: Date,
  trans: ITranslate
): string | null {
  const notice = activity?.gpu_idle;
  if (!notice || !notice.warn) {
    return null;
  }
  const stopAt = new Date(now.getTime() + Math.max(0, notice.stop_in_seconds) * 1000);
  const clock = stopAt.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  // JupyterLab cuts toasts after 140 characters: the whole message must fit.
  return trans.__(
    'GPU unused for %1: this server stops in %2 (at %3) to free it. Save your work; running code keeps it.',
    formatDuration(notice.idle_seconds, trans),
    formatDuration(notice.stop_in_seconds, trans),
    clock
  );
}
