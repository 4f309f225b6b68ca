// A backend for the proxy benchmark: the cheapest correct HTTP/1.1 keep-alive server Node has — a
// fixed 14-byte body with Content-Length, no routing, no cookies — so the proxy in front of it is
// what the benchmark measures. It names itself in `x-backend-id` and in the body so the runner can
// check that each proxy really spreads requests over all three.
//
//   node backend.mjs <id>      listens on a free port of 127.0.0.1 and prints `ready <port>`
import { createServer } from 'node:http';

const id = process.argv[2] ?? 'b';
const body = Buffer.from(`hello from ${id}\n`);
const server = createServer((req, res) => {
  // Drain a request body if there is one; the benchmark sends GETs.
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length, 'x-backend-id': id });
  res.end(body);
});
// Longer than any proxy's pool idle time, so no proxy pays for reconnects the others do not.
server.keepAliveTimeout = 65_000;
server.listen(0, '127.0.0.1', () => console.log(`ready ${server.address().port}`));
process.on('SIGTERM', () => process.exit(0));
process.on('disconnect', () => process.exit(0));
