/**
 * Child processes of the benchmarks (grpc.bench.mjs, grpc-cpu.mjs): a free port of 127.0.0.1, and
 * children started pinned to a CPU with `taskset` (when `pin`), resolved once they print `ready`,
 * all killed when the benchmark exits.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A port of 127.0.0.1 nothing listens on now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/** `start` and the set of children it started, every one killed (SIGKILL) when this process exits. */
export function launcher(pin) {
  const children = new Set();
  const killAll = () => {
    for (const child of children) child.kill('SIGKILL');
  };
  process.on('exit', killAll);

  /** Start `argv` on `cpu`; resolve `{ child, out }` once it prints `ready` (its stdout and stderr). */
  function start(argv, cpu, ready = /ready/) {
    const command = pin ? ['taskset', '-c', String(cpu), ...argv] : argv;
    const child = spawn(command[0], command.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    child.on('exit', () => children.delete(child));
    return new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${argv.join(' ')} not ready in 20 s:\n${out}`)), 20_000);
      const onData = (chunk) => {
        out += chunk;
        if (ready.test(out)) {
          clearTimeout(timer);
          resolve({ child, out });
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('exit', (code) => reject(new Error(`${argv[0]} exited (${code}):\n${out}`)));
    });
  }

  return { children, killAll, start };
}

/** CPU seconds (user + system) a process has used, from /proc; undefined where there is none. */
export function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}
