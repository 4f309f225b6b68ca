/**
 * The request header object an HTTP/2 backend is sent, per call, two ways: the list path (the client
 * stream's raw list of its fields, `requestHeaders`' list with the forwarding fields, then the
 * HTTP/2 object made from the list — what every stream took before) and `h2RequestHeaders` (the
 * object straight from the client's fields, the forwarding fields from the connection's cache). A
 * unary gRPC call's fields as h2load sends them, in a null-prototype object as `node:http2` hands
 * them over, balanced over three backends.
 *
 * `src/proxy/headers.ts` imports nothing, so it is transpiled here with TypeScript and imported.
 * Run under callgrind for an exact count (subtract `none`, the loop and the fields alone):
 *
 *   for m in none list object; do
 *     valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$m node --single-threaded bench/h2-request-headers.mjs $m 300000
 *   done   # then (PROGRAM TOTALS of list or object − that of none) / 300000
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const source = fileURLToPath(new URL('../packages/http/src/proxy/headers.ts', import.meta.url));
const js = ts.transpileModule(readFileSync(source, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
const file = join(mkdtempSync(join(tmpdir(), 'fulcrum-bench-')), 'headers.mjs');
writeFileSync(file, js);
const { ForwardingCache, h2HeadersFromList, h2RequestHeaders, requestHeaders } = await import(pathToFileURL(file).href);

const [mode = 'object', count = '300000'] = process.argv.slice(2);
if (!['none', 'list', 'object'].includes(mode)) throw new Error('usage: node bench/h2-request-headers.mjs none|list|object [calls]');

/** `Http2ClientStream`'s raw list (`src/h2/client-side.ts`): pseudo-headers left out, `:authority` as `host`. */
function rawFromHeaders(headers) {
  const raw = [];
  let host = false;
  for (const name in headers) {
    if (name.charCodeAt(0) === 0x3a) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (name === 'host') host = true;
    if (typeof value === 'string') raw.push(name, value);
    else for (const item of value) raw.push(name, item);
  }
  const authority = headers[':authority'];
  if (!host && typeof authority === 'string') raw.push('host', authority);
  return raw;
}

function fields() {
  const headers = { __proto__: null };
  headers[':method'] = 'POST';
  headers[':scheme'] = 'http';
  headers[':authority'] = `127.0.0.1:${40000 + (Math.random() < 2 ? 0 : 1)}`;
  headers[':path'] = '/bench.Echo/Unary';
  headers['content-type'] = 'application/grpc';
  headers.te = 'trailers';
  headers['user-agent'] = 'h2load nghttp2/1.52.0';
  headers['content-length'] = '21';
  return headers;
}

const ctx = { remoteAddress: '127.0.0.1', encrypted: false, peerTrusted: false, preserveHost: true, addForwarded: true };
const backends = ['127.0.0.1:50001', '127.0.0.1:50002', '127.0.0.1:50003'];
const cache = new ForwardingCache();
const calls = Number(count);
let fieldsSent = 0;
for (let i = 0; i < calls; i++) {
  const headers = fields();
  const out = { ':method': 'POST', ':scheme': 'http', ':path': '/bench.Echo/Unary' };
  if (mode === 'list') h2HeadersFromList(out, requestHeaders(rawFromHeaders(headers), ctx, backends[i % 3]));
  else if (mode === 'object') h2RequestHeaders(out, headers, ctx, backends[i % 3], cache);
  fieldsSent += Object.keys(out).length;
}
console.log(`${mode}: ${calls} calls, ${fieldsSent / calls} fields each`);
