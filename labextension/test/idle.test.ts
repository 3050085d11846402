import { describe, expect, it } from 'vitest';

import {
  formatDuration,
  IActivity,
  pollSeconds,
  warningText
} from '../src/idle/notice';
import { trans } from './translate';

function activity(gpuIdle: IActivity['gpu_idle'], poll = 15): IActivity {
  return {
    reporting: true,
    kernels_busy: false,
    gpu_in_use: false,
    seconds_since_work: 0,
    poll_seconds: poll,
    gpu_idle: gpuIdle
  };
}

const notice = {
  timeout_seconds: 1800,
  warning_seconds: 300,
  idle_seconds: 1560,
  stop_in_seconds: 240,
  warn: true
};

describe('formatDuration', () => {
  it.each([
    [1, '1 second'],
    [45, '45 seconds'],
    [240, '4 minutes'],
    [3600, '1 hour'],
    [3900, '1 hour 5 minutes'],
    [-3, '0 seconds']
  ])('%d s is "%s"', (seconds, text) => {
    expect(formatDuration(seconds, trans)).toBe(text);
  });
});

describe('warningText', () => {
  it('says how long the GPU was idle, when the server stops and what keeps it', () => {
    const text = warningText(activity(notice), new Date(2026, 11, 4, 14, 0, 0), trans);
    expect(text).toMatch(
      /^GPU unused for 26 minutes: this server stops in 4 minutes \(at .+\) to free it\. Save your work; running code keeps it\.$/
    );
    // JupyterLab cuts a toast's message after 140 characters
    expect(text!.length).toBeLessThanOrEqual(140);
  });

  it('says nothing without a GPU, before the warning period, or without an answer', () => {
    expect(warningText(activity(null), new Date(), trans)).toBeNull();
    expect(
      warningText(activity({ ...notice, warn: false }), new Date(), trans)
    ).toBeNull();
    expect(warningText(null, new Date(), trans)).toBeNull();
  });
});

describe('pollSeconds', () => {
  it('follows the server within 1 to 60 seconds', () => {
    expect(pollSeconds(activity(null, 1.5))).toBe(1.5);
    expect(pollSeconds(activity(null, 0.01))).toBe(1);
    expect(pollSeconds(activity(null, 600))).toBe(60);
    expect(pollSeconds(null)).toBe(60);
  });
});
