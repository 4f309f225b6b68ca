/**
 * Whether the database answers, as express-session wants to know it: `connect` and `disconnect`
 * events (express-session stops calling a disconnected store). Because nothing calls a disconnected
 * store, it notices recovery itself: a `SELECT 1` every `probeIntervalMs` until one succeeds.
 */
import type { Clock, Timer } from '@fulcrum/core';

export interface ConnectionStateConfig {
  readonly clock: Clock;
  readonly probeIntervalMs: number;
  /** One check that the server answers; a success reaches `markConnected` through the executor. */
  readonly probe: () => Promise<unknown>;
  readonly emit: (event: 'connect' | 'disconnect', error?: unknown) => void;
}

export class ConnectionState {
  readonly #config: ConnectionStateConfig;
  #connected: boolean | undefined;
  #probeTimer: Timer | undefined;
  #closed = false;

  constructor(config: ConnectionStateConfig) {
    this.#config = config;
  }

  /** A statement succeeded. */
  markConnected(): void {
    this.#stopProbe();
    if (this.#connected === true) return;
    this.#connected = true;
    this.#config.emit('connect');
  }

  /** A statement failed because the server is unreachable. */
  markDisconnected(error: unknown): void {
    if (this.#connected !== false) {
      this.#connected = false;
      this.#config.emit('disconnect', error);
    }
    if (this.#probeTimer === undefined && !this.#closed) this.#probe();
  }

  /** Stops probing for good. */
  close(): void {
    this.#closed = true;
    this.#stopProbe();
  }

  #stopProbe(): void {
    if (this.#probeTimer === undefined) return;
    this.#config.clock.clearTimeout(this.#probeTimer);
    this.#probeTimer = undefined;
  }

  #probe(): void {
    const { clock, probeIntervalMs, probe } = this.#config;
    this.#probeTimer = clock.setTimeout(() => {
      this.#probeTimer = undefined;
      if (this.#closed || this.#connected === true) return;
      probe().catch(() => {
        if (!this.#closed && this.#connected !== true && this.#probeTimer === undefined) this.#probe();
      });
    }, probeIntervalMs);
  }
}
