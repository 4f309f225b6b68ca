import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { waitFor } from '../../../test-support/wait-for';

/** A backend on 127.0.0.1 that answers with its name; `/health` answers `health` (200 unless `sick`). */
export async function startBackend(
  name: string,
): Promise<{ server: Server; port: number; url: string; hits: number; setSick(sick: boolean): void; close(): Promise<void> }> {
  let sick = false;
  const state = { hits: 0 };
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      res.writeHead(sick ? 503 : 200).end('health');
      return;
    }
    state.hits++;
    if (req.url?.startsWith('/slow')) {
      setTimeout(() => res.end(name), 150);
      return;
    }
    res.end(name);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    get hits() {
      return state.hits;
    },
    setSick: (value) => {
      sick = value;
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

export interface Reply {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** One request with a fresh connection (no keep-alive, so nothing lingers after a test). */
export function get(
  port: number,
  path: string,
  options: { method?: string; headers?: Record<string, string>; body?: string } = {},
  host = '127.0.0.1',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: options.method ?? 'GET', headers: { connection: 'close', ...options.headers }, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Poll `check` until it returns true (bounded; the suite never waits on wall-clock assertions). */
export async function until(check: () => boolean | Promise<boolean>, what: string, limitMs = 5000): Promise<void> {
  await waitFor(check, { what, timeoutMs: limitMs, intervalMs: 20 });
}

export const SECRET = 'a-cookie-secret-of-at-least-32-bytes-long!!';
export const TOKEN = 'admin-token-0123456789abcdef';

/** A pool's algorithm and backends: round-robin over `{ id: address }`, in that order. */
export function roundRobin(addresses: Record<string, string>): { algorithm: 'round-robin'; backends: { id: string; address: string }[] } {
  return { algorithm: 'round-robin', backends: Object.entries(addresses).map(([id, address]) => ({ id, address })) };
}

/** The pino-style JSON lines in a process's output (other lines skipped). */
export function logLines(text: string): Record<string, unknown>[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}

/** The port of a logged `host:port` address. */
export const portOf = (address: unknown): number => Number(String(address).split(':').pop());

export const AUTH = { authorization: `Bearer ${TOKEN}` };
