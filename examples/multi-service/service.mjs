// One instance of a backend of the multi-service example: a plain node:http process, as a real
// service would be, started by run.mjs with an IPC channel.
//
//   node service.mjs --service catalog --instance catalog-1 [--version v1] [--port 0]
//   node service.mjs --service site --instance site-1 --static ./site [--port 0]
//
// As an API (`catalog`, `orders`) it answers JSON naming the service, instance and version that
// served the request, and the path and forwarding headers it received — so what the router did
// (which pool, which rewritten path, X-Forwarded-Proto) is visible in every answer. With `--static`
// it is the static site: it serves files below that directory (GET/HEAD only, no directory
// listing, no path outside the root), as a CDN origin or an nginx `root` would.
//
// Each instance answers `GET /health` (the proxy's probes), reports { type: 'listening', port } to
// its parent once bound, and leaves on SIGTERM/SIGINT or when the parent goes away: it stops
// accepting, closes idle keep-alive connections, and lets requests in flight finish.
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import { extname, resolve, sep } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    service: { type: 'string' },
    instance: { type: 'string' },
    version: { type: 'string', default: 'v1' },
    port: { type: 'string', default: '0' },
    static: { type: 'string' },
  },
});
if (values.service === undefined || values.instance === undefined) {
  console.error('service.mjs: --service and --instance are required');
  process.exit(2);
}
const { service, instance, version } = values;
const root = values.static === undefined ? undefined : resolve(values.static);

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
};

function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(body), 'x-served-by': instance });
  res.end(body);
}

async function serveStatic(req, res) {
  if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain; charset=utf-8', 'Method Not Allowed\n');
  // The proxy already normalised the path (dot segments, doubled slashes); decode it and check again
  // here anyway: the file server must not depend on what stands in front of it.
  let path;
  try {
    path = decodeURIComponent(new URL(req.url, 'http://site').pathname);
  } catch {
    return send(res, 400, 'text/plain; charset=utf-8', 'Bad Request\n');
  }
  if (path.endsWith('/')) path += 'index.html';
  const file = resolve(root, `.${path}`);
  if (!file.startsWith(root + sep) || path.includes('\0')) return send(res, 404, 'text/plain; charset=utf-8', 'Not Found\n');
  let info;
  try {
    info = await stat(file);
  } catch {
    return send(res, 404, 'text/plain; charset=utf-8', 'Not Found\n');
  }
  if (!info.isFile()) return send(res, 404, 'text/plain; charset=utf-8', 'Not Found\n');
  res.writeHead(200, {
    'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
    'content-length': info.size,
    'cache-control': 'public, max-age=60',
    'x-served-by': instance,
  });
  if (req.method === 'HEAD') return res.end();
  createReadStream(file)
    .on('error', () => res.destroy())
    .pipe(res);
}

function serveApi(req, res) {
  // Drain any request body first: the answer does not depend on it, but the connection must stay reusable.
  req.resume();
  req.once('end', () => {
    const body = `${JSON.stringify({
      service,
      instance,
      version,
      method: req.method,
      path: req.url,
      host: req.headers.host,
      forwardedProto: req.headers['x-forwarded-proto'],
    })}\n`;
    send(res, 200, 'application/json', body);
  });
}

const server = createServer((req, res) => {
  if (req.url === '/health') return send(res, 200, 'text/plain; charset=utf-8', 'ok\n');
  if (root !== undefined) {
    serveStatic(req, res).catch(() => res.destroy());
    return;
  }
  serveApi(req, res);
});
// Longer than the proxy's idle keep-alive, so the proxy (not the backend) closes idle connections
// and never sends a request on a socket the backend is closing.
server.keepAliveTimeout = 65_000;

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close();
  server.closeIdleConnections();
  // Requests in flight are tiny; a stuck client must not keep the instance alive forever.
  setTimeout(() => server.closeAllConnections(), 2000).unref();
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
// The parent is gone (crashed or killed): do not linger as an orphan.
process.once('disconnect', stop);

server.listen(Number(values.port), '127.0.0.1', () => {
  process.send?.({ type: 'listening', instance, port: server.address().port });
  // The IPC channel must not keep the process alive once the server has closed.
  process.channel?.unref();
});
