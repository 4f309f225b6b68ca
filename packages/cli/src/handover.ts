/**
 * Seamless upgrades: a running `fulcrum` starts its successor and hands it the listening sockets and
 * the state worth keeping, then drains and exits — nginx's binary upgrade on `USR2`, HAProxy's
 * `-sf` with its listeners passed over a socket. No listening socket is ever closed, so no connection
 * is refused: until the old process stops accepting, both accept from the same kernel queue, and
 * what waits in that queue when it stops is accepted by the successor.
 *
 * The old process spawns the same command line (`process.execPath`, its `execArgv`, the script and
 * its arguments): after a package upgrade the script path resolves to the new code, which is the
 * point. The child is told it is a successor by `FULCRUM_HANDOVER=1`. Once it listens for the
 * handover it says `hello` — not before: a listening socket starts accepting the moment it arrives
 * in a process, and a connection accepted before anyone holds it would be lost. Then it gets one
 * `state` message (pool health counters, admin states and stick-table entries) and one `listener`
 * message per listening socket, each carrying the socket (Node's `subprocess.send` with a
 * `net.Server` handle). It answers `ready` once every frontend serves, and only then does the old
 * process stop accepting. A successor that fails (a broken config, a port it cannot bind, a crash)
 * exits or times out, and the old process keeps serving as if nothing happened.
 *
 * What carries over: listening sockets (frontends, admin, stats and metrics listeners, by their
 * config key), each backend's active-check counter (`LoadBalancer.restoreHealth`), drain and
 * maintenance set by an operator, and learned stickiness (stick-table entries, with their expiry).
 * Cookie stickiness needs nothing: its cookies are signed with the configured secrets. Not carried:
 * outlier ejections (they end within `maxEjectionMs` and are re-learned from traffic), rate-limit
 * counters (local and short-lived) and connections themselves — in-flight requests and tunnels finish
 * on the old process within `shutdown.graceMs`.
 *
 * Under `fulcrum --workers N` the primary is the process that hands over (workers.ts): its listening
 * sockets are received with `pauseOnConnect` (it passes what it accepts to its workers whole), and
 * the state adds what the primary keeps for later workers (`PrimaryHandover`). A primary whose
 * workers do not accept (`workers.accept: 'primary'`) says `hello` with `deferListeners`: it gets the
 * state and the sockets' addresses, and asks for the sockets (`listeners`) once its workers serve, so
 * that it accepts nothing it could not pass on; until then the predecessor accepts everything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { BackendState, StickEntry } from '@fulcrum/core';
import type { WorkerChange } from './workers';

/** How long a successor may take to receive the handover, start and serve, ms. */
export const UPGRADE_TIMEOUT_MS = 30_000;

/** The environment variable that tells a `fulcrum` process it takes over from its parent. */
export const HANDOVER_ENV = 'FULCRUM_HANDOVER';

/** What one pool hands over. */
export interface PoolHandover {
  /** Per backend id: the check counter (null without health checks) and the published state. */
  readonly backends: readonly { readonly id: string; readonly health: number | null; readonly state: BackendState }[];
  /** Learned stickiness, as `StickTable.entries()` gives it. */
  readonly sticky: readonly StickEntry<string>[];
}

/**
 * What the primary of `fulcrum --workers N` hands its successor beyond the pools' state: what it
 * keeps for workers that start later (see workers.ts).
 */
export interface PrimaryHandover {
  /** The merged stick-table entries of every namespace (pools' tables, shared rate limits). */
  readonly entries: readonly StickEntry<unknown>[];
  /** The checking worker's last verdict per backend. */
  readonly health: readonly WorkerChange[];
  /** Admin changes since the last reload, in order. */
  readonly adminLog: readonly WorkerChange[];
}

/** The state a successor restores before it serves. Plain JSON: it crosses the IPC channel. */
export interface HandoverState {
  readonly version: 1;
  readonly pools: Readonly<Record<string, PoolHandover>>;
  /** Set by a `--workers` primary (the pools' part is its checking worker's). */
  readonly primary?: PrimaryHandover;
}

/** A listening socket a successor received, and the connections it accepted before it was adopted. */
export interface InheritedListener {
  readonly server: Server;
  /** Connections the received server accepted before a frontend adopted it; paused, in order. */
  readonly pending: Socket[];
}

/** What a successor received: listeners by key (`frontend host:port`, `service host:port`), and the state. */
export interface Inherited {
  readonly listeners: Map<string, InheritedListener>;
  readonly state: HandoverState;
  /**
   * Listeners this process serves without accepting on them: a `--workers` primary with
   * `workers.accept: 'primary'` accepts and passes each connection (`FulcrumRunner.serveRelayed`).
   * By key, with the address the primary bound.
   */
  readonly relayed?: Map<string, AddressInfo>;
  /**
   * Set when the listening sockets were deferred (`receiveHandover`'s `deferListeners`, with a
   * predecessor that knows it): where each is, and `take()`, which asks for them — they accept from
   * the moment they arrive. `listeners` is then empty.
   */
  readonly deferred?: { readonly addresses: ReadonlyMap<string, AddressInfo>; take(timeoutMs: number): Promise<Map<string, InheritedListener>> };
}

type HandoverMessage =
  /** `deferListeners`: send the listening sockets only when asked (`listeners`), the state and their addresses now. */
  | { readonly fulcrum: 'hello'; readonly deferListeners?: boolean }
  | {
      readonly fulcrum: 'state';
      readonly state: HandoverState;
      readonly listeners: readonly string[];
      /** Set when the sockets follow only on `listeners`: their addresses, by key. */
      readonly deferred?: Readonly<Record<string, AddressInfo>>;
    }
  | { readonly fulcrum: 'listeners' }
  | { readonly fulcrum: 'listener'; readonly key: string }
  | { readonly fulcrum: 'ready'; readonly pid: number };

function isMessage(value: unknown): value is HandoverMessage {
  return typeof value === 'object' && value !== null && typeof (value as { fulcrum?: unknown }).fulcrum === 'string';
}

export function isServer(handle: unknown): handle is Server {
  return typeof handle === 'object' && handle !== null && typeof (handle as Server).listen === 'function' && typeof (handle as Server).address === 'function';
}

/**
 * Hold what a received listening server accepts until something adopts it: the received server
 * accepts as soon as it arrives, and no client may wait on a connection nobody reads. With
 * `pauseOnConnect` the held sockets never read (so they can be passed on to another process whole,
 * as a `--workers` primary does); otherwise they are paused, for this process to serve.
 */
export function holdConnections(received: Server, pauseOnConnect = false): InheritedListener {
  const pending: Socket[] = [];
  // Node delivers a received server once it listens, from a callback rather than an I/O event, so it
  // has accepted nothing yet: a server created with `pauseOnConnect` can take its socket over
  // (`listen(handle)` makes it the socket's owner, as `adoptListener` does).
  const server = pauseOnConnect ? createServer({ pauseOnConnect: true }).listen(received) : received;
  server.on('connection', (socket: Socket) => {
    socket.pause();
    pending.push(socket);
  });
  return { server, pending };
}

/**
 * In the successor: wait for the parent's state and listeners. Rejects after `timeoutMs`, when the
 * parent goes away first, or when the process has no IPC channel. `pauseOnConnect`: see `holdConnections`.
 */
export function receiveHandover(timeoutMs: number, options: { pauseOnConnect?: boolean; deferListeners?: boolean } = {}): Promise<Inherited> {
  return new Promise((resolvePromise, reject) => {
    if (typeof process.send !== 'function') {
      reject(new Error(`${HANDOVER_ENV} is set but this process has no IPC channel to its predecessor`));
      return;
    }
    const listeners = new Map<string, InheritedListener>();
    let state: HandoverState | undefined;
    let expected: ReadonlySet<string> | undefined;
    let deferred: Readonly<Record<string, AddressInfo>> | undefined;
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      if (error !== undefined) {
        for (const listener of listeners.values()) {
          listener.server.close();
          for (const socket of listener.pending) socket.destroy();
        }
        reject(error);
      } else if (deferred !== undefined) {
        const addresses = new Map(Object.entries(deferred));
        const pauseOnConnect = options.pauseOnConnect === true;
        resolvePromise({ listeners, state: state!, deferred: { addresses, take: (ms) => takeListeners([...addresses.keys()], ms, pauseOnConnect) } });
      } else resolvePromise({ listeners, state: state! });
    };
    const complete = (): void => {
      if (state !== undefined && expected !== undefined && (deferred !== undefined || [...expected].every((key) => listeners.has(key)))) finish();
    };
    const onMessage = (message: unknown, handle: unknown): void => {
      if (!isMessage(message)) return;
      if (message.fulcrum === 'state') {
        state = message.state;
        expected = new Set(message.listeners);
        deferred = message.deferred;
      } else if (message.fulcrum === 'listener' && isServer(handle)) {
        listeners.set(message.key, holdConnections(handle, options.pauseOnConnect === true));
      }
      complete();
    };
    const onDisconnect = (): void => finish(new Error('the predecessor went away before it handed over its listeners'));
    const timer = setTimeout(() => finish(new Error(`no handover from the predecessor within ${timeoutMs} ms`)), timeoutMs);
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
    process.send({ fulcrum: 'hello', ...(options.deferListeners === true ? { deferListeners: true } : {}) } satisfies HandoverMessage);
  });
}

/** In the successor, after a deferred handover: ask for the listening sockets `keys` and receive them. */
function takeListeners(keys: readonly string[], timeoutMs: number, pauseOnConnect: boolean): Promise<Map<string, InheritedListener>> {
  return new Promise((resolvePromise, reject) => {
    const listeners = new Map<string, InheritedListener>();
    const finish = (error?: Error): void => {
      clearTimeout(timer);
      process.off('message', onMessage);
      process.off('disconnect', onDisconnect);
      if (error === undefined) return resolvePromise(listeners);
      for (const listener of listeners.values()) {
        listener.server.close();
        for (const socket of listener.pending) socket.destroy();
      }
      reject(error);
    };
    const onMessage = (message: unknown, handle: unknown): void => {
      if (!isMessage(message) || message.fulcrum !== 'listener' || !isServer(handle)) return;
      listeners.set(message.key, holdConnections(handle, pauseOnConnect));
      if (keys.every((key) => listeners.has(key))) finish();
    };
    const onDisconnect = (): void => finish(new Error('the predecessor went away before it sent its listening sockets'));
    const timer = setTimeout(() => finish(new Error(`no listening sockets from the predecessor within ${timeoutMs} ms`)), timeoutMs);
    if (keys.length === 0 || typeof process.send !== 'function') {
      finish(keys.length === 0 ? undefined : new Error('no IPC channel to the predecessor'));
      return;
    }
    process.on('message', onMessage);
    process.on('disconnect', onDisconnect);
    process.send({ fulcrum: 'listeners' } satisfies HandoverMessage);
  });
}

/**
 * Make a server accept on an inherited listening socket — `listenOn` is its `listen(handle, cb)` —
 * then give `server` the connections accepted in the meantime (`'connection'` events are how `net`,
 * `http` and `tls` servers take injected sockets).
 */
export function adoptListener(
  server: Server,
  listenOn: (handle: Server, callback: () => void) => void,
  inherited: InheritedListener,
  callback: () => void,
): void {
  listenOn(inherited.server, () => {
    inherited.server.removeAllListeners('connection');
    for (const socket of inherited.pending.splice(0)) {
      if (socket.destroyed) continue;
      server.emit('connection', socket);
      socket.resume();
    }
    callback();
  });
}

/** In the successor: tell the predecessor that every frontend serves. */
export function announceReady(): void {
  process.send?.({ fulcrum: 'ready', pid: process.pid } satisfies HandoverMessage);
  // Nothing more comes over the channel; it must not keep this process alive after the parent exits.
  process.channel?.unref();
}

/**
 * In the predecessor: once `child` says hello, send it the state and every listener; resolve when it
 * is ready.
 * Rejects when it exits, closes its channel or stays silent for `timeoutMs`.
 */
export function handOver(child: ChildProcess, state: HandoverState, listeners: ReadonlyMap<string, Server>, timeoutMs: number): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const finish = (error: Error | undefined, pid?: number): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      child.off('error', onError);
      if (error !== undefined) reject(error);
      else resolvePromise(pid!);
    };
    const onMessage = (message: unknown): void => {
      if (!isMessage(message)) return;
      if (message.fulcrum === 'hello' && message.deferListeners === true) {
        // The successor takes the sockets once it can serve what they accept (a --workers primary
        // whose workers do not accept: once they are ready); meanwhile only where they are.
        const addresses: Record<string, AddressInfo> = {};
        for (const [key, server] of listeners) {
          const address = server.address();
          if (address !== null && typeof address === 'object') addresses[key] = { address: address.address, family: address.family, port: address.port };
        }
        send({ fulcrum: 'state', state, listeners: [...listeners.keys()], deferred: addresses });
      } else if (message.fulcrum === 'hello' || message.fulcrum === 'listeners') {
        if (message.fulcrum === 'hello') send({ fulcrum: 'state', state, listeners: [...listeners.keys()] });
        for (const [key, server] of listeners) send({ fulcrum: 'listener', key }, server);
      } else if (message.fulcrum === 'ready') finish(undefined, message.pid);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void =>
      finish(new Error(`the new process exited before it was ready (${signal ?? `code ${code}`})`));
    const onError = (error: Error): void => finish(error);
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      finish(new Error(`the new process was not ready within ${timeoutMs} ms`));
    }, timeoutMs);
    child.on('message', onMessage);
    child.on('exit', onExit);
    child.on('error', onError);
    const send = (message: HandoverMessage, handle?: Server): void => {
      child.send(message, handle, (error) => {
        if (error) finish(error);
      });
    };
  });
}

/**
 * Start this process's successor: the same command line (`process.execPath`, its `execArgv`, the
 * script and `argv`) — after a package upgrade the script resolves to the new code — with an IPC
 * channel and `HANDOVER_ENV` set. Throws when there is no script path.
 */
export function spawnSuccessor(argv: readonly string[]): ChildProcess {
  const script = process.argv[1];
  if (script === undefined) throw new Error('no script path to start the new process from');
  return spawn(process.execPath, [...process.execArgv, script, ...argv], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [HANDOVER_ENV]: '1' },
  });
}
