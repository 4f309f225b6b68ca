import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { isInvalidOptionError } from '@fulcrum/core';
import type { Backend } from '@fulcrum/core';
import { createBackends } from '@fulcrum/core/testing';
import { afterEach, describe, expect, it } from 'vitest';
import { tcpProbe } from '../../src/probes';
import { closedPort, startTcpServer } from './servers';
import type { TrackedServer } from './servers';

const cleanups: (() => void | Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function backendAt(address: string): Backend {
  return createBackends([{ id: 'b1', address }])[0] as Backend;
}

async function tcpServer(): Promise<TrackedServer> {
  const server = await startTcpServer();
  cleanups.push(() => server.close());
  return server;
}

/**
 * A listener whose accept queue is full: its process never accepts (its event loop is blocked) and
 * two connections fill a backlog of 1, so the kernel drops the next SYN and a connect hangs — the
 * only way to make a loopback connect time out.
 */
async function unresponsiveListener(): Promise<number> {
  const script = `const s=require('node:net').createServer();s.listen({port:0,host:'127.0.0.1',backlog:1},()=>{process.stdout.write(s.address().port+'\\n');Atomics.wait(new Int32Array(new SharedArrayBuffer(4)),0,0,120000)})`;
  const child: ChildProcess = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  cleanups.push(() => {
    child.kill('SIGKILL');
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout?.once('data', (data: Buffer) => resolve(Number(String(data).trim())));
    child.once('error', reject);
  });
  for (let i = 0; i < 2; i += 1) {
    const filler = net.connect(port, '127.0.0.1');
    filler.on('error', () => undefined);
    cleanups.push(() => {
      filler.destroy();
    });
    await new Promise((resolve) => filler.once('connect', resolve));
  }
  return port;
}

describe('tcpProbe', () => {
  it('passes when the port accepts, and closes the connection', async () => {
    const server = await tcpServer();
    const result = await tcpProbe()(backendAt(`127.0.0.1:${server.port}`), new AbortController().signal);
    expect(result).toEqual({ ok: true, detail: 'TCP connect ok' });
    expect(server.connections).toBe(1);
    await server.allClosed();
  });

  it('connects to the port of an http:// address', async () => {
    const server = await tcpServer();
    expect(await tcpProbe()(backendAt(`http://127.0.0.1:${server.port}`), new AbortController().signal)).toMatchObject({ ok: true });
    await server.allClosed();
  });

  it('fails on a refused connection, naming the code and not the address', async () => {
    const port = await closedPort();
    expect(await tcpProbe()(backendAt(`127.0.0.1:${port}`), new AbortController().signal)).toEqual({ ok: false, detail: 'connect failed: ECONNREFUSED' });
  });

  it('fails a connect that hangs past its own timeout', async () => {
    const port = await unresponsiveListener();
    expect(await tcpProbe({ timeoutMs: 150 })(backendAt(`127.0.0.1:${port}`), new AbortController().signal)).toEqual({
      ok: false,
      detail: 'timed out after 150 ms',
    });
  });

  it('rejects with the signal reason when aborted during a hanging connect', async () => {
    const port = await unresponsiveListener();
    const controller = new AbortController();
    const pending = tcpProbe()(backendAt(`127.0.0.1:${port}`), controller.signal);
    const reason = new Error('checker gave up');
    setImmediate(() => controller.abort(reason));
    await expect(pending).rejects.toBe(reason);
  });

  it('does not connect when the signal is already aborted', async () => {
    const server = await tcpServer();
    const controller = new AbortController();
    controller.abort();
    await expect(tcpProbe()(backendAt(`127.0.0.1:${server.port}`), controller.signal)).rejects.toMatchObject({ name: 'AbortError' });
    await new Promise((resolve) => setImmediate(resolve));
    expect(server.connections).toBe(0);
  });

  it.each([
    [{ timeoutMs: -1 }, 'tcpProbe.timeoutMs'],
    [{ timeoutMs: '100' }, 'tcpProbe.timeoutMs'],
    [{ port: 80 }, 'tcpProbe.port'],
    [7, 'tcpProbe'],
  ])('refuses %j with an InvalidOptionError naming %s', (options, path) => {
    let thrown: unknown;
    try {
      tcpProbe(options as never);
    } catch (error) {
      thrown = error;
    }
    expect(isInvalidOptionError(thrown)).toBe(true);
    expect((thrown as { path: string }).path).toBe(path);
  });
});
