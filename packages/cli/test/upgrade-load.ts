// Continuous load across an upgrade, for the upgrade tests: connections opened per request and
// keep-alive clients, counting every refused connection and failed request.
import { Agent, request } from 'node:http';
import { TOKEN, get, roundRobin } from './helpers';

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * The upgrade tests' config: `frontends`, a pool `web` round-robin over `urls` (health-checked, header
 * stickiness), an admin listener and 3 s of grace, then `extra`.
 */
export function upgradeConfig(urls: Record<string, string>, frontends: object[], extra: object = {}): object {
  return {
    frontends,
    pools: {
      web: {
        ...roundRobin(urls),
        health: { path: '/health', intervalMs: 100, timeoutMs: 1000, fall: 1, rise: 2 },
        stickiness: { header: 'x-user' },
      },
    },
    admin: { port: 0, host: '127.0.0.1', token: TOKEN },
    shutdown: { graceMs: 3000 },
    ...extra,
  };
}

export interface LoadResult {
  ok: number;
  /** Requests on a fresh connection that failed (refused, reset, not 200): must stay 0. */
  failed: string[];
  /** Keep-alive requests retried after the server closed an idle reused connection (RFC 9112 §9.3.1). */
  retried: number;
}

/** One keep-alive GET, retried once when a reused idle connection was closed under it, as Node's docs advise. */
function keepAliveGet(port: number, agent: Agent, result: LoadResult): Promise<void> {
  const attempt = (retry: boolean): Promise<void> =>
    new Promise((resolvePromise) => {
      const req = request({ host: '127.0.0.1', port, path: '/load', agent }, (res) => {
        res.resume();
        res.on('end', () => {
          if (res.statusCode === 200) result.ok++;
          else result.failed.push(`keep-alive status ${res.statusCode}`);
          resolvePromise();
        });
      });
      req.on('error', (error: NodeJS.ErrnoException) => {
        if (req.reusedSocket && !retry && (error.code === 'ECONNRESET' || error.message === 'socket hang up')) {
          result.retried++;
          void attempt(true).then(resolvePromise);
        } else {
          result.failed.push(`keep-alive ${error.code ?? error.message}`);
          resolvePromise();
        }
      });
      req.end();
    });
  return attempt(false);
}

/** Connections opened and closed per request, and keep-alive clients, until `stop` is called. */
export function startLoad(port: number): { result: LoadResult; stop(): Promise<LoadResult> } {
  const result: LoadResult = { ok: 0, failed: [], retried: 0 };
  let running = true;
  const agents: Agent[] = [];
  const loops: Promise<void>[] = [];
  for (let i = 0; i < 3; i++) {
    loops.push(
      (async () => {
        while (running) {
          try {
            const reply = await get(port, '/load');
            if (reply.status === 200) result.ok++;
            else result.failed.push(`status ${reply.status}`);
          } catch (error) {
            result.failed.push(`fresh connection ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
          }
        }
      })(),
    );
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    agents.push(agent);
    loops.push(
      (async () => {
        while (running) await keepAliveGet(port, agent, result);
      })(),
    );
  }
  return {
    result,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      for (const agent of agents) agent.destroy();
      return result;
    },
  };
}
