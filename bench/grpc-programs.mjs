/**
 * The programs of the gRPC benchmarks (grpc.bench.mjs, grpc-cpu.mjs), each run as `node -e` with
 * its ports as arguments and printing `ready`: the grpc-js backends, Fulcrum's HTTP/2 proxy, the
 * minimal `node:http2` proxy; and the one gRPC frame h2load sends.
 */
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const GRPC = createRequire(join(ROOT, 'packages', 'http', 'package.json')).resolve('@grpc/grpc-js');

/** Write one gRPC frame to `file`: not compressed, a 16-byte message. */
export function writeRequest(file) {
  const message = Buffer.from('0123456789abcdef');
  const frame = Buffer.alloc(5);
  frame.writeUInt32BE(message.length, 1);
  writeFileSync(file, Buffer.concat([frame, message]));
}

export const identity = 'requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b';

/** Three grpc-js servers in one process: `/bench.Echo/Unary` answers its request bytes and who it is in a trailer. */
export const BACKENDS = `
const grpc = require(${JSON.stringify(GRPC)});
const ports = process.argv.slice(1).map(Number);
const method = { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, ${identity} };
(async () => {
  for (const [i, port] of ports.entries()) {
    const server = new grpc.Server();
    server.addService({ unary: method }, { unary: (call, callback) => {
      const trailer = new grpc.Metadata();
      trailer.set('x-backend', 'b' + i);
      callback(null, call.request, trailer);
    } });
    await new Promise((resolve, reject) => server.bindAsync('127.0.0.1:' + port, grpc.ServerCredentials.createInsecure(), (e) => (e ? reject(e) : resolve())));
  }
  console.log('ready');
})();
`;

/** Fulcrum's `createProxyServer` from the build `dist` (an index.js): h2c in, h2 out, round robin. */
export const fulcrumProgram = (dist, forwardedHeaders = true) => `
const { createProxyServer } = await import(${JSON.stringify(dist)});
const [port, ...backends] = process.argv.slice(1).map(Number);
const server = createProxyServer({
  balancer: { algorithm: 'round-robin', backends: backends.map((p, i) => ({ id: 'b' + i, address: 'http://127.0.0.1:' + p })) },
  upstreamProtocol: 'h2',
  http2: { h2c: true, maxConcurrentStreams: 1000 },
  forwardedHeaders: ${forwardedHeaders},
});
await server.listen(port);
console.log('ready');
`;

/**
 * The floor of a Node HTTP/2 proxy: a `node:http2` server whose streams go round robin to one
 * session per backend, headers and trailers copied, bodies piped — no routing, limits, retries,
 * deadlines or accounting. What any proxy built on `node:http2` pays per call.
 */
export const NODE_MINIMAL = `
import http2 from 'node:http2';
import net from 'node:net';
const [port, ...backends] = process.argv.slice(1).map(Number);
const sessions = backends.map((p) => http2.connect('http://127.0.0.1:' + p, { createConnection: () => net.connect({ host: '127.0.0.1', port: p, noDelay: true }) }));
let next = 0;
const server = http2.createServer({ settings: { maxConcurrentStreams: 1000 } });
server.on('connection', (socket) => socket.setNoDelay(true));
server.on('stream', (stream, headers) => {
  const upstream = sessions[next++ % sessions.length].request({ ':method': headers[':method'], ':path': headers[':path'], 'content-type': headers['content-type'], te: 'trailers' });
  stream.pipe(upstream);
  upstream.on('response', (h) => stream.respond({ ':status': h[':status'], 'content-type': h['content-type'] }, { waitForTrailers: true }));
  let trailers = {};
  upstream.on('trailers', (t) => { trailers = { 'grpc-status': t['grpc-status'], 'x-backend': t['x-backend'], ...(t['grpc-message'] ? { 'grpc-message': t['grpc-message'] } : {}) }; });
  stream.on('wantTrailers', () => stream.sendTrailers(trailers));
  upstream.pipe(stream);
  upstream.on('error', () => stream.close());
  stream.on('error', () => upstream.close());
});
server.listen(port, '127.0.0.1', () => console.log('ready'));
`;
