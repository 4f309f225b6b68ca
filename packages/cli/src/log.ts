/**
 * The runner's own log (not the access log): what an operator reads to know what the proxy did —
 * start and stop, reloads, and every backend state change with its reason, as HAProxy logs "Server
 * web/b1 is DOWN, reason: Layer7 wrong status, code: 503".
 *
 * One line per event, JSON (pino-compatible: numeric `level`, `time` in ms, `pid`, `msg`, then the
 * fields — what log shippers parse without configuration) or text in the access log's style
 * (`<ISO time> <LEVEL> <msg> key=value …`, values with spaces quoted). Below `level` nothing is
 * formatted: a filtered line costs one comparison.
 */

/** Levels of the runner's log, from the most verbose. `debug` adds every failed health check. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** The runner's log: a level, a message and fields. */
export type RunnerLogger = (level: LogLevel, msg: string, fields?: Record<string, unknown>) => void;

/** `createLogger` options. */
export interface LoggerOptions {
  /** The least severe level written. Default `'info'`. */
  level?: LogLevel;
  /** `'json'` (default) or `'text'`, as `accessLog.format`. */
  format?: 'json' | 'text';
  /** Where lines go. Default: `process.stderr`. */
  write?: (line: string) => void;
}

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];
/** pino's numbers, so JSON lines read as pino's. */
const PINO_LEVELS: Readonly<Record<LogLevel, number>> = { debug: 20, info: 30, warn: 40, error: 50 };

/** A text value: bare when it is one plain token, else JSON-quoted (no space or quote ever splits a field). */
function textValue(value: unknown): string {
  const text = typeof value === 'string' ? value : Array.isArray(value) ? value.join(',') : JSON.stringify(value);
  return /^[\x21-\x7e]+$/.test(text) && !text.includes('"') ? text : JSON.stringify(text);
}

/** A runner logger writing JSON or text lines at `level` and above. */
export function createLogger(options: LoggerOptions = {}): RunnerLogger {
  const threshold = PINO_LEVELS[options.level ?? 'info'];
  const write = options.write ?? ((line: string) => void process.stderr.write(line));
  if (options.format === 'text') {
    return (level, msg, fields) => {
      if (PINO_LEVELS[level] < threshold) return;
      let line = `${new Date().toISOString()} ${level.toUpperCase()} ${msg}`;
      if (fields !== undefined) for (const [key, value] of Object.entries(fields)) if (value !== undefined) line += ` ${key}=${textValue(value)}`;
      write(`${line}\n`);
    };
  }
  return (level, msg, fields) => {
    if (PINO_LEVELS[level] < threshold) return;
    write(`${JSON.stringify({ level: PINO_LEVELS[level], time: Date.now(), pid: process.pid, msg, ...fields })}\n`);
  };
}

/** Default runner logger: one pino-compatible JSON line per event on stderr, `info` and above. */
export const stderrLogger: RunnerLogger = createLogger();
