/**
 * The listening sockets of `fulcrum --workers N`, owned by the primary and given to each worker as a
 * handle (`worker.send(message, server)`); a worker makes its frontends accept on what it received
 * (`server.listen(handle)`), so the kernel spreads the connections over the workers, which accept
 * them themselves — as Node's `cluster.SCHED_NONE` or nginx's workers on one inherited socket.
 *
 * Why the primary holds them rather than letting Node's cluster do it: a handle cluster keeps
 * internally cannot be handed to another process, and a seamless upgrade (SIGUSR2, `handover.ts`)
 * passes every listening socket to the new primary, which gives them to its workers; the sockets are
 * never closed, so no connection is refused (nginx's binary upgrade, HAProxy's `-sf` with its
 * listeners passed over a socket). The primary also gives them to a replacement worker.
 *
 * A process that holds a listening socket in Node accepts on it: the primary's copies accept too.
 * They are created with `pauseOnConnect` (never read), and what the primary accepts is passed whole
 * to a ready worker, round-robin (`worker.send(message, socket)`), which serves it as its own — what
 * Node's default `cluster.SCHED_RR` does with every connection. Connections accepted while no worker
 * is ready wait, paused, up to `MAX_WAITING`; past it the oldest is closed (a client retries a
 * reset connection; the kernel's backlog is the real queue).
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Worker } from 'node:cluster';
import type { FulcrumConfig } from './config';
import type { InheritedListener } from './handover';
import { serviceListeners } from './runner';

/** Connections the primary holds at most while no worker is ready to take them. */
const MAX_WAITING = 1024;
/** How long a held connection waits for a ready worker, ms, before it is closed. */
const WAITING_TIMEOUT_MS = 10_000;

/** Every listener `config` names, keyed as the runner adopts them: `frontend <key>`, `service <host:port>`. */
export function listenerAddresses(config: FulcrumConfig): Map<string, { port: number; host: string }> {
  const addresses = new Map<string, { port: number; host: string }>();
  for (const frontend of config.frontends) addresses.set(`frontend ${frontend.key}`, { port: frontend.port, host: frontend.host });
  for (const [key, listener] of serviceListeners(config)) addresses.set(`service ${key}`, listener);
  return addresses;
}

function bind(port: number, host: string): Promise<Server> {
  return new Promise((resolvePromise, reject) => {
    const server = createServer({ pauseOnConnect: true });
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolvePromise(server);
    });
  });
}

function closeInherited(inherited: Map<string, InheritedListener> | undefined): void {
  for (const unused of inherited?.values() ?? []) {
    unused.server.close();
    for (const socket of unused.pending) socket.destroy();
  }
  inherited?.clear();
}

export class PrimaryListeners {
  readonly #servers: Map<string, Server>;
  /** Accepted by the primary while no worker was ready: `[key, socket, since]`. */
  readonly #waiting: { key: string; socket: Socket; since: number }[] = [];
  #next = 0;
  #closed = false;
  /** The workers that take connections now (set by the primary). */
  readyWorkers: () => readonly Worker[] = () => [];

  private constructor(servers: Map<string, Server>) {
    this.#servers = servers;
    for (const [key, server] of servers) server.on('connection', (socket: Socket) => this.#relay(key, socket));
  }

  /**
   * Bind every listener `config` names, or take it from `inherited` (a predecessor's, received with
   * `pauseOnConnect`); the connections those accepted meanwhile go to the first ready worker.
   * Inherited listeners the config no longer names are closed. Rejects, with nothing left open, when
   * a port cannot be bound.
   */
  static async open(config: FulcrumConfig, inherited?: Map<string, InheritedListener>): Promise<PrimaryListeners> {
    const servers = new Map<string, Server>();
    const held: [string, Socket][] = [];
    try {
      for (const [key, { port, host }] of listenerAddresses(config)) {
        const handed = inherited?.get(key);
        if (handed === undefined) {
          servers.set(key, await bind(port, host));
          continue;
        }
        inherited!.delete(key);
        handed.server.removeAllListeners('connection');
        servers.set(key, handed.server);
        for (const socket of handed.pending.splice(0)) held.push([key, socket]);
      }
    } catch (error) {
      for (const server of servers.values()) server.close();
      for (const [, socket] of held) socket.destroy();
      closeInherited(inherited);
      throw error;
    }
    closeInherited(inherited);
    const listeners = new PrimaryListeners(servers);
    for (const [key, socket] of held) listeners.#relay(key, socket);
    return listeners;
  }

  /** The listening sockets by key: what a worker adopts and a successor receives. */
  get servers(): ReadonlyMap<string, Server> {
    return this.#servers;
  }

  /** Connections accepted here that wait for a ready worker. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** `host:port` of every listener, by key (the ports bound for port 0 included). */
  addresses(): Map<string, string> {
    const out = new Map<string, string>();
    for (const [key, server] of this.#servers) {
      const address = server.address();
      if (address !== null && typeof address === 'object') out.set(key, `${address.address}:${address.port}`);
    }
    return out;
  }

  #relay(key: string, socket: Socket): void {
    if (this.#closed) {
      socket.destroy();
      return;
    }
    const workers = this.readyWorkers();
    const worker = workers.length === 0 ? undefined : workers[this.#next++ % workers.length]!;
    if (worker === undefined || !worker.isConnected()) {
      socket.setTimeout(WAITING_TIMEOUT_MS, () => socket.destroy());
      this.#waiting.push({ key, socket, since: Date.now() });
      if (this.#waiting.length > MAX_WAITING) this.#waiting.shift()!.socket.destroy();
      return;
    }
    // `send` closes the primary's copy (and clears its timeout) once the worker has it.
    worker.send({ fulcrum: 'w', t: 'connection', key }, socket, (error) => {
      if (error) socket.destroy();
    });
  }

  /** A worker became ready: hand it (and the others) the connections that waited; close the stale ones. */
  flush(): void {
    const now = Date.now();
    for (const { key, socket, since } of this.#waiting.splice(0)) {
      if (socket.destroyed || now - since > WAITING_TIMEOUT_MS) socket.destroy();
      else this.#relay(key, socket);
    }
  }

  /** Close the listener `key` here for good (no worker serves it any more), and the connections waiting for it. */
  retire(key: string): void {
    this.#servers.get(key)?.close();
    this.#servers.delete(key);
    for (let i = this.#waiting.length - 1; i >= 0; i--) {
      if (this.#waiting[i]!.key === key) this.#waiting.splice(i, 1)[0]!.socket.destroy();
    }
  }

  /** Stop accepting here (the workers' and a successor's copies stay open); close what waits. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const server of this.#servers.values()) server.close();
    for (const { socket } of this.#waiting.splice(0)) socket.destroy();
  }
}
