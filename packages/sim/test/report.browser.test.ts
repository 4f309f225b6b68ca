/**
 * The HTML report rendered by headless Chromium: the charts exist, carry the data of every policy and
 * backend, mark the scenario's events, load nothing from anywhere, and render hostile names as text.
 */
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compare, renderReport } from '@fulcrum/sim';
import type { Scenario } from '@fulcrum/sim';
import { CHROMIUM_ARGS, chromiumPath, requireChromium } from '../../../test-support/browser';

const SCENARIO: Scenario = {
  name: 'slow node <script>window.__pwned=1</script>',
  description: 'A backend slows down at 3 s and recovers at 6 s. <img src=x onerror="window.__pwned=2">',
  seed: 2,
  durationMs: 9000,
  backends: [{ id: 'b', count: 4, concurrency: 2, service: { type: 'exponential', meanMs: 5 } }],
  arrivals: { type: 'poisson', utilization: 0.5 },
  loadBalancer: { outlier: { consecutiveFailures: 3 } },
  changes: [
    { atMs: 3000, action: 'slow', backend: 'b-1', factor: 10 },
    { atMs: 6000, action: 'recover', backend: 'b-1' },
  ],
};

describe.skipIf(chromiumPath === undefined && !requireChromium)('the simulation report in headless Chromium', () => {
  let browser: Browser;
  let page: Page;
  const requests: string[] = [];
  const policies = ['peak-ewma', 'round-robin', 'p2c'];

  beforeAll(async () => {
    if (chromiumPath === undefined) throw new Error('CI=true but no Chromium found (set CHROMIUM_PATH or apt-get install chromium)');
    browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: CHROMIUM_ARGS });
    page = await browser.newPage();
    page.on('request', (request) => requests.push(request.url()));
    await page.setContent(renderReport(compare(SCENARIO, policies)), { waitUntil: 'load' });
  });

  afterAll(async () => {
    await browser?.close();
  });

  it('draws a latency CDF with one rising line per policy, from near 0 to 1', async () => {
    const lines = await page.$$eval('#latency-cdf polyline.series', (nodes) =>
      nodes.map((n) => {
        const points = (n.getAttribute('points') ?? '')
          .trim()
          .split(/\s+/)
          .map((p: string) => p.split(',').map(Number));
        const box = (n as unknown as { getBBox(): { width: number; height: number } }).getBBox();
        return {
          series: n.getAttribute('data-series'),
          count: points.length,
          firstY: points[0]![1]!,
          lastY: points.at(-1)![1]!,
          width: box.width,
          height: box.height,
        };
      }),
    );
    expect(lines.map((l) => l.series)).toEqual(policies);
    for (const line of lines) {
      expect(line.count).toBeGreaterThan(20);
      // SVG y grows downwards: the CDF rises, so its last point is higher on the page than its first.
      expect(line.lastY).toBeLessThan(line.firstY);
      expect(line.width).toBeGreaterThan(100);
      expect(line.height).toBeGreaterThan(100);
    }
  });

  it('draws p99 over time and the load of every backend under every policy, with the changes marked', async () => {
    expect(await page.$$eval('#p99-over-time polyline.series', (nodes) => nodes.length)).toBe(3);
    for (let i = 0; i < policies.length; i++) {
      const series = await page.$$eval(`#load-${i} polyline.series`, (nodes) =>
        nodes.map((n) => [n.getAttribute('data-series'), Number(n.getAttribute('data-points'))] as const),
      );
      expect(series.map(([name]) => name)).toEqual(['b-0', 'b-1', 'b-2', 'b-3']);
      for (const [, points] of series) expect(points).toBe(100);
      const markers = await page.$$eval(`#load-${i} line.marker`, (nodes) => nodes.map((n) => n.getAttribute('data-event')));
      expect(markers).toContain('b-1 10× slower');
      expect(markers).toContain('recover b-1');
    }
    const rendered = await page.$$eval('svg.chart', (nodes) =>
      nodes.map((n) => (n as unknown as { getBoundingClientRect(): { width: number; height: number } }).getBoundingClientRect()),
    );
    expect(rendered).toHaveLength(2 + policies.length);
    for (const box of rendered) expect(box.width * box.height).toBeGreaterThan(10_000);
  });

  it('summarises every policy in a table', async () => {
    const rows = await page.$$eval('#summary tbody tr', (nodes) => nodes.map((n) => n.getAttribute('data-policy')));
    expect(rows).toEqual(policies);
  });

  it('loads nothing but itself and runs no script from the scenario', async () => {
    expect(requests.filter((url) => !url.startsWith('about:') && !url.startsWith('data:'))).toEqual([]);
    expect(await page.evaluate(() => (globalThis as { __pwned?: unknown }).__pwned)).toBeUndefined();
    expect(await page.title()).toContain('<script>');
    expect(await page.$$('body script')).toHaveLength(0);
  });
});
