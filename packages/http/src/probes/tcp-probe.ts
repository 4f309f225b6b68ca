/**
 * `tcpProbe()`: a layer-4 health check — open a TCP connection to the backend and close it.
 *
 * Source: HAProxy's default `check` without `option httpchk` (a connect-only check) and Envoy's TCP
 * health checker with an empty payload. It proves the listener accepts, nothing more: use it for
 * backends that do not speak HTTP, or in front of `createTcpProxy()`. For `https://` addresses it
 * checks the TCP port only, without a TLS handshake.
 *
 * The socket is closed with a normal FIN (`destroy()` right after connecting) rather than HAProxy's
 * RST (`nolinger`): an RST shows up as an error in many servers' logs every few seconds, and the
 * TIME_WAIT it saves is one socket per check on the prober's side — a few dozen per backend.
 * Without `timeoutMs` the checker's timeout (whose signal aborts the probe) bounds the connect; the
 * probe's own timer is unref'd so it never keeps a process alive.
 */
import net from 'node:net';
import type { Probe } from '@fulcrum/core';
import { describeNetworkError, runCheck } from './address';
import { optionalTimerMs, optionsObject } from '@fulcrum/core/validate';

/** Options of `tcpProbe()`. */
export interface TcpProbeOptions {
  /** Give up connecting after this many ms. Default: none of its own — the checker's `timeoutMs` aborts it. */
  timeoutMs?: number;
}

/**
 * A TCP connect check for `createLoadBalancer({ health: { probe } })`: `{ ok: true }` once the
 * connection is established (and then closed), `{ ok: false, detail }` when it is refused, fails or
 * times out; an aborted `signal` destroys the socket and rejects with the signal's reason.
 */
export function tcpProbe(options?: TcpProbeOptions): Probe {
  const config = optionsObject('tcpProbe', options, ['timeoutMs']);
  const timeoutMs = optionalTimerMs('tcpProbe.timeoutMs', config.timeoutMs, undefined);

  return (backend, signal) =>
    runCheck(backend.address, signal, timeoutMs, (target, finish) => {
      const socket = net.connect({ host: target.hostname, port: target.port });
      socket.once('connect', () => finish({ ok: true, detail: 'TCP connect ok' }));
      socket.on('error', (error: NodeJS.ErrnoException) => finish({ ok: false, detail: `connect failed: ${describeNetworkError(error, target)}` }));
      return socket;
    });
}
