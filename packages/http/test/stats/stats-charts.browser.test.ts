import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLoadBalancer } from '@fulcrum/core';
import type { LoadBalancer, LoadBalancerSnapshot } from '@fulcrum/core';
import { FakeClock } from '@fulcrum/core/testing';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxy } from '../../src';
import type { ProxyHandler } from '../../src';
import { statsPage } from '../../src/stats';
import type { StatsHandler } from '../../src/stats';
import { CHROMIUM_ARGS, chromiumPath, requireChromium } from '../../../../test-support/browser';
import { send, startBackend, type TestBackend } from '../proxy/helpers';

/** The DOM the functions run in the page use (the tests compile without the DOM library). */
interface PageElement {
  getAttribute(name: string): string | null;
  readonly textContent: string | null;
  getClientRects(): { length: number };
}
declare const document: {
  querySelector(selector: string): PageElement | null;
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>;
};

// Auto-waiting bound for the page to pick up a change: a hang detector, not a speed assertion.
const WAIT = { timeout: 20_000 };
const LONG_HOST = `http://${'very-long-backend-host-name.'.repeat(4)}example.internal:65535`;

/** A load balancer whose snapshot says what the real one cannot be made to say at once. */
function forgedStates(lb: LoadBalancer): LoadBalancer {
  const forged = {
    name: 'states',
    on: () => forged,
    off: () => forged,
    snapshot(): LoadBalancerSnapshot {
      const real = lb.snapshot();
      const [a, b, c] = real.backends as [
        LoadBalancerSnapshot['backends'][number],
        LoadBalancerSnapshot['backends'][number],
        LoadBalancerSnapshot['backends'][number],
      ];
      return {
        ...real,
        name: 'states',
        backends: [
          // Slow start was ramping when the backend went down: it is down, not "slow start".
          { ...a, state: 'down', slowStart: true },
          // Draining keeps the weight slow start computed; new traffic sees 0.
          { ...b, state: 'draining', weight: 5, effectiveWeight: 5 },
          { ...c, address: LONG_HOST },
        ],
      };
    },
  };
  return forged as unknown as LoadBalancer;
}

describe.skipIf(chromiumPath === undefined && !requireChromium)('the stats page charts in headless Chromium', () => {
  let browser: Browser;
  let page: Page;
  let b1: TestBackend;
  let b2: TestBackend;
  let proxy: ProxyHandler;
  let proxyServer: http.Server;
  let statsServer: http.Server;
  let stats: StatsHandler;
  let events: LoadBalancer;
  let statesSource: LoadBalancer;
  let proxyUrl: string;
  let running = true;
  let traffic: Promise<void> = Promise.resolve();
  const statuses = new Map<number, number>();

  beforeAll(async () => {
    if (chromiumPath === undefined) throw new Error('CI=true but no Chromium found (set CHROMIUM_PATH or apt-get install chromium)');
    b1 = await startBackend('b1');
    b2 = await startBackend('b2');
    // One attempt per request: a dead backend's share of the traffic fails, and the charts show it,
    // until outlier detection ejects it (5 failures in a row) and b1 carries everything.
    proxy = createProxy({
      balancer: {
        name: 'web',
        algorithm: 'round-robin',
        outlier: { consecutiveFailures: 5, baseEjectionMs: 600_000, maxEjectionPercent: 50 },
        backends: [
          { id: 'b1', address: b1.address },
          { id: 'b2', address: b2.address },
        ],
      },
      attempts: 1,
    });
    proxyServer = http.createServer(proxy);
    await new Promise<void>((resolve) => proxyServer.listen(0, '127.0.0.1', resolve));
    proxyUrl = `http://127.0.0.1:${(proxyServer.address() as AddressInfo).port}`;

    // Every event type, on a fake clock: added, ejected, state, restored, panic, removed.
    const clock = new FakeClock(1_700_000_000_000);
    events = createLoadBalancer({
      name: 'events',
      clock,
      panicThreshold: 0.5,
      outlier: { consecutiveFailures: 1, baseEjectionMs: 5000, intervalMs: 1000 },
      backends: [
        { id: 'e1', address: 'http://10.0.0.1:80' },
        { id: 'e2', address: 'http://10.0.0.2:80' },
      ],
    });
    statesSource = createLoadBalancer({
      name: 'states',
      backends: ['s1', 's2', 's3'].map((id, i) => ({ id, address: `http://10.0.2.${i + 1}:8080` })),
    });
    stats = statsPage({ web: proxy.lb, events, states: forgedStates(statesSource) }, { refreshMs: 200 });
    events.add({ id: 'e3', address: 'http://10.0.0.3:80' });
    const lease = events.acquire({ exclude: ['e2', 'e3'] });
    lease?.release({ ok: false, error: 'reset' });
    events.maintain('e2');
    events.maintain('e3');
    await clock.advance(6000);
    await events.remove('e3');

    statsServer = http.createServer((req, res) => stats(req, res));
    await new Promise<void>((resolve) => statsServer.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    await page.goto(`http://127.0.0.1:${(statsServer.address() as AddressInfo).port}/`);

    // Steady traffic through the proxy for the whole suite, one request at a time.
    traffic = (async () => {
      while (running) {
        const reply = await send(proxyUrl).catch(() => ({ status: -1 }));
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
      }
    })();
  }, 60_000);

  afterAll(async () => {
    running = false;
    await traffic;
    await browser?.close();
    stats?.close();
    await new Promise<void>((resolve) => (statsServer ? statsServer.close(() => resolve()) : resolve()));
    proxyServer?.closeAllConnections();
    await new Promise<void>((resolve) => (proxyServer ? proxyServer.close(() => resolve()) : resolve()));
    await proxy?.close();
    await b1?.close();
    await b2?.close();
    events?.close();
    statesSource?.close();
  });

  const web = (selector: string) => page.locator(`section[data-pool="web"] ${selector}`);
  /** A count cell's number: the page writes counts with thousands separators (`1,024`). */
  const countIn = async (selector: string): Promise<number> => Number((await web(selector).textContent())?.replaceAll(',', ''));
  const chartMax = (pool: string, kind: string) =>
    page.locator(`section[data-pool="${pool}"] figure[data-chart="${kind}"] svg`).getAttribute('data-max').then(Number);

  it('draws request rate, latency and error rate from the pool history, and both backends sharing the load', async () => {
    await web('figure[data-chart="rate"] polyline').first().waitFor(WAIT);
    await page.waitForFunction(
      () => Number(document.querySelector('section[data-pool="web"] figure[data-chart="rate"] svg')?.getAttribute('data-max')) > 0,
      undefined,
      WAIT,
    );
    await page.waitForFunction(
      () => Number(document.querySelector('section[data-pool="web"] figure[data-chart="latency"] svg')?.getAttribute('data-max')) > 0,
      undefined,
      WAIT,
    );
    expect(await chartMax('web', 'errors')).toBe(0);
    // Both backends carry traffic in the per-backend chart (the tab's own history).
    await page.waitForFunction(
      () => {
        const lines = document.querySelectorAll('section[data-pool="web"] figure[data-chart="backends"] polyline');
        return lines.length === 2 && [...lines].every((line) => (line.getAttribute('points') ?? '').split(' ').some((p) => Number(p.split(',')[1]) < 60));
      },
      undefined,
      WAIT,
    );
    expect(await web('figure[data-chart="latency"] .legend').allTextContents()).toEqual([expect.stringMatching(/^p50 /), expect.stringMatching(/^p99 /)]);
    // The HAProxy columns carry the traffic: sessions, bytes out, 2xx responses, for b1 and in total.
    expect(await countIn('tr[data-backend="b1"] td.resp-2xx')).toBeGreaterThan(0);
    expect(await web('tr[data-backend="b1"] td.bytes-out').textContent()).toMatch(/^\d+(\.\d)? (B|KB)$/);
    expect(await countIn('tfoot td.requests')).toBeGreaterThan(0);
    expect(await countIn('tfoot td.sessions-max')).toBeGreaterThanOrEqual(1);
  });

  it('shows the failover when a backend is killed: failures in the charts and columns, its line falls to 0', async () => {
    await b2.close();
    await page.waitForFunction(
      () => Number(document.querySelector('section[data-pool="web"] figure[data-chart="errors"] svg')?.getAttribute('data-max')) > 0,
      undefined,
      WAIT,
    );
    await page.waitForFunction(
      () => Number(document.querySelector('section[data-pool="web"] tr[data-backend="b2"] td.err-conn')?.textContent) > 0,
      undefined,
      WAIT,
    );
    await page.waitForFunction(() => Number(document.querySelector('section[data-pool="web"] tfoot td.resp-5xx')?.textContent) > 0, undefined, WAIT);
    expect(await web('figure[data-chart="rate"] .legend.line-error').textContent()).toMatch(/^failed \d/);
    // The failed share is b2's: the 502s the clients got.
    expect(statuses.get(502) ?? 0).toBeGreaterThan(0);
    expect(await countIn('tfoot td.err-conn')).toBeGreaterThan(0);
    // Ejected: b2's line in the per-backend chart comes down to 0 while b1's carries the traffic.
    await web('tr[data-backend="b2"] td.ejected .pill').waitFor(WAIT);
    await page.waitForFunction(
      () => {
        const last = (id: string): number => {
          const points =
            document.querySelector(`section[data-pool="web"] figure[data-chart="backends"] polyline[data-series="${id}"]`)?.getAttribute('points') ?? '';
          return Number(points.split(' ').at(-1)?.split(',')[1]);
        };
        // y grows downwards: the bottom of the 64-unit chart is 63.
        return last('b2') === 63 && last('b1') < 63;
      },
      undefined,
      WAIT,
    );
    await page.screenshot({ path: '/tmp/fulcrum-stats-charts.png', fullPage: true });
  });

  it('does not call a down backend "slow start", gives a draining one an effective weight of 0, and keeps the port of a long address on one line', async () => {
    const row = (id: string) => page.locator(`section[data-pool="states"] tr[data-backend="${id}"]`);
    await row('s1').waitFor(WAIT);
    expect(await row('s1').locator('td.state').textContent()).toBe('down');
    expect(await row('s1').locator('.badge-slow-start').count()).toBe(0);
    expect(await row('s2').locator('td.weight').textContent()).toBe('5');
    expect(await row('s2').locator('td.effective').textContent()).toBe('0');
    const port = row('s3').locator('td.backend .addr .port');
    expect(await port.textContent()).toBe('l:65535');
    // One line box: the port never wraps, however narrow the column.
    const lines = await page.evaluate(() => {
      const node = document.querySelector('section[data-pool="states"] tr[data-backend="s3"] td.backend .addr .port');
      return node === null ? -1 : node.getClientRects().length;
    });
    expect(lines).toBe(1);
    expect(await row('s3').locator('td.backend .addr').getAttribute('title')).toBe(LONG_HOST);
  });

  it('gives every event type its badge', async () => {
    await page.locator('table.events tr.event-removed').waitFor(WAIT);
    for (const type of ['added', 'ejected', 'state', 'restored', 'panic', 'removed']) {
      const row = page.locator(`table.events tr.event-${type}`).first();
      expect(await row.locator('td.what .pill').count(), type).toBe(1);
    }
    expect(await page.locator('table.events tr.event-removed .pill').first().textContent()).toBe('removed');
  });
});
