import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ResourceFeed } from '../src/feed.ts';
import type { Snapshot } from '../src/types.ts';
import { snapshot } from './fixtures.ts';

/** A stand-in for the network (the process boundary): answers like the hub endpoint. */
function server(responses: (() => Response)[]) {
  const seen: RequestInit[] = [];
  const fetcher = (async (_url: string, init: RequestInit) => {
    seen.push(init);
    return responses.shift()!();
  }) as unknown as typeof fetch;
  return { fetcher, seen };
}

describe('ResourceFeed', () => {
  it('sends the ETag back and treats 304 as unchanged', async () => {
    const body = JSON.stringify(snapshot([]));
    const { fetcher, seen } = server([
      () => new Response(body, { status: 200, headers: { ETag: '"v1"' } }),
      () => new Response(null, { status: 304 })
    ]);
    const got: Snapshot[] = [];
    let unchanged = 0;
    const feed = new ResourceFeed({
      url: '/prefix/hub/api/tk/resources',
      intervalSeconds: 5,
      xsrfToken: 'token',
      fetch: fetcher,
      onSnapshot: s => got.push(s),
      onUnchanged: () => unchanged++,
      onError: () => undefined
    });
    assert.equal(await feed.refresh(), true);
    assert.equal(await feed.refresh(), false);
    assert.equal(got.length, 1);
    assert.equal(unchanged, 1);
    const headers = seen[1].headers as Record<string, string>;
    assert.equal(headers['If-None-Match'], '"v1"');
    assert.equal(headers['X-XSRFToken'], 'token');
  });

  it('reports a failed refresh without losing the last snapshot', async () => {
    const { fetcher } = server([() => new Response('down', { status: 502 })]);
    const feed = new ResourceFeed({
      url: '/hub/api/tk/resources',
      intervalSeconds: 5,
      fetch: fetcher,
      onSnapshot: () => assert.fail('no snapshot expected'),
      onError: () => undefined
    });
    await assert.rejects(feed.refresh(), /HTTP 502/);
  });
});
