/**
 * HTTP/2 connections to one backend (`node:http2` client sessions), shared by every stream the
 * proxy sends it: a stream goes on the first session with a free slot below the backend's own
 * SETTINGS_MAX_CONCURRENT_STREAMS (100, the RFC's recommended minimum, until its SETTINGS arrive);
 * a new session is opened only when every one is full, up to `maxSessions`; past that, streams wait
 * for a slot (no longer than the connect timeout). `https://` backends get TLS with ALPN `h2`,
 * `http://` ones h2c with prior knowledge.
 *
 * A session that received GOAWAY, failed or closed takes no new stream; its streams in flight end
 * by themselves (a stream above the GOAWAY's last id is refused, and the proxy may retry it). An
 * idle session (no stream) is closed after `idleMs`, below the backends' usual idle timeouts.
 */
import http2, { type ClientHttp2Session, type SecureClientSessionOptions } from 'node:http2';
import { connect as netConnect, isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Backend } from '@fulcrum/core';

/** Streams a backend is assumed to take on one connection before it said (RFC 9113 §6.5.2). */
const DEFAULT_PEER_STREAMS = 100;

export interface H2PoolOptions {
  readonly connectMs: number;
  readonly idleMs: number;
  readonly maxSessions: number;
  readonly tls: Readonly<Record<string, unknown>> | undefined;
}

/** One backend connection and its stream count. */
class SessionSlot {
  readonly session: ClientHttp2Session;
  active = 0;
  usable = true;
  connected = false;
  /** The backend's SETTINGS arrived: `capacity` is its own. */
  settled = false;

  constructor(session: ClientHttp2Session) {
    this.session = session;
  }

  get capacity(): number {
    const max = this.session.remoteSettings?.maxConcurrentStreams;
    // A backend that states no limit gets the RFC's recommended minimum, not thousands.
    return typeof max === 'number' && max < DEFAULT_PEER_STREAMS * 100 ? max : DEFAULT_PEER_STREAMS;
  }
}

/** A stream slot handed to an exchange: release it once the stream closed. */
export interface H2Slot {
  readonly session: ClientHttp2Session;
  /** The connection was established (a failure before it means nothing was sent). */
  readonly connected: boolean;
  release(): void;
}

type Waiter = (slot: H2Slot | Error) => void;

/** A stream's hold on a session slot: one object per stream, no closures. */
class StreamSlot implements H2Slot {
  readonly #slot: SessionSlot;
  readonly #pool: H2BackendPool;
  #released = false;

  constructor(slot: SessionSlot, pool: H2BackendPool) {
    this.#slot = slot;
    this.#pool = pool;
  }

  get session(): ClientHttp2Session {
    return this.#slot.session;
  }

  get connected(): boolean {
    return this.#slot.connected;
  }

  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.#slot.active--;
    this.#pool.slotFreed();
  }
}

export class H2BackendPool {
  readonly origin: string;
  readonly authority: string;
  readonly scheme: 'http' | 'https';
  readonly #options: H2PoolOptions;
  readonly #slots = new Set<SessionSlot>();
  readonly #waiters: Waiter[] = [];
  #closed = false;

  constructor(backend: Backend, options: H2PoolOptions) {
    const url = new URL(backend.address.includes('://') ? backend.address : `http://${backend.address}`);
    this.origin = url.origin;
    this.authority = url.host;
    this.scheme = url.protocol === 'https:' ? 'https' : 'http';
    this.#options = options;
  }

  /** Sessions open (for tests and stats). */
  get sessions(): number {
    return this.#slots.size;
  }

  /** A session's free stream slot now, when one is (and nothing waits before it); else `undefined`. */
  tryAcquire(): H2Slot | undefined {
    if (this.#closed || this.#waiters.length > 0) return undefined;
    for (const slot of this.#slots) {
      if (slot.usable && slot.settled && slot.active < slot.capacity) return this.#take(slot);
    }
    return undefined;
  }

  /** A stream let go of its slot: a waiter may take it. */
  slotFreed(): void {
    if (this.#waiters.length > 0) this.#serve();
  }

  /**
   * A session with a free stream slot, now (`H2Slot`), or later through `onSlot` (returns a
   * function that cancels the wait). Errors (connect failed) come through `onSlot` as `Error`.
   */
  acquire(onSlot: Waiter): H2Slot | (() => void) {
    if (this.#closed) {
      queueMicrotask(() => onSlot(new Error('backend pool closed')));
      return () => undefined;
    }
    if (this.#waiters.length === 0) {
      for (const slot of this.#slots) {
        if (slot.usable && slot.settled && slot.active < slot.capacity) return this.#take(slot);
      }
    }
    this.#waiters.push(onSlot);
    this.#serve();
    return () => {
      const i = this.#waiters.indexOf(onSlot);
      if (i >= 0) this.#waiters.splice(i, 1);
    };
  }

  /**
   * Hand waiting streams the free slots of sessions whose SETTINGS arrived; when some still wait
   * and no session is being opened, open one (up to `maxSessions`). A new session takes no stream
   * before the backend's SETTINGS: sent past its SETTINGS_MAX_CONCURRENT_STREAMS, they would be refused.
   */
  #serve(): void {
    let connecting = false;
    for (const slot of this.#slots) {
      if (!slot.usable) continue;
      if (!slot.settled) {
        connecting = true;
        continue;
      }
      while (this.#waiters.length > 0 && slot.active < slot.capacity) this.#waiters.shift()!(this.#take(slot));
    }
    if (this.#waiters.length > 0 && !connecting && !this.#closed && this.#slots.size < this.#options.maxSessions) this.#open();
  }

  #take(slot: SessionSlot): H2Slot {
    slot.active++;
    return new StreamSlot(slot, this);
  }

  #open(): SessionSlot {
    const tls = this.#options.tls as ConnectionOptions | undefined;
    const url = new URL(this.origin);
    const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
    const port = Number(url.port) || (this.scheme === 'https' ? 443 : 80);
    const options: SecureClientSessionOptions = {
      settings: { enablePush: false },
      // Our own socket, for `noDelay`: Nagle would hold a request's last frame for the backend's
      // delayed ACK (40 ms a call). The session's socket may not be touched once it has it.
      createConnection: () =>
        this.scheme === 'https'
          ? tlsConnect({
              ...tls,
              host,
              port,
              ALPNProtocols: ['h2'],
              servername: tls?.servername ?? (isIP(host) === 0 ? host : undefined),
              noDelay: true,
            } as ConnectionOptions)
          : netConnect({ host, port, noDelay: true }),
    };
    const session = http2.connect(this.origin, options);
    const slot = new SessionSlot(session);
    const connectTimer = setTimeout(() => {
      const error = Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT', syscall: 'connect' });
      session.destroy(error);
    }, this.#options.connectMs);
    const retire = (): void => {
      slot.usable = false;
      this.#slots.delete(slot);
    };
    this.#slots.add(slot);
    session.once('connect', () => {
      clearTimeout(connectTimer);
      slot.connected = true;
    });
    // Its SETTINGS say how many streams it takes: waiters may go now.
    session.on('remoteSettings', () => {
      slot.settled = true;
      this.#serve();
    });
    session.on('goaway', retire);
    // Idle: no frame either way for `idleMs` (the timer restarts on every frame); a session with
    // streams open (a quiet long call) is kept.
    session.setTimeout(this.#options.idleMs);
    session.on('timeout', () => {
      if (slot.active === 0) {
        retire();
        session.close();
      }
    });
    session.on('error', (error: Error) => {
      clearTimeout(connectTimer);
      retire();
      // Streams on it get their own error; waiters would wait for nothing.
      if (!slot.connected) {
        const waiters = this.#waiters.splice(0);
        for (const waiter of waiters) waiter(error);
      }
    });
    session.once('close', () => {
      clearTimeout(connectTimer);
      retire();
      // A session less: waiters may open another.
      if (this.#waiters.length > 0 && !this.#closed) this.#serve();
    });
    return slot;
  }

  close(): void {
    this.#closed = true;
    const waiters = this.#waiters.splice(0);
    for (const waiter of waiters) waiter(new Error('backend pool closed'));
    for (const slot of this.#slots) {
      slot.usable = false;
      // Graceful: streams in flight run to their end, then the connection closes.
      slot.session.close();
    }
    this.#slots.clear();
  }
}
