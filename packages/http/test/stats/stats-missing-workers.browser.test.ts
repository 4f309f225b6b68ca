// Under `fulcrum --workers`, an answer that left workers out (no report in time, or one over the
// size cap) carries `missingWorkers`: the page says which, and says nothing when none is missing.
// The page is served as statsPage serves it (its CSP included) with the JSON of such an answer.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderStatsPage, STATS_PAGE_CSP } from '../../src/stats/page';
import { CHROMIUM_ARGS, chromiumPath, requireChromium } from '../../../../test-support/browser';

const WAIT = { timeout: 20_000 };

describe.skipIf(chromiumPath === undefined && !requireChromium)('the stats page names the workers left out of an answer', () => {
  let browser: Browser;
  let page: Page;
  let server: http.Server;
  let missing: unknown = [2, 3];

  beforeAll(async () => {
    server = http.createServer((req, res) => {
      if ((req.url ?? '').includes('format=json')) {
        const body = { pools: {}, events: [], traffic: {}, durationBoundsMs: [1], protocol: { pools: {}, frontends: {} }, workers: 1, missingWorkers: missing };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-security-policy': STATS_PAGE_CSP }).end(renderStatsPage('stats', 200));
    });
    server.requestTimeout = 10_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
    page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
  });

  it('says "no counters from workers 2, 3", then nothing once every worker answers', async () => {
    const note = page.locator('#missing-workers');
    await expect.poll(() => note.textContent(), WAIT).toBe('no counters from workers 2, 3');
    expect(await note.isVisible()).toBe(true);
    missing = [2];
    await expect.poll(() => note.textContent(), WAIT).toBe('no counters from worker 2');
    missing = [];
    await expect.poll(() => note.isVisible(), WAIT).toBe(false);
    // Anything but numbers is not shown as markup (and a non-array is no list).
    missing = ['<img src=x>'];
    await expect.poll(() => note.textContent(), WAIT).toBe('no counters from worker 0');
    expect(await page.locator('#missing-workers img').count()).toBe(0);
    missing = 'all';
    await expect.poll(() => note.isVisible(), WAIT).toBe(false);
  }, 60_000);
});
