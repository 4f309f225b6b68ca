/**
 * The stats page in headless Chromium with the parts a multi-worker, HTTP/2 answer adds: the
 * "HTTP/2 and gRPC" table (listeners and pools, hostile names shown as text) and the Worker column
 * of the transitions, shown only when the answer holds more than one worker. The page is the real
 * one; its JSON is an answer as `fulcrum --workers 2` gives it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { createLoadBalancer, type LoadBalancer } from '@fulcrum/core';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statsPage, type StatsHandler, type StatsJson } from '../../src/stats';
import { CHROMIUM_ARGS, chromiumPath, requireChromium } from '../../../../test-support/browser';

const WAIT = { timeout: 10_000 };
const HOSTILE = '<img src=x onerror="window.__pwned=1">';

describe.skipIf(chromiumPath === undefined && !requireChromium)('the stats page: HTTP/2, gRPC and workers', () => {
  let browser: Browser;
  let server: http.Server;
  let stats: StatsHandler;
  let lb: LoadBalancer;
  let page: Page;
  let workers = 2;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    if (chromiumPath === undefined) throw new Error('CI=true but no Chromium found (set CHROMIUM_PATH or apt-get install chromium)');
    lb = createLoadBalancer({ name: 'grpc', backends: [{ id: 'g1', address: 'http://10.0.0.1:50051' }] });
    stats = statsPage({ grpc: lb }, { refreshMs: 100 });
    server = http.createServer((req, res) => {
      if (!req.url?.includes('format=json')) return stats(req, res);
      const real = JSON.parse(JSON.stringify({ pools: { grpc: lb.snapshot() } })) as Pick<StatsJson, 'pools'>;
      const body: Partial<StatsJson> = {
        ...real,
        events: [
          { seq: 1, at: Date.now() - 2000, pool: 'grpc', type: 'state', backend: 'g1', from: 'up', to: 'draining', cause: 'admin', worker: 2, workers: [1, 2] },
          {
            seq: 2,
            at: Date.now() - 1000,
            pool: 'grpc',
            type: 'ejected',
            backend: 'g1',
            cause: 'consecutive-failures',
            until: Date.now() + 30_000,
            worker: 1,
            workers: [1],
          },
        ],
        traffic: {},
        durationBoundsMs: [],
        protocol: {
          pools: { grpc: { h2Streams: 12, h1ToH2Requests: 3, grpcStatuses: { 0: 9, 14: 3 } } },
          frontends: {
            '127.0.0.1:8443': { sessions: 2, sessionsTotal: 5, streams: 1, streamsTotal: 12, streamsRefused: 0, streamsReset: 4, sessionsClosedForResets: 0 },
            [HOSTILE]: { sessions: 0, sessionsTotal: 0, streams: 0, streamsTotal: 0, streamsRefused: 0, streamsReset: 0, sessionsClosedForResets: 0 },
          },
        },
        workers,
      };
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (message) => {
      if (/Content Security Policy|Trusted Type/i.test(message.text())) cspViolations.push(message.text());
    });
    await page.goto(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
  });

  afterAll(async () => {
    await browser?.close();
    stats?.close();
    lb?.close();
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  });

  it('lists HTTP/2 listeners and pools with their counters and gRPC statuses, names as text', async () => {
    const listener = page.locator('#protocol-body tr', { hasText: 'listener 127.0.0.1:8443' });
    await listener.waitFor(WAIT);
    expect(await page.locator('#protocol-section').isVisible()).toBe(true);
    expect(await listener.locator('td').allTextContents()).toEqual(['listener 127.0.0.1:8443', '2', '5', '1', '12', '0', '4', '\u2014', '\u2014']);
    const pool = page.locator('#protocol-body tr', { hasText: 'pool grpc' });
    expect(await pool.locator('td').allTextContents()).toEqual(['pool grpc', '\u2014', '\u2014', '\u2014', '12', '\u2014', '\u2014', '3', '0: 9, 14: 3']);
    expect(await page.locator('#protocol-body tr', { hasText: `listener ${HOSTILE}` }).count()).toBe(1);
    expect(await page.evaluate(() => (globalThis as { __pwned?: number }).__pwned)).toBeUndefined();
  });

  it('shows which worker recorded each transition when the answer holds several, and hides the column for one', async () => {
    const drain = page.locator('table.events tbody tr', { hasText: 'draining' });
    await drain.waitFor(WAIT);
    const worker = drain.locator('td.worker-col');
    expect(await worker.isVisible()).toBe(true);
    expect(await worker.textContent()).toBe('w2 +1');
    expect(await worker.getAttribute('title')).toBe('recorded by workers 1, 2');
    expect(await page.locator('table.events tbody tr', { hasText: 'ejected' }).locator('td.worker-col').textContent()).toBe('w1');
    expect(await page.locator('table.events thead th.worker-col').isVisible()).toBe(true);
    workers = 1;
    await page.locator('table.events thead th.worker-col').waitFor({ state: 'hidden', ...WAIT });
    expect(cspViolations).toEqual([]);
  });
});
