/**
 * Chromium fetches a page and its subresources from a `createProxyServer` TLS listener with HTTP/2
 * on: the browser itself reports the protocol it negotiated (`nextHopProtocol === 'h2'`), the page
 * and a fetch() from it come through the proxy from an HTTP/1.1 backend, and the same port still
 * serves an HTTP/1.1-only client.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createProxyServer, protocolStats, type ProxyServer } from '@fulcrum/http';
import { CHROMIUM_ARGS, chromiumPath, requireChromium } from '../../../../test-support/browser';
import { certDir, type CertDir } from '../tls/certs';

/** What the page reads in the browser (the tests compile without the DOM library). */
interface PageGlobals {
  performance: { getEntries(): { name: string; nextHopProtocol: string }[] };
  fetch(url: string): Promise<{ text(): Promise<string> }>;
}

describe.skipIf(chromiumPath === undefined && !requireChromium)('Chromium over HTTP/2 through the TLS listener', () => {
  let browser: Browser;
  let backend: Server;
  let proxy: ProxyServer;
  let certs: CertDir;
  let origin: string;

  beforeAll(async () => {
    if (chromiumPath === undefined) throw new Error('CI=true but no Chromium found (set CHROMIUM_PATH or apt-get install chromium)');
    certs = certDir();
    const cert = certs.make('browser', 'localhost', ['localhost']);
    backend = createServer((req, res) => {
      if (req.url === '/api') {
        res.setHeader('content-type', 'text/plain');
        res.end(`api via HTTP/${req.httpVersion}`);
        return;
      }
      res.setHeader('content-type', 'text/html');
      res.end('<!doctype html><title>h2</title><p>hello over h2</p>');
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    proxy = createProxyServer({
      balancer: { backends: [{ id: 'web', address: `http://127.0.0.1:${(backend.address() as AddressInfo).port}` }] },
      tls: { cert: cert.cert, key: cert.key },
      http2: true,
    });
    await proxy.listen(0);
    origin = `https://localhost:${proxy.address()!.port}`;
    browser = await chromium.launch({ executablePath: chromiumPath, args: [...CHROMIUM_ARGS, '--ignore-certificate-errors'] });
  });

  afterAll(async () => {
    await browser?.close();
    await proxy?.close(0);
    await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
    certs?.remove();
  });

  it('negotiates h2 (as the browser reports it) and loads the page and a fetch through the proxy', async () => {
    const page = await browser.newPage({ ignoreHTTPSErrors: true });
    const response = await page.goto(`${origin}/`);
    expect(response?.status()).toBe(200);
    expect(await page.textContent('p')).toBe('hello over h2');
    const protocol = await page.evaluate(() => (globalThis as unknown as PageGlobals).performance.getEntries()[0]!.nextHopProtocol);
    expect(protocol).toBe('h2');
    const api = await page.evaluate(async () => (await (globalThis as unknown as PageGlobals).fetch('/api')).text());
    // Translated to HTTP/1.1 for the backend.
    expect(api).toBe('api via HTTP/1.1');
    // The navigation, the fetch and the favicon (paint entries have no protocol).
    const entries = await page.evaluate(() =>
      (globalThis as unknown as PageGlobals).performance
        .getEntries()
        .filter((e) => typeof e.nextHopProtocol === 'string')
        .map((e) => [e.name.replace(/^https:\/\/[^/]+/, ''), e.nextHopProtocol]),
    );
    expect(entries).toContainEqual(['/', 'h2']);
    expect(entries).toContainEqual(['/api', 'h2']);
    expect(entries.every(([, protocol]) => protocol === 'h2')).toBe(true);
    expect(protocolStats(proxy).h2Streams).toBeGreaterThanOrEqual(2);
    await page.close();
  });
});
