/**
 * Access logs: the proxy's `AccessLogEntry` as one line per request — pino-compatible JSON (`level`,
 * `time` in epoch ms, `msg`, `pid`, `hostname`, then the entry's fields, so `pino-pretty`, Loki and
 * every JSON log shipper read it unchanged) or a concise text line in the spirit of HAProxy's
 * `option httplog` (client, request, status, pool/backend, decision reason, attempts, timings, bytes,
 * termination) — so "did the load balancer take a wrong decision, and why" is answered by the log.
 *
 * Writing never blocks a request: lines go into an in-memory buffer flushed by one `write` every
 * `flushMs` (or at once past 64 KiB), the way pino's `sonic-boom` batches. If the destination is
 * slower than the traffic (a full pipe, a slow disk) the buffer grows to `bufferBytes` and further
 * lines are DROPPED and counted — a proxy that stalls because its log stalled is worse than a gap in
 * the log; the count is reported in a line of its own once the destination catches up.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { hostname } from 'node:os';
import type { Writable } from 'node:stream';
import type { AccessLogEntry } from '@fulcrum/http';

/** Log line format. */
export type AccessLogFormat = 'json' | 'text';

/** Options of `AccessLogWriter`. */
export interface AccessLogWriterOptions {
  /** Default `'json'`. */
  format?: AccessLogFormat;
  /** A file path (appended to), `'-'` for stdout, or any Writable. Default `'-'`. */
  destination?: string | Writable;
  /** Most bytes held while the destination is busy; beyond, lines are dropped and counted. Default 1 MiB. */
  bufferBytes?: number;
  /** Longest delay before buffered lines are written, ms. Default 100. */
  flushMs?: number;
}

/** pino's numeric levels: 30 = info, 40 = warn, 50 = error. */
const LEVEL_INFO = 30;
const LEVEL_WARN = 40;
const LEVEL_ERROR = 50;
/** Past this many buffered bytes a flush starts at once rather than on the timer. */
const EAGER_FLUSH_BYTES = 64 * 1024;

const HOST = hostname();

/** The pino level of a request: 5xx the proxy produced → error, other 5xx/4xx and denials → warn. */
function levelOf(entry: AccessLogEntry): number {
  if (entry.termination !== 'ok' && entry.termination !== 'client-aborted' && entry.status >= 500) return LEVEL_ERROR;
  if (entry.status >= 400 || entry.termination !== 'ok') return LEVEL_WARN;
  return LEVEL_INFO;
}

/** One pino-compatible JSON line (with the trailing newline). */
export function formatJson(entry: AccessLogEntry): string {
  // pino's `time` is epoch ms; the entry's ISO string stays as `at` for humans.
  const { time, ...fields } = entry;
  const line = { level: levelOf(entry), time: Date.parse(time), pid: process.pid, hostname: HOST, msg: 'request', at: time, ...fields };
  return `${JSON.stringify(line)}\n`;
}

/** Keep a text field on one line and unambiguous: quotes and control characters escaped. */
function quote(text: string): string {
  return JSON.stringify(text.length > 2048 ? `${text.slice(0, 2045)}...` : text);
}

/**
 * One text line: `2025-01-01T00:00:00.000Z 10.0.0.7 "GET /api" 200 web/b1 balanced a=1 q=0 h=1.2
 * t=3.4 b=512 ok`. Absent values print as `-`.
 */
export function formatText(entry: AccessLogEntry): string {
  const t = entry.timings;
  return (
    `${entry.time} ${entry.clientIp || '-'} ${quote(`${entry.method} ${entry.path}`)} ${entry.status} ` +
    `${entry.pool || '-'}/${entry.backendId ?? '-'} ${entry.reason ?? '-'} a=${entry.attempts} ` +
    `q=${t.queueMs} h=${t.headMs ?? '-'} t=${t.totalMs} b=${entry.bytesOut} ${entry.termination}\n`
  );
}

/** A buffered, non-blocking access-log destination (see the file header). */
export class AccessLogWriter {
  readonly format: AccessLogFormat;
  /** Lines dropped because the destination could not keep up (since the start). */
  dropped = 0;
  readonly #stream: Writable;
  readonly #ownsStream: boolean;
  readonly #bufferBytes: number;
  readonly #flushMs: number;
  readonly #format: (entry: AccessLogEntry) => string;
  #chunks: string[] = [];
  #size = 0;
  #timer: NodeJS.Timeout | undefined;
  #waitingForDrain = false;
  #unreportedDrops = 0;
  #closed = false;

  constructor(options: AccessLogWriterOptions = {}) {
    this.format = options.format ?? 'json';
    this.#format = this.format === 'json' ? formatJson : formatText;
    this.#bufferBytes = options.bufferBytes ?? 1 << 20;
    this.#flushMs = options.flushMs ?? 100;
    const destination = options.destination ?? '-';
    if (typeof destination === 'string' && destination !== '-') {
      const stream: WriteStream = createWriteStream(destination, { flags: 'a', mode: 0o640 });
      // A log file that cannot be opened must not take the proxy down; the error is reported once.
      stream.on('error', (error) => process.emitWarning(`fulcrum access log: ${error.message}`));
      this.#stream = stream;
      this.#ownsStream = true;
    } else {
      this.#stream = destination === '-' ? process.stdout : (destination as Writable);
      this.#ownsStream = false;
    }
  }

  /** Log one request. Never throws, never blocks. */
  readonly write = (entry: AccessLogEntry): void => {
    if (this.#closed) return;
    const line = this.#format(entry);
    this.#push(line);
  };

  #push(line: string): void {
    if (this.#size + line.length > this.#bufferBytes) {
      this.dropped++;
      this.#unreportedDrops++;
      return;
    }
    this.#chunks.push(line);
    this.#size += line.length;
    if (this.#waitingForDrain) return;
    if (this.#size >= EAGER_FLUSH_BYTES) {
      this.#flush();
    } else if (this.#timer === undefined) {
      this.#timer = setTimeout(this.#onTimer, this.#flushMs);
      this.#timer.unref();
    }
  }

  #onTimer = (): void => {
    this.#timer = undefined;
    this.#flush();
  };

  #flush(): void {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#waitingForDrain || this.#chunks.length === 0) return;
    if (this.#unreportedDrops > 0) {
      const drops = this.#unreportedDrops;
      this.#unreportedDrops = 0;
      this.#chunks.push(
        this.format === 'json'
          ? `${JSON.stringify({ level: LEVEL_WARN, time: Date.now(), pid: process.pid, hostname: HOST, msg: 'access log lines dropped', dropped: drops })}\n`
          : `${new Date().toISOString()} - access log: ${drops} lines dropped (destination too slow)\n`,
      );
    }
    const data = this.#chunks.join('');
    this.#chunks = [];
    this.#size = 0;
    let ok: boolean;
    try {
      ok = this.#stream.write(data);
    } catch {
      return;
    }
    if (!ok) {
      this.#waitingForDrain = true;
      this.#stream.once('drain', () => {
        this.#waitingForDrain = false;
        if (this.#chunks.length > 0) this.#flush();
      });
    }
  }

  /** Write what is buffered and, for a file, close it. Resolves once written. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#waitingForDrain = false;
    this.#flush();
    this.#closed = true;
    if (this.#ownsStream) {
      await new Promise<void>((resolve) => this.#stream.end(resolve));
    } else if (this.#stream.writableNeedDrain) {
      await new Promise<void>((resolve) => this.#stream.once('drain', resolve));
    }
  }
}
