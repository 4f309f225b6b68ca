// End-to-end test of the multi-service example as a user runs it: `node run.mjs` in its own process
// (importing @fulcrum/http from its built dist, as `pnpm start` does — `pnpm test` builds first), its
// six instances forked by it, spoken to over real TLS and TCP on 127.0.0.1.
//
// The client trusts exactly the example's throwaway certificate (read from the temp dir it reports)
// and sends the SNI names a browser would, so each request also proves the certificate was chosen by
// SNI and is valid for that name. `--seconds` bounds every run even if this test dies, and the example
// leaves when its IPC channel closes; each test checks that it exited 0, that no instance it started
// is alive, and that the certificate directory is gone.
import { existsSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { forkExample, interrupt, isAlive, type Exit, type ExampleProcess } from '../../test-support/example-process';

const RUN = fileURLToPath(new URL('./run.mjs', import.meta.url));
const CERTIFIED = new Set(['example.test', 'api.example.test', 'www.example.test']);

interface Ready {
  type: 'ready';
  httpsPort: number;
  httpPort: number;
  certificateDir: string;
  instances: { pool: string; instance: string; port: number; pid: number }[];
}
type Message = Ready | { type: 'split'; weights: Record<string, number> };

interface Example extends ExampleProcess<Message> {
  ready: Ready;
  ca: Buffer;
}

const running = new Set<ExampleProcess<Message>>();

async function start(args: string[]): Promise<Example> {
  const run = forkExample<Message>(RUN, ['--https-port', '0', '--http-port', '0', '--seconds', '20', ...args]);
  running.add(run);
  const ready = await run.message('ready', 15_000);
  return Object.assign(run, { ready, ca: readFileSync(join(ready.certificateDir, 'cert.pem')) });
}

/** SIGINT, as Ctrl-C would; returns how it exited. */
function stop(example: ExampleProcess<Message>): Promise<Exit> {
  running.delete(example);
  return interrupt(example);
}

afterEach(async () => {
  for (const example of [...running]) await stop(example);
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  peerNames?: string;
}

/** One HTTPS request as a browser at `https://<host>:<port>` sends it: SNI and Host both `host`. */
function get(example: Example, host: string, path: string, headers: Record<string, string> = {}): Promise<Answer> {
  const port = example.ready.httpsPort;
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: '127.0.0.1',
        port,
        servername: host,
        path,
        ca: example.ca,
        // A name the certificate does not cover (to test routing of unknown hosts) skips only the name check.
        ...(CERTIFIED.has(host) ? {} : { checkServerIdentity: () => undefined }),
        agent: false,
        timeout: 5000,
        headers: { host: `${host}:${port}`, ...headers },
      },
      (res) => {
        const peerNames = (res.socket as TLSSocket).getPeerCertificate().subjectaltname;
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, peerNames }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

function getPlain(example: Example, host: string, path: string, method = 'GET'): Promise<Answer> {
  const port = example.ready.httpPort;
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, path, method, agent: false, timeout: 5000, headers: { host: `${host}:${port}` } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** The `name=value` part of the split cookie a response set, if any. */
function splitCookie(answer: Answer): string | undefined {
  const raw = answer.headers['set-cookie'];
  const line = (Array.isArray(raw) ? raw : raw === undefined ? [] : [raw]).find((c) => c.startsWith('fulcrum_pool_orders='));
  return line?.split(';')[0];
}

/** A client with a cookie jar of one cookie: its first request is assigned, later ones replay the cookie. */
class Client {
  cookie: string | undefined;
  constructor(readonly example: Example) {}
  async orders(): Promise<{ instance: string; version: string }> {
    const answer = await get(this.example, 'api.example.test', '/orders/7', this.cookie === undefined ? {} : { cookie: this.cookie });
    expect(answer.status).toBe(200);
    this.cookie = splitCookie(answer) ?? this.cookie;
    return JSON.parse(answer.body) as { instance: string; version: string };
  }
}

async function nextSplit(example: Example, seen: number): Promise<Record<string, number>> {
  return (await example.message('split', 10_000, seen)).weights;
}

async function expectCleanExit(example: Example): Promise<void> {
  const { code } = await stop(example);
  expect(code).toBe(0);
  for (const { instance, pid } of example.ready.instances) expect(isAlive(pid), `${instance} (pid ${pid}) is still running`).toBe(false);
  expect(existsSync(example.ready.certificateDir)).toBe(false);
}

describe('examples/multi-service', () => {
  it('routes HTTPS by host and path prefix, redirects HTTP to HTTPS, and answers 404 without a route', async () => {
    const example = await start([]);

    const first = await get(example, 'api.example.test', '/catalog/items?page=2');
    const second = await get(example, 'api.example.test', '/catalog/items?page=2');
    expect(first.status).toBe(200);
    // The certificate the SNI name selected is the example's, and it was verified for that name.
    expect(first.peerNames).toContain('DNS:*.example.test');
    const catalog = [JSON.parse(first.body), JSON.parse(second.body)];
    expect(catalog.map((a) => a.service)).toEqual(['catalog', 'catalog']);
    expect(new Set(catalog.map((a) => a.instance))).toEqual(new Set(['catalog-1', 'catalog-2']));
    expect(catalog[0]).toMatchObject({ path: '/catalog/items?page=2', forwardedProto: 'https' });

    const rewritten = JSON.parse((await get(example, 'www.example.test', '/api/catalog/items')).body);
    expect(rewritten).toMatchObject({ service: 'catalog', path: '/catalog/items' });

    const site = await get(example, 'www.example.test', '/');
    expect(site.status).toBe(200);
    expect(site.headers['content-type']).toMatch(/^text\/html/);
    expect(site.body).toContain('<h1>www.example.test</h1>');
    expect((await get(example, 'example.test', '/style.css')).headers['x-served-by']).toBe('site-1');

    // /orders belongs to api.example.test only; /admin to nobody; another host to nobody.
    expect((await get(example, 'www.example.test', '/orders/1')).headers['x-served-by']).toBe('site-1');
    expect((await get(example, 'api.example.test', '/admin')).status).toBe(404);
    expect((await get(example, 'api.example.test', '/ordersx')).status).toBe(404);
    expect((await get(example, 'evilexample.test', '/catalog/items')).status).toBe(404);

    const redirect = await getPlain(example, 'www.example.test', '/x/y?z=1');
    expect(redirect.status).toBe(301);
    expect(redirect.headers.location).toBe(`https://www.example.test:${example.ready.httpsPort}/x/y?z=1`);
    expect((await getPlain(example, 'api.example.test', '/orders', 'POST')).status).toBe(308);
    expect((await getPlain(example, 'elsewhere.test', '/')).status).toBe(421);

    await expectCleanExit(example);
  });

  it('keeps each client on one orders version through a ramp, and moves everyone at 100 %', async () => {
    const example = await start(['--ramp-step', '50']);
    expect(example.messages.filter((m) => m.type === 'split')).toHaveLength(0);

    const clients = Array.from({ length: 12 }, () => new Client(example));
    const assigned = new Map<Client, string>();
    for (const client of clients) {
      const answer = await client.orders();
      expect(client.cookie, 'a new client gets the signed split cookie').toMatch(/^fulcrum_pool_orders=/);
      assigned.set(client, answer.version);
    }
    const setCookie = await get(example, 'api.example.test', '/orders/1');
    const attributes = ([setCookie.headers['set-cookie']].flat().find((c) => c?.startsWith('fulcrum_pool_orders=')) ?? '').split('; ');
    expect(attributes).toEqual(expect.arrayContaining(['Secure', 'HttpOnly']));

    for (const client of clients) {
      for (let i = 0; i < 3; i++) expect((await client.orders()).version).toBe(assigned.get(client));
    }
    // Testers reach the canary on demand, whatever their cookie says.
    const tester = await get(example, 'api.example.test', '/orders/1', { 'x-fulcrum-pool': 'orders-v2', cookie: clients[0]!.cookie! });
    expect(JSON.parse(tester.body).version).toBe('v2');
    // A forged cookie is ignored (re-assigned), never trusted.
    const forged = await get(example, 'api.example.test', '/orders/1', { cookie: 'fulcrum_pool_orders=orders-v2' });
    expect(forged.status).toBe(200);
    expect(splitCookie(forged)).not.toBe('fulcrum_pool_orders=orders-v2');

    // One ramp step (60 % to v2): clients already assigned stay where they are.
    example.child.kill('SIGUSR2');
    expect(await nextSplit(example, 0)).toEqual({ 'orders-v1': 40, 'orders-v2': 60 });
    for (const client of clients) expect((await client.orders()).version).toBe(assigned.get(client));

    // The last step (v1 at 0 %): every client, old cookie or none, is on v2.
    example.child.kill('SIGUSR2');
    expect(await nextSplit(example, 1)).toEqual({ 'orders-v1': 0, 'orders-v2': 100 });
    for (const client of clients) expect((await client.orders()).version).toBe('v2');
    for (let i = 0; i < 5; i++) expect((await new Client(example).orders()).version).toBe('v2');

    await expectCleanExit(example);
  });

  it('ramps the canary by itself with --ramp and stops by itself after --seconds', async () => {
    const example = await start(['--ramp', '--ramp-every', '0.2', '--ramp-step', '45', '--seconds', '3']);
    expect(await nextSplit(example, 0)).toEqual({ 'orders-v1': 45, 'orders-v2': 55 });
    expect(await nextSplit(example, 1)).toEqual({ 'orders-v1': 0, 'orders-v2': 100 });
    expect((await new Client(example).orders()).version).toBe('v2');
    // No signal from us: --seconds ends it.
    running.delete(example);
    const { code } = await example.exited;
    expect(code).toBe(0);
    expect(example.output()).toContain('stopping (--seconds elapsed)');
    for (const { pid } of example.ready.instances) expect(isAlive(pid)).toBe(false);
    expect(existsSync(example.ready.certificateDir)).toBe(false);
  });
});
