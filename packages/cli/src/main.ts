/**
 * `fulcrum` — the command line: `fulcrum --config fulcrum.json` runs the proxy, `fulcrum --check
 * --config fulcrum.json` validates and exits (0 valid, 1 invalid, with the error on stderr — for CI
 * and for `ExecReload=` checks before a SIGHUP, as `haproxy -c` and `nginx -t` are used).
 *
 * Signals: SIGHUP reloads the file (HAProxy's and nginx's convention); SIGTERM and SIGINT shut down
 * gracefully (stop accepting, finish in-flight requests within `shutdown.graceMs`, exit 0); a second
 * SIGTERM/SIGINT during that exits at once with 1, for the operator who means it. SIGUSR2 upgrades
 * without dropping a connection (nginx's convention): the process starts its successor from the same
 * command line — the new code, after a package upgrade — hands it the listening sockets and the
 * state (`handover.ts`), and drains and exits once the successor serves; if the successor fails, this
 * process keeps serving. Under `--workers` the primary does the same for itself and its workers
 * (`workers.ts`).
 */
import type { Socket } from 'node:net';
import { ErrorCodes, isFulcrumError } from '@fulcrum/core';
import { announceReady, handOver, HANDOVER_ENV, receiveHandover, spawnSuccessor, UPGRADE_TIMEOUT_MS, type Inherited } from './handover';
import { loadConfig } from './load';
import { LOG_LEVELS, createLogger, type LogLevel, type RunnerLogger } from './log';
import { startFulcrum } from './runner';
import { PrimaryListeners } from './worker-listeners';
import { WorkerLink, parseWorkers, runPrimary, workerSlot } from './workers';

const USAGE = `usage: fulcrum --config <file.json> [--check] [--workers N|auto] [--log-level <level>] [--log-format json|text]

  -c, --config <file>       the config file (JSON; see the README of @fulcrum/cli and schema/fulcrum.schema.json)
      --check               validate the config and exit: 0 if valid, 1 with the error if not
      --workers <N|auto>    worker processes sharing the listeners (auto = one per core); default 1, one process
      --log-level <level>   debug, info (default), warn or error: the least severe line written to stderr
      --log-format <format> json (default; pino-compatible lines) or text
  -v, --version             the version
  -h, --help                this text

signals: SIGHUP reloads the config; SIGUSR2 hands over to a new process without dropping a
connection (an upgrade); SIGTERM or SIGINT shut down gracefully, a second one at once
`;

/** What `runCli` needs from the process (injectable for tests); every field has a default. */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  /** The runner's log. Default: built from `--log-level` and `--log-format`, on `stderr`. */
  logger?: RunnerLogger;
  /** What `--version` prints (the bin passes the package's). */
  version?: string;
}

interface ParsedArgs {
  config: string | undefined;
  check: boolean;
  help: boolean;
  version: boolean;
  logLevel: LogLevel;
  logFormat: 'json' | 'text';
  workers: number;
}

/** The value of `--name value` or `--name=value` at `argv[i]`; `undefined` when `arg` is not that option. */
function optionValue(argv: readonly string[], i: number, names: readonly string[]): { value: string | undefined; next: number } | undefined {
  const arg = argv[i]!;
  if (names.includes(arg)) return { value: argv[i + 1], next: i + 1 };
  const long = names.find((name) => name.startsWith('--') && arg.startsWith(`${name}=`));
  return long === undefined ? undefined : { value: arg.slice(long.length + 1), next: i };
}

function parseArgs(argv: readonly string[]): ParsedArgs | string {
  const parsed: ParsedArgs = { config: undefined, check: false, help: false, version: false, logLevel: 'info', logFormat: 'json', workers: 1 };
  // `pnpm start -- --config f.json` passes the `--` through: it ends nothing here.
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') continue;
    if (arg === '--check' || arg === '-t') {
      parsed.check = true;
      continue;
    }
    if (arg === '--help' || arg === '-h') {
      parsed.help = true;
      continue;
    }
    if (arg === '--version' || arg === '-v') {
      parsed.version = true;
      continue;
    }
    const config = optionValue(argv, i, ['--config', '-c']);
    const level = config ?? optionValue(argv, i, ['--log-level']);
    const format = level ?? optionValue(argv, i, ['--log-format']);
    const workers = format ?? optionValue(argv, i, ['--workers']);
    const found = workers;
    if (found === undefined) return `unknown argument ${JSON.stringify(arg)}`;
    if (found.value === undefined || found.value === '') return `${arg} needs a value`;
    i = found.next;
    if (config !== undefined) parsed.config = found.value;
    else if (format === undefined) {
      const count = parseWorkers(found.value);
      if (typeof count === 'string') return count;
      parsed.workers = count;
    } else if (level !== undefined) {
      if (!(LOG_LEVELS as readonly string[]).includes(found.value))
        return `--log-level must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(found.value)}`;
      parsed.logLevel = found.value as LogLevel;
    } else {
      if (found.value !== 'json' && found.value !== 'text') return `--log-format must be json or text, got ${JSON.stringify(found.value)}`;
      parsed.logFormat = found.value;
    }
  }
  return parsed;
}

/**
 * Run the CLI with `argv` (without node and script). Resolves with the exit code for `--check`, bad
 * arguments and start failures; while the proxy runs it resolves only after a signal shut it down.
 */
export async function runCli(argv: readonly string[], options: Partial<CliIo> = {}): Promise<number> {
  const io: CliIo = {
    stdout: (t) => void process.stdout.write(t),
    stderr: (t) => void process.stderr.write(t),
    env: process.env,
    ...options,
  };
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    io.stderr(`fulcrum: ${args}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    io.stdout(USAGE);
    return 0;
  }
  if (args.version) {
    io.stdout(`fulcrum ${io.version ?? 'unknown'} (node ${process.version})\n`);
    return 0;
  }
  const baseLogger = io.logger ?? createLogger({ level: args.logLevel, format: args.logFormat, write: io.stderr });
  const slot = workerSlot();
  // A worker's lines say which worker wrote them.
  const logger: RunnerLogger = slot === undefined ? baseLogger : (level, msg, fields) => baseLogger(level, msg, { worker: slot, pid: process.pid, ...fields });
  if (args.config === undefined) {
    io.stderr(`fulcrum: --config is required\n${USAGE}`);
    return 2;
  }
  let config;
  try {
    config = await loadConfig(args.config, { env: io.env });
  } catch (error) {
    // A file that cannot be read or parsed names itself (with line and column); a bad value names its path in the file.
    const message = (error as Error).message;
    io.stderr(isFulcrumError(error, ErrorCodes.CONFIG_FILE) ? `fulcrum: ${message}\n` : `fulcrum: ${args.config}: ${message}\n`);
    return 1;
  }
  if (args.check) {
    io.stdout(
      `fulcrum: ${args.config}: valid (${config.pools.size} pool${config.pools.size === 1 ? '' : 's'}, ${config.frontends.length} frontend${config.frontends.length === 1 ? '' : 's'})\n`,
    );
    return 0;
  }
  if (slot !== undefined) return runWorker(slot, config, args.config, io, logger);
  // A successor (SIGUSR2 in the predecessor) takes its listeners and state before it starts.
  let inherit: Inherited | undefined;
  if (io.env[HANDOVER_ENV] === '1') {
    // Not passed on: this process's own successor is told so by this process, not by the environment.
    delete process.env[HANDOVER_ENV];
    try {
      // A primary passes what its copies accept to its workers whole: they must not read.
      // When it accepts for its workers, it takes the sockets only once they serve (until then the
      // predecessor accepts them all): nothing waits on a worker starting.
      inherit = await receiveHandover(UPGRADE_TIMEOUT_MS, {
        pauseOnConnect: args.workers > 1,
        deferListeners: args.workers > 1 && config.workersAccept === 'primary',
      });
    } catch (error) {
      io.stderr(`fulcrum: cannot take over: ${(error as Error).message}\n`);
      return 1;
    }
  }
  if (args.workers > 1) {
    let listeners;
    try {
      listeners = await PrimaryListeners.open(config, inherit?.listeners, inherit?.deferred?.addresses);
    } catch (error) {
      io.stderr(`fulcrum: cannot start: ${(error as Error).message}\n`);
      return 1;
    }
    return runPrimary({
      workers: args.workers,
      log: logger,
      shutdownGraceMs: config.shutdownGraceMs,
      listeners,
      accept: config.workersAccept,
      argv,
      ...(inherit === undefined
        ? {}
        : {
            inherited: inherit.state,
            onServing: () => {
              const took = (): void => {
                announceReady();
                logger('info', 'took over from the previous process', { pid: process.pid });
              };
              const deferred = inherit.deferred;
              if (deferred === undefined) return took();
              deferred.take(UPGRADE_TIMEOUT_MS).then(
                (received) => {
                  const missing = listeners.adopt(received);
                  logger('info', 'took the listening sockets: every worker serves', { pid: process.pid, ...(missing.length === 0 ? {} : { missing }) });
                  took();
                },
                (error: unknown) => {
                  // The predecessor is gone or silent: this process has nothing to accept on.
                  logger('error', 'cannot take the listening sockets; stopping', { error: (error as Error).message ?? String(error) });
                  process.kill(process.pid, 'SIGTERM');
                },
              );
            },
          }),
    });
  }
  let instance;
  try {
    instance = await startFulcrum(config, { configFile: args.config, env: io.env, logger, ...(inherit === undefined ? {} : { inherit }) });
  } catch (error) {
    io.stderr(`fulcrum: cannot start: ${(error as Error).message}\n`);
    return 1;
  }
  if (inherit !== undefined) {
    announceReady();
    logger('info', 'took over from the previous process', { pid: process.pid });
  }
  const running = instance;
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    let upgrading = false;
    const onHup = (): void => running.reloadLogged('SIGHUP');
    const onUpgrade = (): void => {
      if (stopping || upgrading) {
        logger('warn', stopping ? 'upgrade ignored: shutting down' : 'upgrade ignored: one is in progress');
        return;
      }
      let child;
      try {
        child = spawnSuccessor(argv);
      } catch (error) {
        logger('error', `upgrade failed: ${(error as Error).message}`);
        return;
      }
      upgrading = true;
      logger('info', 'upgrade: starting a new process', { pid: process.pid });
      handOver(child, running.handoverState(), running.listeningSockets(), UPGRADE_TIMEOUT_MS).then(
        (pid) => {
          child.disconnect();
          child.unref();
          logger('info', 'upgrade: the new process serves; this one drains and exits', { successor: pid });
          onStop('SIGUSR2');
        },
        (error: unknown) => {
          upgrading = false;
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          logger('error', 'upgrade failed; this process keeps serving', { error: (error as Error).message ?? String(error) });
        },
      );
    };
    const onStop = (signal: NodeJS.Signals): void => {
      if (stopping) {
        resolveExit(1);
        return;
      }
      stopping = true;
      logger('info', 'shutting down', { signal, graceMs: running.config.shutdownGraceMs });
      running.close().then(
        () => {
          process.off('SIGHUP', onHup);
          process.off('SIGUSR2', onUpgrade);
          process.off('SIGTERM', onStop);
          process.off('SIGINT', onStop);
          resolveExit(0);
        },
        (error: unknown) => {
          io.stderr(`fulcrum: shutdown failed: ${(error as Error).message}\n`);
          resolveExit(1);
        },
      );
    };
    process.on('SIGHUP', onHup);
    process.on('SIGUSR2', onUpgrade);
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
  });
}

/**
 * One worker of `fulcrum --workers N`: the proxy, linked to the others through the primary. It
 * drains and exits 0 when the primary says so (its SIGTERM), on its own SIGTERM/SIGINT, or when the
 * primary is gone; SIGHUP reaches it from the primary as a reload message, so its own is ignored.
 */
async function runWorker(slot: number, config: Awaited<ReturnType<typeof loadConfig>>, file: string, io: CliIo, logger: RunnerLogger): Promise<number> {
  const link = new WorkerLink(slot);
  let instance;
  try {
    // The primary's listening sockets, adopted as a successor adopts its predecessor's.
    const inherit = await link.listeners(UPGRADE_TIMEOUT_MS);
    instance = await startFulcrum(config, {
      configFile: file,
      env: io.env,
      logger,
      inherit,
      worker: {
        slot,
        runsChecks: link.runsChecks,
        replicator: link.replicator,
        broadcast: (change) => link.broadcast(change),
        collect: () => link.collect(),
        renderSlot: (handler) => link.renderSlot(handler),
        listening: (keys) => link.listening(keys),
      },
    });
  } catch (error) {
    // Stopped before it served (the primary shut down meanwhile): nothing failed.
    const failed = !link.shutdownRequested;
    if (failed) io.stderr(`fulcrum: worker ${slot} cannot start: ${(error as Error).message}\n`);
    link.detach();
    if (process.connected) process.disconnect();
    return failed ? 1 : 0;
  }
  const running = instance;
  link.onChange = (change) => running.applyChange(change);
  link.report = () => running.workerReport();
  link.handoverState = () => running.handoverState();
  // A connection the primary accepted: served as if this worker had accepted it.
  link.onConnection = (key: string, socket: Socket) => running.serveRelayed(key, socket);
  const at = running.addresses();
  const text = (a: { address: string; port: number } | undefined): string | undefined => (a === undefined ? undefined : `${a.address}:${a.port}`);
  link.started({
    frontends: at.frontends.map((a) => text(a)!),
    ...(at.admin === undefined ? {} : { admin: text(at.admin)! }),
    ...(at.stats === undefined ? {} : { stats: text(at.stats)! }),
    ...(at.metrics === undefined ? {} : { metrics: text(at.metrics)! }),
  });
  return new Promise<number>((resolveExit) => {
    let stopping = false;
    const onHup = (): void => logger('debug', 'SIGHUP ignored by a worker: the primary reloads every worker');
    // Its default action would kill the worker: upgrades are the primary's.
    const onUsr2 = (): void => logger('debug', 'SIGUSR2 ignored by a worker: the primary upgrades');
    const stop = (): void => {
      if (stopping) return;
      stopping = true;
      logger('debug', 'worker shutting down: draining its connections', { graceMs: running.config.shutdownGraceMs });
      running.close().then(
        () => {
          process.off('SIGHUP', onHup);
          process.off('SIGUSR2', onUsr2);
          process.off('SIGTERM', stop);
          process.off('SIGINT', stop);
          process.off('disconnect', stop);
          link.detach();
          // The IPC channel would keep the process alive.
          if (process.connected) process.disconnect();
          resolveExit(0);
        },
        (error: unknown) => {
          io.stderr(`fulcrum: worker ${slot} shutdown failed: ${(error as Error).message}\n`);
          resolveExit(1);
        },
      );
    };
    link.onShutdown = stop;
    if (link.shutdownRequested) stop();
    process.on('SIGHUP', onHup);
    process.on('SIGUSR2', onUsr2);
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('disconnect', stop);
  });
}
