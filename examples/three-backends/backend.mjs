#!/usr/bin/env node
// One backend of the demo: a small Node HTTP app with an in-memory session, the way the classic
// "three app containers behind one HAProxy" compose setup has it. Forked by demo.mjs; usable alone:
//
//   node backend.mjs --id app-1 --port 3001
//
// It answers every path with who it is and how many times this session has visited it. The session
// lives in this process's memory only (like express-session's default MemoryStore), which is why the
// proxy's sticky cookie matters: without it, a client bounces between backends and each one greets
// it as a stranger.
//
// Routes:
//   GET  /health          200 "ok", or 503 while told to fail (what the proxy's httpProbe checks)
//   POST /admin/fail      fail: /health says 503 and every other request gets a 500
//   POST /admin/recover   serve normally again
//   *    anything else    the greeting: text, or JSON when the client accepts application/json
//
// Port: the one asked for; if it is taken, a free one (a demo should start on a busy laptop). The
// port actually bound is sent to the parent over IPC (`{ type: 'listening', port }`) and printed.
//
// Lifecycle: SIGINT is ignored — Ctrl-C in a terminal signals the whole process group, and the demo
// wants to stop its backends itself, after the proxy, so no request is cut by a backend leaving
// early. SIGTERM closes the server and exits. When the parent's IPC channel closes (the demo exited,
// even by SIGKILL) the backend exits too: no orphans.
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    id: { type: 'string', default: 'app' },
    port: { type: 'string', default: '0' },
    host: { type: 'string', default: '127.0.0.1' },
  },
});
const id = values.id;
const requestedPort = Number(values.port);
if (!/^[A-Za-z0-9._-]{1,64}$/.test(id)) throw new Error(`--id must be 1–64 characters of [A-Za-z0-9._-], got ${JSON.stringify(id)}`);
if (!Number.isInteger(requestedPort) || requestedPort < 0 || requestedPort > 65535) {
  throw new Error(`--port must be an integer from 0 to 65535, got ${JSON.stringify(values.port)}`);
}

const SESSION_COOKIE = 'demo_session';
// Bounded, so a client that never sends its cookie back (curl without -b) cannot grow it forever.
const MAX_SESSIONS = 10_000;
/** session id → visits, in insertion order (oldest first, for eviction). */
const sessions = new Map();
let failing = false;
let served = 0;

function readSessionId(cookieHeader) {
  if (typeof cookieHeader !== 'string') return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== SESSION_COOKIE) continue;
    const value = part.slice(eq + 1).trim();
    // Only ids this process could have issued; anything else is a new session.
    return /^[A-Za-z0-9_-]{16}$/.test(value) ? value : undefined;
  }
  return undefined;
}

function send(res, status, body, type = 'text/plain; charset=utf-8') {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'x-backend-id': id });
  res.end(body);
}

const server = createServer((req, res) => {
  const path = (req.url ?? '/').split('?')[0];
  if (path === '/health') {
    return failing ? send(res, 503, 'failing\n') : send(res, 200, 'ok\n');
  }
  if (path === '/admin/fail' || path === '/admin/recover') {
    if (req.method !== 'POST') {
      res.setHeader('allow', 'POST');
      return send(res, 405, 'use POST\n');
    }
    failing = path === '/admin/fail';
    process.send?.({ type: 'admin', id, failing });
    return send(res, 200, failing ? `${id} is now failing\n` : `${id} has recovered\n`);
  }
  if (failing) return send(res, 500, `${id} is failing (POST /admin/recover on its port to heal it)\n`);

  served++;
  let sessionId = readSessionId(req.headers.cookie);
  let visits = sessionId === undefined ? undefined : sessions.get(sessionId);
  if (visits === undefined) {
    sessionId = randomBytes(12).toString('base64url');
    visits = 0;
    if (sessions.size >= MAX_SESSIONS) sessions.delete(sessions.keys().next().value);
    res.setHeader('set-cookie', `${SESSION_COOKIE}=${sessionId}; Path=/; HttpOnly; SameSite=Lax`);
  }
  visits++;
  sessions.set(sessionId, visits);

  const greeting = { backend: id, pid: process.pid, visits, session: sessionId, method: req.method, path, served };
  const accept = req.headers.accept ?? '';
  if (accept.includes('application/json')) return send(res, 200, `${JSON.stringify(greeting)}\n`, 'application/json; charset=utf-8');
  const line =
    visits === 1
      ? `Hello from ${id} (pid ${process.pid}): a new session. Send the cookies back and you will stay here.\n`
      : `Hello from ${id} (pid ${process.pid}): visit ${visits} of this session.\n`;
  if (accept.includes('text/html')) {
    // Browsers get the same line with a link to the stats page; nothing here echoes request data.
    return send(
      res,
      200,
      `<!doctype html><meta charset="utf-8"><title>${id}</title><p>${line}</p><p><a href="/fulcrum">Fulcrum stats</a></p>\n`,
      'text/html; charset=utf-8',
    );
  }
  send(res, 200, line);
});
// A demo backend keeps connections a little longer than the proxy's pool expects (undici's default
// keep-alive is 4 s): a socket closed by the backend just as the proxy reuses it is a retry, not an
// error, but there is no reason to provoke it.
server.keepAliveTimeout = 10_000;

function listen(port) {
  server.once('error', (error) => {
    if (error.code === 'EADDRINUSE' && port !== 0) {
      console.error(`${id}: port ${port} is taken; using a free port instead`);
      listen(0);
      return;
    }
    throw error;
  });
  server.listen(port, values.host, () => {
    const bound = server.address().port;
    process.send?.({ type: 'listening', id, port: bound, pid: process.pid });
    if (!process.send) console.log(`${id} listening on http://${values.host}:${bound}/ (pid ${process.pid})`);
  });
}

let stopping = false;
/**
 * Close the server, then exit — by the signal that asked for it, so whoever watches (the demo, a
 * shell) sees "killed by SIGTERM" rather than a clean exit it would not expect from `kill <pid>`.
 */
function stop(signal) {
  if (stopping) return;
  stopping = true;
  const exit = () => {
    if (signal === undefined) process.exit(0);
    process.removeAllListeners(signal);
    process.kill(process.pid, signal);
  };
  server.close(exit);
  server.closeAllConnections();
  // Whatever is still open after a second is not worth waiting for.
  setTimeout(exit, 1000).unref();
}

process.on('SIGINT', () => {
  // Standalone (no parent), Ctrl-C is ours to handle; under demo.mjs the demo stops us.
  if (!process.connected) stop('SIGINT');
});
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('disconnect', () => stop());

listen(requestedPort);
