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
 * process keeps serving.
 */
import { spawn } from 'node:child_process';
import { announceReady, handOver, HANDOVER_ENV, receiveHandover, type Inherited } from './handover';
import { loadConfig } from './load';
import { startFulcrum, stderrLogger, type RunnerLogger } from './runner';

/** How long a successor may take to receive the handover, start and serve, ms. */
const UPGRADE_TIMEOUT_MS = 30_000;

const USAGE = `usage: fulcrum --config <file.json> [--check]

  -c, --config <file>   the config file (JSON; see docs/cli.md and schema/fulcrum.schema.json)
      --check           validate the config and exit: 0 if valid, 1 with the error if not
  -h, --help            this text

signals: SIGHUP reloads the config; SIGUSR2 hands over to a new process without dropping a
connection (an upgrade); SIGTERM or SIGINT shut down gracefully, a second one at once
`;

/** What `runCli` needs from the process (injectable for tests). */
export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  env: Readonly<Record<string, string | undefined>>;
  logger?: RunnerLogger;
}

interface ParsedArgs {
  config: string | undefined;
  check: boolean;
  help: boolean;
}

function parseArgs(argv: readonly string[]): ParsedArgs | string {
  const parsed: ParsedArgs = { config: undefined, check: false, help: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--check' || arg === '-t') parsed.check = true;
    else if (arg === '--help' || arg === '-h') parsed.help = true;
    else if (arg === '--config' || arg === '-c') {
      const value = argv[++i];
      if (value === undefined) return `${arg} needs a file`;
      parsed.config = value;
    } else if (arg.startsWith('--config=')) parsed.config = arg.slice('--config='.length);
    else return `unknown argument ${JSON.stringify(arg)}`;
  }
  return parsed;
}

/**
 * Run the CLI with `argv` (without node and script). Resolves with the exit code for `--check`, bad
 * arguments and start failures; while the proxy runs it resolves only after a signal shut it down.
 */
export async function runCli(
  argv: readonly string[],
  io: CliIo = { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t), env: process.env },
): Promise<number> {
  const args = parseArgs(argv);
  if (typeof args === 'string') {
    io.stderr(`fulcrum: ${args}\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    io.stdout(USAGE);
    return 0;
  }
  if (args.config === undefined) {
    io.stderr(`fulcrum: --config is required\n${USAGE}`);
    return 2;
  }
  let config;
  try {
    config = await loadConfig(args.config, { env: io.env });
  } catch (error) {
    io.stderr(`fulcrum: ${args.config}: ${(error as Error).message}\n`);
    return 1;
  }
  if (args.check) {
    io.stdout(`fulcrum: ${args.config}: valid (${config.pools.size} pool${config.pools.size === 1 ? '' : 's'}, ${config.frontends.length} frontend${config.frontends.length === 1 ? '' : 's'})\n`);
    return 0;
  }
  // A successor (SIGUSR2 in the predecessor) takes its listeners and state before it starts.
  let inherit: Inherited | undefined;
  if (io.env[HANDOVER_ENV] === '1') {
    // Not passed on: this process's own successor is told so by this process, not by the environment.
    delete process.env[HANDOVER_ENV];
    try {
      inherit = await receiveHandover(UPGRADE_TIMEOUT_MS);
    } catch (error) {
      io.stderr(`fulcrum: cannot take over: ${(error as Error).message}\n`);
      return 1;
    }
  }
  const logger = io.logger ?? stderrLogger;
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
      upgrading = true;
      const script = process.argv[1];
      if (script === undefined) {
        upgrading = false;
        logger('error', 'upgrade failed: no script path to start the new process from');
        return;
      }
      logger('info', 'upgrade: starting a new process', { pid: process.pid });
      const child = spawn(process.execPath, [...process.execArgv, script, ...argv], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        env: { ...process.env, [HANDOVER_ENV]: '1' },
      });
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
      (io.logger ?? stderrLogger)('info', 'shutting down', { signal, graceMs: running.config.shutdownGraceMs });
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
