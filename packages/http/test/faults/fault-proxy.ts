/**
 * `FaultProxy`: a TCP relay on 127.0.0.1 that stands between a client (Fulcrum, an ioredis client, a
 * mysql2 pool) and a target (a backend, Redis, MariaDB) and misbehaves on command — the network
 * faults a production load balancer meets, without root, iptables or tc.
 *
 * The idea is Toxiproxy's (Shopify): a relay per link with switchable "toxics" (latency, timeout,
 * reset_peer, slow_close, bandwidth), and the partition tests of Jepsen, which cut links rather than
 * kill processes. Here the toxics are modes of the whole relay, switched between awaits of a test:
 *
 * | mode | new connections | existing connections |
 * | --- | --- | --- |
 * | `pass` | relayed | relayed (connections accepted while blackholed stay dead) |
 * | `latency(ms)` | relayed, every chunk held `ms` in each direction | the same, from now on |
 * | `blackhole` | accepted, never forwarded (no upstream connection at all) | stalled: bytes held both ways, delivered in order once the mode changes |
 * | `reset` | accepted then RST (`resetAndDestroy`) | RST on both sides |
 * | `refuse` | the listener is closed: ECONNREFUSED | RST on both sides |
 * | `slowDrip(bytesPerSecond)` | relayed at that rate per direction | the same, from now on |
 * | `halfClose` | relayed upstream, but the client gets a FIN at once and no reply | the client gets a FIN; its later bytes still go upstream |
 *
 * A blackhole stalls established connections rather than dropping their bytes: in a real partition
 * TCP retransmits, so a connection that survives the partition delivers everything once it heals —
 * dropping bytes mid-stream would be corruption, not a partition.
 *
 * `refuse` really closes the listening socket (so the kernel refuses the SYN, exactly like a dead
 * process); leaving it re-listens on the SAME port, so the address the client was configured with
 * stays valid. The port is ephemeral and was ours a moment ago; if something else took it meanwhile
 * the mode switch rejects with EADDRINUSE rather than silently moving.
 *
 * Bytes are never reordered: each direction is a FIFO lane whose chunks carry a release time
 * (latency) and a byte allowance (slow drip), so switching modes mid-stream keeps order. Lanes apply
 * backpressure (the source is paused above 1 MiB queued), so a slow drip does not buffer an upload.
 * `close()` destroys every socket, clears every timer and closes the listener: nothing is left behind.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';

export type FaultMode = 'pass' | 'latency' | 'blackhole' | 'reset' | 'refuse' | 'slowDrip' | 'halfClose';

export interface FaultTarget {
  host: string;
  port: number;
}

/** Chunks queued in one lane above which its source is paused. */
const HIGH_WATER_BYTES = 1 << 20;
/** Slow-drip ticks: often enough to look like a stream, rarely enough to stay cheap. */
const DRIP_TICK_MS = 50;

interface Queued {
  chunk: Buffer;
  /** `performance.now()` before which the chunk may not leave (latency). */
  at: number;
}

/** One direction of one connection. */
class Lane {
  readonly #owner: FaultProxy;
  readonly #from: Socket;
  readonly #to: () => Socket | undefined;
  readonly #queue: Queued[] = [];
  #queuedBytes = 0;
  #timer: NodeJS.Timeout | undefined;
  #ended = false;
  #waitingDrain = false;
  #lastDrip = 0;
  #dripCredit = 0;

  constructor(owner: FaultProxy, from: Socket, to: () => Socket | undefined) {
    this.#owner = owner;
    this.#from = from;
    this.#to = to;
  }

  push(chunk: Buffer, dropped: boolean): void {
    if (dropped) return;
    const delay = this.#owner.mode === 'latency' ? this.#owner.latencyMs : 0;
    this.#queue.push({ chunk, at: performance.now() + delay });
    this.#queuedBytes += chunk.length;
    if (this.#queuedBytes > HIGH_WATER_BYTES) this.#from.pause();
    this.pump();
  }

  /** The source ended: forward the FIN once everything queued has left. */
  end(): void {
    this.#ended = true;
    this.pump();
  }

  pump(): void {
    if (this.#timer !== undefined || this.#waitingDrain) return;
    const to = this.#to();
    if (to === undefined || to.destroyed) return;
    const mode = this.#owner.mode;
    // A partition: hold everything until it heals (see the header).
    if (mode === 'blackhole') return;
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      const now = performance.now();
      if (head.at > now) return this.#schedule(head.at - now);
      let chunk = head.chunk;
      if (mode === 'slowDrip') {
        const rate = this.#owner.bytesPerSecond;
        if (this.#lastDrip === 0) this.#lastDrip = now;
        this.#dripCredit = Math.min(this.#dripCredit + ((now - this.#lastDrip) * rate) / 1000, Math.max(1, rate));
        this.#lastDrip = now;
        const allowance = Math.floor(this.#dripCredit);
        if (allowance < 1) return this.#schedule(DRIP_TICK_MS);
        if (chunk.length > allowance) {
          head.chunk = chunk.subarray(allowance);
          chunk = chunk.subarray(0, allowance);
        } else {
          this.#queue.shift();
        }
        this.#dripCredit -= chunk.length;
      } else {
        this.#lastDrip = 0;
        this.#dripCredit = 0;
        this.#queue.shift();
      }
      this.#queuedBytes -= chunk.length;
      if (this.#queuedBytes <= HIGH_WATER_BYTES && this.#from.isPaused()) this.#from.resume();
      if (!to.write(chunk)) {
        this.#waitingDrain = true;
        to.once('drain', () => {
          this.#waitingDrain = false;
          this.pump();
        });
        return;
      }
    }
    if (this.#ended && !to.writableEnded) to.end();
  }

  #schedule(ms: number): void {
    this.#timer = setTimeout(
      () => {
        this.#timer = undefined;
        this.pump();
      },
      Math.max(1, Math.ceil(ms)),
    );
  }

  dispose(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#queue.length = 0;
    this.#queuedBytes = 0;
  }
}

/** A client connection and, unless it arrived during a blackhole, its upstream connection. */
class Relay {
  readonly client: Socket;
  upstream: Socket | undefined;
  readonly up: Lane;
  readonly down: Lane;
  /** Accepted during a blackhole: never gets an upstream. */
  readonly dead: boolean;
  /** The client was sent a FIN by `halfClose`; replies are dropped from then on. */
  clientEnded = false;

  constructor(owner: FaultProxy, client: Socket, dead: boolean) {
    this.client = client;
    this.dead = dead;
    this.up = new Lane(owner, client, () => this.upstream);
    this.down = new Lane(owner, client, () => (this.clientEnded ? undefined : this.client));
  }

  reset(): void {
    this.up.dispose();
    this.down.dispose();
    resetSocket(this.client);
    if (this.upstream !== undefined) resetSocket(this.upstream);
  }

  destroy(): void {
    this.up.dispose();
    this.down.dispose();
    this.client.destroy();
    this.upstream?.destroy();
  }
}

function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    // Not yet connected (resetAndDestroy needs a handle): a plain destroy is all there is.
    socket.destroy();
  }
}

/**
 * A switchable faulty TCP relay (see the file header). Start it with `FaultProxy.start(target)`,
 * point the client at `fault.host:fault.port`, and switch modes during the test.
 */
export class FaultProxy {
  readonly target: FaultTarget;
  readonly host = '127.0.0.1';
  #port = 0;
  #server: Server | undefined;
  #mode: FaultMode = 'pass';
  #latencyMs = 0;
  #bytesPerSecond = 0;
  readonly #relays = new Set<Relay>();
  #accepted = 0;
  #closed = false;

  private constructor(target: FaultTarget) {
    this.target = target;
  }

  /** Start a relay to `target` (`'host:port'`, a URL, or `{ host, port }`) in `pass` mode. */
  static async start(target: FaultTarget | string): Promise<FaultProxy> {
    const fault = new FaultProxy(parseTarget(target));
    await fault.#listen(0);
    return fault;
  }

  get port(): number {
    return this.#port;
  }

  /** `127.0.0.1:port`. */
  get address(): string {
    return `${this.host}:${this.#port}`;
  }

  /** `http://127.0.0.1:port`, for HTTP targets. */
  get url(): string {
    return `http://${this.address}`;
  }

  get mode(): FaultMode {
    return this.#mode;
  }

  get latencyMs(): number {
    return this.#latencyMs;
  }

  get bytesPerSecond(): number {
    return this.#bytesPerSecond;
  }

  /** Connections accepted since start (including reset and blackholed ones). */
  get accepted(): number {
    return this.#accepted;
  }

  /** Connections currently open through the relay. */
  get open(): number {
    return this.#relays.size;
  }

  /** Relay everything untouched. */
  pass(): Promise<void> {
    return this.#switch('pass');
  }

  /** Hold every chunk `ms` milliseconds in each direction. */
  latency(ms: number): Promise<void> {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`latency: ${ms} is not a delay in ms`);
    this.#latencyMs = ms;
    return this.#switch('latency');
  }

  /** Accept new connections but never forward them; stall open ones until the mode changes (a partition). */
  blackhole(): Promise<void> {
    return this.#switch('blackhole');
  }

  /** RST every open connection and every new one (a crashed peer whose host is still up). */
  reset(): Promise<void> {
    return this.#switch('reset');
  }

  /** Stop listening (ECONNREFUSED) and RST every open connection (a dead process). */
  refuse(): Promise<void> {
    return this.#switch('refuse');
  }

  /** Relay at most `bytesPerSecond` bytes per second in each direction. */
  slowDrip(bytesPerSecond: number): Promise<void> {
    if (!Number.isFinite(bytesPerSecond) || bytesPerSecond < 1) throw new RangeError(`slowDrip: ${bytesPerSecond} is not a rate ≥ 1 byte/s`);
    this.#bytesPerSecond = bytesPerSecond;
    return this.#switch('slowDrip');
  }

  /** Send every client a FIN and drop replies, while still forwarding what clients send. */
  halfClose(): Promise<void> {
    return this.#switch('halfClose');
  }

  /** Destroy every connection, clear every timer, close the listener. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const relay of this.#relays) relay.destroy();
    this.#relays.clear();
    const server = this.#server;
    this.#server = undefined;
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  async #switch(mode: FaultMode): Promise<void> {
    if (this.#closed) throw new Error('FaultProxy is closed');
    const previous = this.#mode;
    this.#mode = mode;
    if (mode === 'reset' || mode === 'refuse') {
      for (const relay of this.#relays) relay.reset();
      this.#relays.clear();
    }
    if (mode === 'halfClose') for (const relay of this.#relays) this.#endClient(relay);
    if (mode === 'refuse' && this.#server !== undefined) {
      const server = this.#server;
      this.#server = undefined;
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    if (previous === 'refuse' && mode !== 'refuse' && this.#server === undefined) await this.#listen(this.#port);
    // Lanes waiting on a latency or drip timer re-evaluate under the new mode.
    for (const relay of this.#relays) {
      relay.up.pump();
      relay.down.pump();
    }
  }

  #listen(port: number): Promise<void> {
    const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, this.host, () => {
        server.off('error', reject);
        this.#server = server;
        this.#port = (server.address() as AddressInfo).port;
        resolve();
      });
    });
  }

  #accept(client: Socket): void {
    this.#accepted++;
    client.on('error', () => undefined);
    const mode = this.#mode;
    if (mode === 'reset' || mode === 'refuse' || this.#closed) {
      resetSocket(client);
      return;
    }
    const relay = new Relay(this, client, mode === 'blackhole');
    this.#relays.add(relay);
    const dropUp = () => relay.dead;
    const dropDown = () => relay.dead || relay.clientEnded;
    client.on('data', (chunk: Buffer) => relay.up.push(chunk, dropUp()));
    client.on('end', () => relay.up.end());
    client.on('close', () => {
      this.#relays.delete(relay);
      relay.up.dispose();
      relay.down.dispose();
      // The client is gone: the upstream sees a FIN after what was queued, or an RST if it errored.
      relay.upstream?.destroy();
    });
    if (mode === 'halfClose') this.#endClient(relay);
    if (relay.dead) return;
    const upstream = connect({ host: this.target.host, port: this.target.port, allowHalfOpen: true, noDelay: true });
    relay.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('connect', () => relay.up.pump());
    upstream.on('data', (chunk: Buffer) => relay.down.push(chunk, dropDown()));
    upstream.on('end', () => relay.down.end());
    upstream.on('close', (hadError) => {
      // The target went away: the client sees the same (an RST for an error, else a FIN after the data).
      if (hadError) {
        this.#relays.delete(relay);
        relay.reset();
      } else if (!relay.clientEnded) {
        relay.down.end();
      }
    });
  }

  #endClient(relay: Relay): void {
    if (relay.clientEnded) return;
    relay.clientEnded = true;
    relay.down.dispose();
    if (!relay.client.destroyed) relay.client.end();
  }
}

function parseTarget(target: FaultTarget | string): FaultTarget {
  if (typeof target !== 'string') return target;
  const url = /^[a-z][a-z0-9+.-]*:\/\//i.test(target) ? new URL(target) : new URL(`tcp://${target}`);
  const port = Number(url.port);
  if (!url.hostname || !Number.isInteger(port) || port <= 0) throw new RangeError(`FaultProxy: ${target} is not host:port`);
  return { host: url.hostname.replace(/^\[|\]$/g, ''), port };
}
