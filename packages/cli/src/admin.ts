/**
 * The admin API: HAProxy's runtime API (`set server … state drain|maint|ready`, `set weight`,
 * `add server`, `del server`) as small JSON-over-HTTP endpoints, on its own port or under a path.
 *
 *   GET    {prefix}/state                               every pool's snapshot and every split
 *                                                       (`fulcrum --workers`: summed; `?per=worker` adds each worker's)
 *   POST   {prefix}/pools/:pool/backends/:id/drain       (also /maintenance, /ready)
 *   PUT    {prefix}/pools/:pool/backends/:id/weight      body { "weight": 3 }
 *   POST   {prefix}/pools/:pool/backends                 body: a backend spec → 201
 *   DELETE {prefix}/pools/:pool/backends/:id             → 202 (its in-flight requests finish)
 *   PUT    {prefix}/routes/:route/split                  body { "blue": 90, "green": 10 }
 *   POST   {prefix}/reload                               re-read the config file
 *
 * Every request needs `Authorization: Bearer <token>`, compared in constant time over SHA-256
 * digests (equal lengths, so neither the content nor the length of the token leaks through timing).
 * Changes are runtime state, as in HAProxy: a reload re-applies the file's backends, weights and
 * splits (drain and maintenance states survive, since reload keeps the Backend objects). Errors are
 * JSON `{ "error": "…" }` and never contain backend addresses they were not given.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isInvalidOptionError, type LoadBalancer, type LoadBalancerSnapshot } from '@fulcrum/core';
import type { WorkerChange } from './workers';

/** What the admin API acts on (the runner implements it). */
export interface AdminControl {
  pool(name: string): LoadBalancer | undefined;
  poolNames(): readonly string[];
  /** The current split of every split route, by route name or index. */
  splits(): Record<string, Readonly<Record<string, number>>>;
  setSplit(route: string, weights: Readonly<Record<string, number>>): void;
  /** Re-read the config file; rejects with the validation error. */
  reload(): Promise<void>;
  /** A change succeeded here (`fulcrum --workers`: every other worker applies it too). */
  changed?(change: WorkerChange): void;
  /**
   * Every worker's pools with their counters summed (`fulcrum --workers`), and with `perWorker` each
   * worker's own; `undefined` in one process.
   */
  aggregate?(perWorker?: boolean):
    | Promise<{
        pools: Record<string, LoadBalancerSnapshot>;
        workers: { slot: number; pid: number; requests: number; pools?: Record<string, LoadBalancerSnapshot> }[];
      }>
    | undefined;
}

/** Largest request body the admin API reads. */
const MAX_BODY = 64 * 1024;

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

function reply(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function readJson(req: IncomingMessage): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY) {
        reject(new HttpError(413, 'request body too large'));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (size === 0) return resolve(undefined);
      try {
        resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
      } catch {
        reject(new HttpError(400, 'the body must be JSON'));
      }
    });
    req.on('error', reject);
  });
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** Admin handler options. */
export interface AdminHandlerOptions {
  /** The bearer token. Required. */
  token: string;
  /** Path prefix the API lives under (`''` on its own port). Default `''`. */
  prefix?: string;
}

/**
 * A `(req, res)` handler serving the admin API for `control`. Returns `false` without answering
 * when the request is outside `prefix` (so a frontend can fall through to the proxy).
 */
export function createAdminHandler(control: AdminControl, options: AdminHandlerOptions): (req: IncomingMessage, res: ServerResponse) => boolean {
  const expected = digest(options.token);
  const prefix = options.prefix ?? '';

  const authorized = (req: IncomingMessage): boolean => {
    const header = req.headers.authorization;
    if (typeof header !== 'string' || !header.startsWith('Bearer ')) return false;
    return timingSafeEqual(digest(header.slice(7).trim()), expected);
  };

  const poolOf = (name: string): LoadBalancer => {
    const lb = control.pool(name);
    if (lb === undefined) throw new HttpError(404, `no pool named ${JSON.stringify(name)}`);
    return lb;
  };

  const route = async (method: string, parts: readonly string[], req: IncomingMessage): Promise<[number, unknown]> => {
    const [first, name, second, id, action] = parts;
    if (parts.length === 1 && first === 'state' && (method === 'GET' || method === 'HEAD')) {
      const query = req.url?.indexOf('?') ?? -1;
      const perWorker = query !== -1 && new URLSearchParams(req.url!.slice(query + 1)).get('per') === 'worker';
      const aggregated = control.aggregate?.(perWorker);
      if (aggregated !== undefined) return [200, { ...(await aggregated), splits: control.splits() }];
      const pools: Record<string, LoadBalancerSnapshot> = {};
      for (const pool of control.poolNames()) pools[pool] = control.pool(pool)!.snapshot();
      return [200, { pools, splits: control.splits() }];
    }
    if (parts.length === 1 && first === 'reload' && method === 'POST') {
      await control.reload();
      control.changed?.({ op: 'reload' });
      return [200, { reloaded: true }];
    }
    if (first === 'pools' && name !== undefined && second === 'backends') {
      const lb = poolOf(name);
      if (parts.length === 3 && method === 'POST') {
        const spec = await readJson(req);
        const backend = lb.add(spec as never);
        control.changed?.({ op: 'add', pool: name, spec });
        return [201, { added: backend.id }];
      }
      if (parts.length === 4 && id !== undefined && method === 'DELETE') {
        if (lb.get(id) === undefined) throw new HttpError(404, `no backend ${JSON.stringify(id)} in pool ${JSON.stringify(name)}`);
        void lb.remove(id);
        control.changed?.({ op: 'remove', pool: name, id });
        return [202, { removing: id }];
      }
      if (parts.length === 5 && id !== undefined) {
        if (lb.get(id) === undefined) throw new HttpError(404, `no backend ${JSON.stringify(id)} in pool ${JSON.stringify(name)}`);
        if (method === 'POST' && (action === 'drain' || action === 'maintenance' || action === 'ready')) {
          if (action === 'drain') lb.drain(id);
          else if (action === 'maintenance') lb.maintain(id);
          else lb.ready(id);
          control.changed?.({ op: action, pool: name, id });
          return [200, { id, state: lb.get(id)!.state }];
        }
        if (method === 'PUT' && action === 'weight') {
          const body = (await readJson(req)) as { weight?: unknown } | undefined;
          lb.setWeight(id, body?.weight as number);
          control.changed?.({ op: 'weight', pool: name, id, weight: body?.weight as number });
          return [200, { id, weight: lb.get(id)!.weight }];
        }
      }
    }
    if (first === 'routes' && name !== undefined && second === 'split' && parts.length === 3 && method === 'PUT') {
      const weights = (await readJson(req)) as Record<string, number>;
      control.setSplit(name, weights);
      control.changed?.({ op: 'split', route: name, weights });
      return [200, { route: name, split: control.splits()[name] }];
    }
    throw new HttpError(404, 'no such admin endpoint');
  };

  return (req, res) => {
    const url = req.url ?? '/';
    const query = url.indexOf('?');
    const pathname = query === -1 ? url : url.slice(0, query);
    if (prefix !== '' && pathname !== prefix && !pathname.startsWith(`${prefix}/`)) return false;
    if (!authorized(req)) {
      req.resume();
      reply(res, 401, { error: 'unauthorized' }, { 'www-authenticate': 'Bearer realm="fulcrum-admin"' });
      return true;
    }
    let parts: string[];
    try {
      parts = pathname
        .slice(prefix.length)
        .split('/')
        .filter((p) => p !== '')
        .map(decodeURIComponent);
    } catch {
      reply(res, 400, { error: 'malformed path' });
      return true;
    }
    route(req.method ?? 'GET', parts, req).then(
      ([status, body]) => reply(res, status, body),
      (error: unknown) => {
        if (error instanceof HttpError) return reply(res, error.status, { error: error.message });
        if (isInvalidOptionError(error) || (error instanceof Error && error.name === 'ConfigFileError'))
          return reply(res, 400, { error: (error as Error).message });
        reply(res, 500, { error: 'internal error' });
      },
    );
    return true;
  };
}
