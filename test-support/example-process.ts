/**
 * An example run as a user runs it, for the examples' end-to-end tests: `node <script> …` forked in
 * its own process with an IPC channel (the example reports what it started over it), its stdout and
 * stderr kept for failure messages, stopped with SIGINT as Ctrl-C would stop it.
 */
import { fork, type ChildProcess } from 'node:child_process';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ExampleProcess<M extends { type: string }> {
  readonly child: ChildProcess;
  /** Every IPC message so far, in order. */
  readonly messages: M[];
  /** Its stdout and stderr so far. */
  output(): string;
  readonly exited: Promise<Exit>;
  /**
   * Message number `index` (0: the first) of `type`, already received or still to come. Rejects,
   * with the output, when the process exits before sending it or after `timeoutMs`.
   */
  message<T extends M['type']>(type: T, timeoutMs: number, index?: number): Promise<Extract<M, { type: T }>>;
}

export function forkExample<M extends { type: string }>(script: string, args: string[]): ExampleProcess<M> {
  const child = fork(script, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const messages: M[] = [];
  child.on('message', (message: M) => messages.push(message));
  const message = <T extends M['type']>(type: T, timeoutMs: number, index = 0): Promise<Extract<M, { type: T }>> => {
    const isWanted = (m: M): m is Extract<M, { type: T }> => m.type === type;
    const wanted = (): Extract<M, { type: T }> | undefined => messages.filter(isWanted)[index];
    const already = wanted();
    if (already !== undefined) return Promise.resolve(already);
    const what = `'${type}' message #${index + 1}`;
    return new Promise((resolve, reject) => {
      // Registered after the collecting listener above, so `messages` already holds the new one.
      const onMessage = (): void => {
        const found = wanted();
        if (found === undefined) return;
        clearTimeout(timer);
        child.off('message', onMessage);
        resolve(found);
      };
      const timer = setTimeout(() => {
        child.off('message', onMessage);
        reject(new Error(`no ${what} from ${script} in ${timeoutMs} ms:\n${output}`));
      }, timeoutMs);
      child.on('message', onMessage);
      void exited.then(({ code, signal }) => {
        clearTimeout(timer);
        reject(new Error(`${script} exited before its ${what} (code ${code}, signal ${signal}):\n${output}`));
      });
    });
  };
  return { child, messages, output: () => output, exited, message };
}

/** SIGINT, as Ctrl-C; SIGKILL if it still runs `graceMs` later. Resolves with how it exited. */
export async function interrupt(example: { readonly child: ChildProcess; readonly exited: Promise<Exit> }, graceMs = 10_000): Promise<Exit> {
  if (example.child.exitCode === null && example.child.signalCode === null) example.child.kill('SIGINT');
  const killer = setTimeout(() => example.child.kill('SIGKILL'), graceMs);
  const exit = await example.exited;
  clearTimeout(killer);
  return exit;
}

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
