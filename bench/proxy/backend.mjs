// A backend for the proxy benchmark: the cheapest correct HTTP/1.1 keep-alive server Node has — a
// fixed 14-byte body with Content-Length, no routing, no cookies — so the proxy in front of it is
// what the benchmark measures. It names itself in `x-backend-id` and in the body so the runner can
// check that each proxy really spreads requests over all three.
//
//   node backend.mjs <id> [bodyBytes]   listens on a free port of 127.0.0.1 and prints `ready <port>`
//
// With `bodyBytes` the body is padded to that size (4 KiB and 64 KiB responses), still starting
// with `hello from <id>`.
import { createServer } from 'node:http';

const id = process.argv[2] ?? 'b';
const size = Number(process.argv[3] ?? 0);
const greeting = `hello from ${id}\n`;
const body = Buffer.from(size > greeting.length ? greeting + 'x'.repeat(size - greeting.length) : greeting);
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
