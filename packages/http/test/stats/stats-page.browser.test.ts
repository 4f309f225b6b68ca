import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLoadBalancer } from '@fulcrum/core';
import type { LoadBalancer, LoadBalancerSnapshot } from '@fulcrum/core';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statsPage } from '../../src/stats';
import type { StatsHandler } from '../../src/stats';
import { CHROMIUM_ARGS, chromiumPath, requireChromium } from '../../../../test-support/browser';

/** What the page's functions use in the browser (the tests compile without the DOM library). */
interface BrowserGlobals {
  getComputedStyle(node: unknown): { color: string };
}

const HOSTILE_POOL = '<img src=x onerror="window.__pwned=1">';
const HOSTILE_ZONE = '<script>window.__pwned=2</script>';
const HOSTILE_ID = '<script>window.__pwned=3</script>';
// Auto-waiting bound for the page to pick up a change: a hang detector, not a speed assertion.
const WAIT = { timeout: 10_000 };

/**
 * Core refuses backend ids with markup, so a snapshot carrying one can only come from elsewhere (a
 * custom LoadBalancer, a future relaxation). The page must render it as text all the same.
 */
function forgedPool(lb: LoadBalancer): LoadBalancer {
  const forged = {
    name: 'forged',
    on: () => forged,
    off: () => forged,
    snapshot(): LoadBalancerSnapshot {
      const real = lb.snapshot();
      return {
        ...real,
        name: 'forged',
        backends: real.backends.slice(0, 1).map((b) => ({ ...b, id: HOSTILE_ID, address: `http://x/"><script>window.__pwned=4</script>` })),
      };
    },
  };
  return forged as unknown as LoadBalancer;
}

describe.skipIf(chromiumPath === undefined && !requireChromium)('the stats page in headless Chromium', () => {
  let browser: Browser;
  let server: http.Server;
  let stats: StatsHandler;
  let web: LoadBalancer;
  let hostile: LoadBalancer;
  let ramp: LoadBalancer;
  let page: Page;
  let origin: string;
  const documentRequests: string[] = [];
  const cspViolations: string[] = [];

  beforeAll(async () => {
    if (chromiumPath === undefined) throw new Error('CI=true but no Chromium found (set CHROMIUM_PATH or apt-get install chromium)');
    web = createLoadBalancer({
      name: 'web',
      algorithm: 'round-robin',
      outlier: { consecutiveFailures: 3, baseEjectionMs: 60_000 },
      // b3 fails its checks (a red row); a passing check would end its ejection early.
      health: { probe: async (backend) => backend.id !== 'b3', intervalMs: 100, fastIntervalMs: 50 },
      backends: [
        { id: 'b1', address: 'http://10.0.0.11:8080', weight: 2 },
        { id: 'b2', address: 'http://10.0.0.12:8080', maxConnections: 50 },
        { id: 'b3', address: 'http://10.0.0.13:8080', zone: 'eu-west-1a' },
        { id: 'b4', address: 'http://10.0.0.14:8080', backup: true },
      ],
    });
    hostile = createLoadBalancer({ name: 'hostile', backends: [{ id: 'h1', address: '127.0.0.1:9', zone: HOSTILE_ZONE }] });
    // r2 joins a pool that already serves: slow start ramps its weight for the next ten minutes.
    ramp = createLoadBalancer({ name: 'ramp', slowStart: { windowMs: 600_000 }, backends: [{ id: 'r1', address: 'http://10.0.1.1:8080' }] });
    ramp.add({ id: 'r2', address: 'http://10.0.1.2:8080' });
    stats = statsPage({ web, [HOSTILE_POOL]: hostile, forged: forgedPool(web), ramp }, { title: 'edge-1 <stats>', refreshMs: 200 });
    // Some traffic, so the numbers are not all zero: b3 fails until it is ejected.
    for (let i = 0; i < 60 && web.get('b3')?.ejectedUntil === 0; i += 1) {
      const lease = web.acquire();
      if (lease === undefined) break;
      const failing = lease.backend.id === 'b3';
      lease.release(failing ? { ok: false, error: 'reset', durationMs: 3 } : { ok: true, status: 200, durationMs: 20 + (i % 7) });
    }
    web.acquire(); // one request left in flight

    server = http.createServer((req, res) => {
      // Mounted under a prefix, as an app would; the page must find its JSON relative to itself.
      if (req.url?.startsWith('/admin/fulcrum')) stats(req, res);
      else {
        res.statusCode = 404;
        res.end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('request', (request) => {
      if (request.resourceType() === 'document') documentRequests.push(request.url());
    });
    page.on('console', (message) => {
      if (/Content Security Policy|Trusted Type/i.test(message.text())) cspViolations.push(message.text());
    });
    await page.goto(`${origin}/admin/fulcrum?view=ops`);
  });

  afterAll(async () => {
    await browser?.close();
    stats?.close();
    web?.close();
    hostile?.close();
    ramp?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('renders every backend of every pool with its numbers', async () => {
    const state = (id: string) => page.locator(`section[data-pool="web"] tr[data-backend="${id}"] td.state`);
    await state('b1').waitFor(WAIT);
    expect(await state('b1').textContent()).toBe('up');
    expect(await page.locator('section[data-pool="web"] tbody tr').count()).toBe(4);
    const b3 = page.locator('section[data-pool="web"] tr[data-backend="b3"]');
    expect(await b3.locator('td.ejected').textContent()).toMatch(/^ejected · \d+ (s|min)$/);
    expect(Number(await b3.locator('td.failures').textContent())).toBeGreaterThanOrEqual(3);
    expect(await b3.locator('td.backend').textContent()).toContain('eu-west-1a');
    expect(await b3.locator('td.health').textContent()).toMatch(/^[0-4]\/4$/);
    await page.locator('table.events tr', { hasText: 'b3' }).filter({ hasText: 'ejected (consecutive-failures)' }).waitFor(WAIT);
    expect(await page.locator('section[data-pool="web"] tr[data-backend="b2"] td.inflight').textContent()).toMatch(/^\d+$/);
    expect(await page.locator('section[data-pool="web"] tr[data-backend="b2"] td.sessions-limit').textContent()).toBe('50');
    // The total row sits in the table's footer: one per pool, after the backends.
    expect(await page.locator('section[data-pool="web"] tfoot tr.total td.requests').textContent()).toMatch(/^\d+$/);
    expect(await page.locator('section[data-pool="web"] tr[data-backend="b1"] td.weight').textContent()).toBe('2');
    expect(await page.locator('section[data-pool="web"] tr[data-backend="b4"] td.backend').textContent()).toContain('backup');
    expect(await page.title()).toBe('edge-1 <stats>');
    expect(await page.locator('header h1').textContent()).toBe('edge-1 <stats>');
    await page.locator('#status.live').waitFor(WAIT);
  });

  it('labels a backend in slow start, and names the latency column for what it is', async () => {
    const row = (id: string) => page.locator(`section[data-pool="ramp"] tr[data-backend="${id}"]`);
    await row('r2').waitFor(WAIT);
    expect(await row('r2').locator('td.backend .badge-slow-start').textContent()).toBe('slow start');
    expect(await row('r1').locator('td.backend .badge-slow-start').count()).toBe(0);
    const header = page.locator('section[data-pool="ramp"] thead th', { hasText: 'Latency' });
    expect(await header.textContent()).toBe('Latency EWMA');
    expect(await header.getAttribute('title')).toMatch(/moving average/);
    expect(await header.getAttribute('title')).toMatch(/not a percentile/);
  });

  it('shows a state change without reloading the page', async () => {
    await page.locator('tr[data-backend="b1"] td.state', { hasText: /^up$/ }).first().waitFor(WAIT);
    await page.evaluate(() => {
      (globalThis as unknown as { __sameDocument: number }).__sameDocument = 42;
    });
    web.maintain('b1');
    await page.locator('section[data-pool="web"] tr[data-backend="b1"] td.state', { hasText: /^maintenance$/ }).waitFor(WAIT);
    await page.locator('table.events td.what', { hasText: 'up → maintenance (admin)' }).waitFor(WAIT);
    expect(await page.evaluate(() => (globalThis as unknown as { __sameDocument?: number }).__sameDocument)).toBe(42);
    expect(documentRequests).toEqual([`${origin}/admin/fulcrum?view=ops`]);
  });

  it('renders hostile pool names, zones, backend ids and addresses as text', async () => {
    await page.locator('h2.pool-name', { hasText: HOSTILE_POOL }).waitFor(WAIT);
    expect(await page.locator('h2.pool-name', { hasText: HOSTILE_POOL }).textContent()).toBe(HOSTILE_POOL);
    expect(await page.locator('td.backend', { hasText: HOSTILE_ZONE }).count()).toBe(1);
    const forgedRow = page.locator('section[data-pool="forged"] tbody tr').first();
    expect(await forgedRow.locator('td.backend .id').textContent()).toBe(HOSTILE_ID);
    expect(await forgedRow.getAttribute('data-backend')).toBe(HOSTILE_ID);
    expect(await page.locator('img').count()).toBe(0);
    expect(await page.locator('script').count()).toBe(1);
    expect(await page.evaluate(() => (globalThis as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    expect(cspViolations).toEqual([]);
  });

  it('looks like a dashboard (screenshot at /tmp/fulcrum-stats.png)', async () => {
    web.drain('b2');
    await page
      .locator('tr[data-backend="b2"] td.state', { hasText: /^draining$/ })
      .first()
      .waitFor(WAIT);
    await page.screenshot({ path: '/tmp/fulcrum-stats.png', fullPage: true });
    const upColour = await page
      .locator('section[data-pool="web"] tr[data-backend="b4"] td.state .pill')
      .evaluate((node) => (globalThis as unknown as BrowserGlobals).getComputedStyle(node).color);
    const maintColour = await page
      .locator('section[data-pool="web"] tr[data-backend="b1"] td.state .pill')
      .evaluate((node) => (globalThis as unknown as BrowserGlobals).getComputedStyle(node).color);
    expect(upColour).not.toBe(maintColour);
  });
});
