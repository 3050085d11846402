/**
 * Entry point of `tk-spawn.js`, inlined at the end of the spawn form: finds the form, reads the
 * configuration the server rendered next to it and starts the live refresh.
 */
import { ResourceFeed } from './feed.ts';
import { SpawnForm } from './form.ts';
import type { FormConfig } from './types.ts';

const FRESHNESS_TICK_MS = 1000;

function xsrfToken(root: HTMLElement): string | undefined {
  const jhdata = (window as unknown as { jhdata?: { xsrf_token?: string } }).jhdata;
  if (jhdata?.xsrf_token) {
    return jhdata.xsrf_token;
  }
  const action = root.closest('form')?.getAttribute('action');
  if (action) {
    const token = new URL(action, window.location.href).searchParams.get('_xsrf');
    if (token) {
      return token;
    }
  }
  const cookie = document.cookie.split('; ').find(part => part.startsWith('_xsrf='));
  return cookie ? decodeURIComponent(cookie.slice('_xsrf='.length)) : undefined;
}

function start(): void {
  const root = document.querySelector<HTMLElement>('[data-tk-spawn]');
  const configElement = document.getElementById('jp-tk-spawn-config');
  if (!root || !configElement || root.dataset.tkStarted) {
    return;
  }
  root.dataset.tkStarted = 'true';
  const config = JSON.parse(configElement.textContent || '{}') as FormConfig;
  const form = new SpawnForm(root, config);
  // The hub's own error line (a refused submission) is announced like ours.
  document.querySelector('.spawn-error-msg')?.setAttribute('role', 'alert');
  const feed = new ResourceFeed({
    url: config.resourcesUrl,
    intervalSeconds: config.refreshSeconds,
    xsrfToken: xsrfToken(root),
    onSnapshot: (snapshot, receivedAt) => form.setSnapshot(snapshot, receivedAt),
    onUnchanged: receivedAt => form.markUnchanged(receivedAt),
    onError: message => form.setError(message)
  });
  feed.start();
  setInterval(() => form.updateFreshness(), FRESHNESS_TICK_MS);
  window.addEventListener('pagehide', () => feed.stop());
}

if (document.readyState === 'loading') {
  document.addEventListener('DOMContentLoaded', start);
} else {
  start();
}
