/**
 * The listening sockets of `fulcrum --workers N`, owned by the primary. Who accepts on them is the
 * config's `workers.accept`:
 *
 * - `'primary'` (the default): only the primary does. It passes every connection whole to a ready
 *   worker, round-robin per listener (`worker.send(message, socket)`), which serves it as its own —
 *   what Node's default `cluster.SCHED_RR` does. The workers never receive the listening sockets. A connection
 *   travels primary → worker on the same ordered IPC channel as the stick-table entries the primary
 *   relays, and it is passed only after the primary has read what its workers published before the
 *   client could connect (see `#tick`), so an entry a worker learned while answering a client has
 *   reached every worker before that client's next connection does: learned stickiness is exact.
 * - `'workers'`: each worker also gets a handle to every socket (`worker.send(message, server)`) and
 *   accepts on it itself (`server.listen(handle)`), so the kernel spreads the connections — as
 *   `cluster.SCHED_NONE` or nginx's workers on one inherited socket. This saves the primary an accept
 *   and an IPC pass per connection, but an entry a worker learns reaches the others two IPC hops
 *   later, and a client's next connection accepted by another worker within that window is balanced
 *   anew. The primary's copies still accept their share and pass it on as above.
 *
 * Why the primary holds the sockets rather than letting Node's cluster do it: a handle cluster keeps
 * internally cannot be handed to another process, and a seamless upgrade (SIGUSR2, `handover.ts`)
 * passes every listening socket to the new primary, which gives them to its workers; the sockets are
 * never closed, so no connection is refused (nginx's binary upgrade, HAProxy's `-sf` with its
 * listeners passed over a socket).
 *
 * The primary's servers are created with `pauseOnConnect` (never read). Connections accepted while no
 * worker is ready wait, paused, up to `MAX_WAITING`; past it the oldest is closed (a client retries a
 * reset connection; the kernel's backlog is the real queue).
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
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
  /** Listeners a predecessor still holds and sends later (`adopt`), with their addresses. */
  readonly #deferred = new Map<string, AddressInfo>();
  /** Accepted by the primary while no worker was ready: `[key, socket, since]`. */
  readonly #waiting: { key: string; socket: Socket; since: number }[] = [];
  /** Per listener, the turn of the round-robin (each listener its own, as cluster's round-robin handles). */
  readonly #next = new Map<string, number>();
  /**
   * Per worker, the connections sent to it whose send has not completed. Node queues a handle behind
   * the previous one until the worker acknowledges it; a worker that dies leaves that queue unsent and
   * the sockets open in this process, with no timer: `workerGone` closes them.
   */
  readonly #sending = new Map<Worker, Set<Socket>>();
  #closed = false;
  /** The workers that take connections now (set by the primary). */
  readyWorkers: () => readonly Worker[] = () => [];

  /** Accepted in the current turn of the event loop, and in the previous one (passed at the next check phase). */
  #accepted: { key: string; socket: Socket }[] = [];
  #ripe: { key: string; socket: Socket }[] = [];
  #ticking = false;
  readonly #tickBound = (): void => this.#tick();

  private constructor(servers: Map<string, Server>) {
    this.#servers = servers;
    for (const [key, server] of servers) server.on('connection', (socket: Socket) => this.#accept(key, socket));
  }

  /**
   * A connection accepted in this turn's poll phase is passed on in the NEXT turn's check phase, after
   * one more poll phase. Why: a worker that learns a stick-table entry while answering a client
   * writes it to its IPC pipe (synchronously, batches of one) before it writes the response, so the
   * entry is in the primary's pipe before that client's next SYN can exist. The poll phase of the
   * turn after the accept reads that pipe (it was readable before the accept), and relays the entry
   * to every worker before this connection is sent on the same channel; the receiving worker applies
   * the entry before it sees the connection. Accepting and passing in the same turn would not be
   * enough: libuv accepts until EAGAIN, so a connection that arrived after this turn's `epoll_wait`
   * is accepted before a pipe that became readable just before it is read. The cost is one turn of
   * the primary's loop per connection, no timer.
   */
  #accept(key: string, socket: Socket): void {
    this.#accepted.push({ key, socket });
    if (!this.#ticking) {
      this.#ticking = true;
      setImmediate(this.#tickBound);
    }
  }

  #tick(): void {
    const ripe = this.#ripe;
    this.#ripe = this.#accepted;
    this.#accepted = ripe;
    for (const { key, socket } of ripe) this.#relay(key, socket);
    ripe.length = 0;
    this.#ticking = this.#ripe.length > 0;
    if (this.#ticking) setImmediate(this.#tickBound);
  }

  /**
   * Bind every listener `config` names, or take it from `inherited` (a predecessor's, received with
   * `pauseOnConnect`); the connections those accepted meanwhile go to the first ready worker.
   * Inherited listeners the config no longer names are closed. Rejects, with nothing left open, when
   * a port cannot be bound.
   */
  static async open(config: FulcrumConfig, inherited?: Map<string, InheritedListener>, deferred?: ReadonlyMap<string, AddressInfo>): Promise<PrimaryListeners> {
    const servers = new Map<string, Server>();
    const later = new Map<string, AddressInfo>();
    const held: [string, Socket][] = [];
    try {
      for (const [key, { port, host }] of listenerAddresses(config)) {
        const handed = inherited?.get(key);
        const coming = deferred?.get(key);
        if (handed === undefined && coming !== undefined) {
          later.set(key, coming);
          continue;
        }
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
    for (const [key, address] of later) listeners.#deferred.set(key, address);
    for (const [key, socket] of held) listeners.#relay(key, socket);
    return listeners;
  }

  /**
   * Take the listening sockets a predecessor sent only now (`Inherited.deferred`): from here they
   * accept, and what they accepted since they arrived is passed on. Sockets the config does not name
   * are closed. Returns the keys still missing (nothing serves those).
   */
  adopt(received: Map<string, InheritedListener>): string[] {
    for (const [key, handed] of received) {
      if (this.#closed || !this.#deferred.has(key)) continue;
      received.delete(key);
      this.#deferred.delete(key);
      handed.server.removeAllListeners('connection');
      this.#servers.set(key, handed.server);
      handed.server.on('connection', (socket: Socket) => this.#accept(key, socket));
      for (const socket of handed.pending.splice(0)) this.#relay(key, socket);
    }
    closeInherited(received);
    return [...this.#deferred.keys()];
  }

  /** Every listener's key, those still to come from a predecessor included. */
  keys(): string[] {
    return [...this.#servers.keys(), ...this.#deferred.keys()];
  }

  /** The listening sockets by key: what a worker adopts and a successor receives. */
  get servers(): ReadonlyMap<string, Server> {
    return this.#servers;
  }

  /** Connections accepted here that wait for a ready worker. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /** The address of every listener, by key: what a worker that does not accept reports as its own. */
  addressInfo(): Record<string, AddressInfo> {
    const out: Record<string, AddressInfo> = Object.fromEntries(this.#deferred);
    for (const [key, server] of this.#servers) {
      const address = server.address();
      if (address !== null && typeof address === 'object') out[key] = { address: address.address, family: address.family, port: address.port };
    }
    return out;
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
    if (this.#closed || !this.#servers.has(key)) {
      socket.destroy();
      return;
    }
    const workers = this.readyWorkers();
    const turn = this.#next.get(key) ?? 0;
    this.#next.set(key, turn + 1);
    const worker = workers.length === 0 ? undefined : workers[turn % workers.length]!;
    if (worker === undefined || !worker.isConnected()) {
      socket.setTimeout(WAITING_TIMEOUT_MS, () => socket.destroy());
      this.#waiting.push({ key, socket, since: Date.now() });
      if (this.#waiting.length > MAX_WAITING) this.#waiting.shift()!.socket.destroy();
      return;
    }
    // `send` closes the primary's copy (and clears its timeout) once the worker has it.
    let sending = this.#sending.get(worker);
    if (sending === undefined) this.#sending.set(worker, (sending = new Set()));
    sending.add(socket);
    worker.send({ fulcrum: 'w', t: 'connection', key }, socket, (error) => {
      sending.delete(socket);
      if (error) socket.destroy();
    });
  }

  /**
   * `worker` exited: close the connections still on their way to it (queued behind an unacknowledged
   * handle, or written to a pipe nobody reads any more). Their clients see the connection closed, as
   * when a worker dies holding them, instead of waiting on a socket nothing serves.
   */
  workerGone(worker: Worker): void {
    const sending = this.#sending.get(worker);
    this.#sending.delete(worker);
    for (const socket of sending ?? []) socket.destroy();
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
    for (const server of this.#servers.values()) server.close();
    // Accepted but not passed yet: passed now, so they reach a worker before its shutdown (the
    // ordering with the stick-table entries matters less than a connection reset).
    for (const { key, socket } of this.#ripe.splice(0)) this.#relay(key, socket);
    for (const { key, socket } of this.#accepted.splice(0)) this.#relay(key, socket);
    this.#closed = true;
    for (const { socket } of this.#waiting.splice(0)) socket.destroy();
  }
}
