// The stats page's admin controls in headless Chromium, against a running `fulcrum` whose admin API
// is mounted under a path of the same origin: the token typed by the operator, drain and weight
// changes that reach the load balancer and show without a page reload, and buttons that refuse to
// act without a token. Screenshot: /tmp/fulcrum-stats-admin.png.
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFulcrum, type FulcrumInstance } from '../src';
import { CHROMIUM_ARGS, chromiumPath, requireChromium } from '../../../test-support/browser';
import { request } from '../../http/test/stats/http-client';

const TOKEN = 'stats-admin-token-0123456789';
const ADMIN_PATH = '/fulcrum/admin';
// Auto-waiting bound for the page to pick up a change: a hang detector, not a speed assertion.
const WAIT = { timeout: 10_000 };

describe.skipIf(chromiumPath === undefined && !requireChromium)('the stats page admin controls in headless Chromium', () => {
  let browser: Browser;
  let fulcrum: FulcrumInstance;
  let page: Page;
  let origin: string;
  const documentRequests: string[] = [];
  const adminRequests: string[] = [];
  const cspViolations: string[] = [];

  const row = (pool: string, id: string) => page.locator(`section[data-pool="${pool}"] tr[data-backend="${id}"]`);
  const message = () => page.locator('#admin .admin-message');

  beforeAll(async () => {
    if (chromiumPath === undefined) throw new Error('CI=true but no Chromium found (set CHROMIUM_PATH or apt-get install chromium)');
    // Backends that nothing calls: no health checks, so they stay up; the page only reads and steers state.
    fulcrum = await startFulcrum(
      {
        frontends: [{ port: 0, host: '127.0.0.1', stats: true }],
        pools: {
          web: {
            algorithm: 'round-robin',
            backends: [
              { id: 'b1', address: 'http://127.0.0.1:9', weight: 2 },
              { id: 'b2', address: 'http://127.0.0.1:9' },
            ],
          },
          api: { backends: [{ id: 'a1', address: 'http://127.0.0.1:9' }] },
        },
        routes: [{ match: { pathPrefix: '/api' }, pool: 'api' }, { pool: 'web' }],
        stats: { path: '/fulcrum', title: 'edge-1', refreshMs: 200 },
        admin: { path: ADMIN_PATH, token: TOKEN },
      },
      { logger: () => undefined },
    );
    origin = `http://127.0.0.1:${fulcrum.addresses().frontends[0]!.port}`;
    browser = await chromium.launch({ executablePath: chromiumPath, args: CHROMIUM_ARGS });
    page = await browser.newPage({ viewport: { width: 1380, height: 760 } });
    page.on('request', (req) => {
      if (req.resourceType() === 'document') documentRequests.push(req.url());
      if (req.url().includes(ADMIN_PATH)) adminRequests.push(`${req.method()} ${new URL(req.url()).pathname}`);
    });
    page.on('console', (msg) => {
      if (/Content Security Policy|Trusted Type/i.test(msg.text())) cspViolations.push(msg.text());
    });
    await page.goto(`${origin}/fulcrum`);
    await row('web', 'b1').locator('td.actions').waitFor(WAIT);
  });

  afterAll(async () => {
    await browser?.close();
    await fulcrum?.close(1000);
  });

  it('serves a page that names the admin path and holds no token', async () => {
    const html = await request(`${origin}/fulcrum`);
    expect(html.body).toContain(`data-admin-path="${ADMIN_PATH}"`);
    expect(html.body).not.toContain(TOKEN);
    expect(await page.locator('#admin input[type="password"]').count()).toBe(1);
    expect(await row('web', 'b1').locator('td.actions button').allTextContents()).toEqual(['drain', 'maintenance', 'ready', 'set']);
  });

  it('sends nothing and shows an error when a button is clicked without a token', async () => {
    await row('web', 'b1').locator('button[data-action="drain"]').click();
    await message().filter({ hasText: 'enter the admin token first' }).waitFor(WAIT);
    expect(await message().getAttribute('class')).toContain('error');
    expect(adminRequests).toEqual([]);
    expect(fulcrum.pool('web')!.get('b1')!.state).toBe('up');
  });

  it('reports a refused token and forgets it, without changing anything', async () => {
    await page.locator('#admin-token').fill('not-the-admin-token-at-all');
    await page.locator('#admin button.use-token').click();
    await row('web', 'b2').locator('button[data-action="maintenance"]').click();
    await message().filter({ hasText: 'refused the token (401)' }).waitFor(WAIT);
    expect(adminRequests).toEqual([`POST ${ADMIN_PATH}/pools/web/backends/b2/maintenance`]);
    expect(fulcrum.pool('web')!.get('b2')!.state).toBe('up');
    expect(await page.evaluate(() => (globalThis as unknown as { sessionStorage: { length: number } }).sessionStorage.length)).toBe(0);
  });

  it('drains a backend with the typed token and shows it without reloading the page', async () => {
    await page.evaluate(() => {
      (globalThis as unknown as { __sameDocument: number }).__sameDocument = 7;
    });
    await page.locator('#admin-token').fill(TOKEN);
    await page.locator('#admin-token').press('Enter');
    await page.locator('#admin .token-state', { hasText: 'token set for this tab' }).waitFor(WAIT);
    expect(await page.locator('#admin-token').inputValue()).toBe('');

    await row('web', 'b1').locator('button[data-action="drain"]').click();
    await row('web', 'b1')
      .locator('td.state', { hasText: /^draining$/ })
      .waitFor(WAIT);
    expect(fulcrum.pool('web')!.get('b1')!.state).toBe('draining');
    expect(await message().textContent()).toBe('b1: draining');
    expect(adminRequests.at(-1)).toBe(`POST ${ADMIN_PATH}/pools/web/backends/b1/drain`);

    await row('api', 'a1').locator('button[data-action="maintenance"]').click();
    await row('api', 'a1')
      .locator('td.state', { hasText: /^maintenance$/ })
      .waitFor(WAIT);
    expect(fulcrum.pool('api')!.get('a1')!.state).toBe('maintenance');

    expect(await page.evaluate(() => (globalThis as unknown as { __sameDocument?: number }).__sameDocument)).toBe(7);
    expect(documentRequests).toEqual([`${origin}/fulcrum`]);
  });

  it('sets a weight typed across redraws, and refuses a negative one in the page', async () => {
    const input = row('web', 'b2').locator('input.weight-input');
    await input.fill('-3');
    await input.press('Enter');
    await message().filter({ hasText: 'type a number ≥ 0' }).waitFor(WAIT);
    expect(fulcrum.pool('web')!.get('b2')!.weight).toBe(1);

    await input.fill('');
    await input.pressSequentially('5');
    // Two polls redraw the table (refreshMs 200); the draft and its focus survive them.
    for (let i = 0; i < 2; i++) await page.waitForResponse((response) => response.url().endsWith('format=json'), WAIT);
    await page.evaluate(() => new Promise((resolve) => setTimeout(resolve, 0)));
    expect(await input.inputValue()).toBe('5');
    expect(await input.evaluate((node) => node === (node as unknown as { ownerDocument: { activeElement: unknown } }).ownerDocument.activeElement)).toBe(true);
    await input.pressSequentially('0');
    await input.press('Enter');
    await row('web', 'b2').locator('td.weight', { hasText: /^50$/ }).waitFor(WAIT);
    expect(fulcrum.pool('web')!.get('b2')!.weight).toBe(50);
    expect(await input.inputValue()).toBe('');
  });

  it('holds redraws while a pointer is pressed on the table, so a click lands on the button pressed', async () => {
    const pressed = (await row('web', 'b1').locator('button[data-action="ready"]').elementHandle())!;
    const attached = () => pressed.evaluate((node) => (node as unknown as { isConnected: boolean }).isConnected);
    const polled = () => page.waitForResponse((response) => response.url().endsWith('format=json'), WAIT);
    await pressed.dispatchEvent('pointerdown', { bubbles: true });
    await polled();
    await polled();
    expect(await attached()).toBe(true);
    await pressed.dispatchEvent('pointerup', { bubbles: true });
    // Released: redraws resume and replace the row (once the next poll's JSON is read and drawn).
    await page.waitForFunction((node) => !(node as unknown as { isConnected: boolean }).isConnected, pressed, WAIT);
    expect(await attached()).toBe(false);
    await pressed.dispose();
  });

  it('brings a backend back with ready (screenshot at /tmp/fulcrum-stats-admin.png)', async () => {
    await row('web', 'b1').locator('button[data-action="ready"]').click();
    await row('web', 'b1').locator('td.state', { hasText: /^up$/ }).waitFor(WAIT);
    expect(fulcrum.pool('web')!.get('b1')!.state).toBe('up');
    await row('web', 'b2').locator('button[data-action="drain"]').click();
    await row('web', 'b2')
      .locator('td.state', { hasText: /^draining$/ })
      .waitFor(WAIT);
    await page.screenshot({ path: '/tmp/fulcrum-stats-admin.png', fullPage: true });
    expect(cspViolations).toEqual([]);
  });
});
