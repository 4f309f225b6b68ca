/**
 * What honouring `req.headers` costs `createProxy` per request (issue #21): building the upstream
 * header list from the client's lines alone (before) against building it after `honouredRawHeaders`
 * compared them with `req.headers` (after). Real `IncomingMessage` objects from Node's parser (a
 * `node:http` server fed pipelined requests through an in-memory socket), 8 typical header lines;
 * only the header work is timed, and the two variants alternate request by request, so the machine's
 * load falls on both alike. Two cases: nothing read `req.headers` before the proxy (the comparison
 * makes Node build it — that cost is counted), and middleware already read it (the pass alone).
 *
 * `src/proxy/headers.ts` imports nothing, so it is transpiled here with TypeScript and imported.
 * Run: `node bench/honoured-headers.bench.mjs`
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';

const source = fileURLToPath(new URL('../packages/http/src/proxy/headers.ts', import.meta.url));
const js = ts.transpileModule(readFileSync(source, 'utf8'), { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 } }).outputText;
const file = join(mkdtempSync(join(tmpdir(), 'fulcrum-bench-')), 'headers.mjs');
writeFileSync(file, js);
const { honouredRawHeaders, requestHeaders } = await import(pathToFileURL(file).href);

const head =
  'GET /api/users/42?fields=name HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36\r\n' +
  'Accept: text/html,application/xhtml+xml\r\nAccept-Encoding: gzip, deflate, br\r\nAccept-Language: en-US,en;q=0.9\r\n' +
  'Cookie: fulcrum_srv=abc.def; session=xyz\r\nConnection: keep-alive\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n';
const ctx = { remoteAddress: '10.0.0.9', encrypted: false, peerTrusted: false, preserveHost: true, addForwarded: true };
const M = 20_000;
let sink = 0;

/** M requests as Node's parser makes them (none has read `headers` yet). */
function parsed() {
  return new Promise((done) => {
    const server = createServer();
    const requests = [];
    server.on('request', (req, res) => {
      requests.push(req);
      res.end();
      if (requests.length === M) done(requests);
    });
    const socket = new Duplex({
      read() {},
      write(_chunk, _encoding, callback) {
        callback();
      },
    });
    server.emit('connection', socket);
    socket.push(Buffer.from(head.repeat(M)));
  });
}

/** CPU time (µs → ns) per request of `work` over the requests: CPU, not wall time, on a loaded machine. */
function cpuPer(requests, work) {
  const start = process.cpuUsage();
  for (const req of requests) sink += work(req).length;
  const used = process.cpuUsage(start);
  return ((used.user + used.system) * 1000) / requests.length;
}
const before = (req) => requestHeaders(req.rawHeaders, ctx, 'backend:80');
const after = (req) => requestHeaders(honouredRawHeaders(req), ctx, 'backend:80');

const rows = { 'nothing read req.headers': [[], []], 'middleware read req.headers': [[], []] };
for (let r = 0; r < 7; r++) {
  // Fresh requests for each measurement: the first read of `headers` (Node building it) is counted.
  const [a, b] = [await parsed(), await parsed()];
  const order = r % 2 === 0;
  const tb = order ? cpuPer(a, before) : 0;
  const ta = cpuPer(b, after);
  rows['nothing read req.headers'][0].push(order ? tb : cpuPer(a, before));
  rows['nothing read req.headers'][1].push(ta);
  // Every request of `b` has its `headers` now, as after middleware that read it: the pass alone.
  rows['middleware read req.headers'][1].push(cpuPer(b, after));
  rows['middleware read req.headers'][0].push(cpuPer(b, before));
}
const median = (xs) => xs.sort((x, y) => x - y)[xs.length >> 1];
console.log('| case | before (ns/request) | after (ns/request) | added |');
console.log('|---|---|---|---|');
for (const [name, [b, a]] of Object.entries(rows)) {
  console.log(`| ${name} | ${median(b).toFixed(0)} | ${median(a).toFixed(0)} | ${(median(a) - median(b)).toFixed(0)} |`);
}
console.log(`(sink ${sink})`);
