// One instance of the `users` service: a plain node:http server whose health endpoint answers the
// callers' probes and runs the graceful shutdown on SIGTERM — drain (probes say `drain`, 503), keep
// serving for the grace period, wait for requests in flight, close the server, and let the process
// end by itself (nothing calls process.exit).
//
//   node users-instance.mjs --id users-1 --port 0 [--grace-ms 400]
//
// Started by run.mjs with an IPC channel: it reports { type: 'listening', id, port } once ready.
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';
import { healthEndpoint } from './fulcrum.mjs';

const { values } = parseArgs({
  options: { id: { type: 'string', default: 'users' }, port: { type: 'string', default: '0' }, 'grace-ms': { type: 'string', default: '400' } },
});
const id = values.id;

const server = createServer();
const health = healthEndpoint({
  path: '/health',
  graceMs: Number(values['grace-ms']),
  timeoutMs: 10_000,
  signals: ['SIGTERM'],
  server,
});

// The app: a small JSON API whose answers take 5–25 ms, so requests are in flight when the restart comes.
const app = (req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    setTimeout(
      () => {
        const body = JSON.stringify({ instance: id, method: req.method, path: req.url, received: Buffer.concat(chunks).length });
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
      5 + Math.floor(Math.random() * 20),
    );
  });
};

server.on('request', health.wrap(app));
server.keepAliveTimeout = 30_000;
server.listen(Number(values.port), '127.0.0.1', () => {
  process.send?.({ type: 'listening', id, port: server.address().port });
  // The IPC channel must not keep the process alive once the server has closed.
  process.channel?.unref();
});
// If the parent goes away, leave the same graceful way.
process.on('disconnect', () => void health.beginShutdown());
