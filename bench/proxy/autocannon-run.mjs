// The load generator when wrk is not installed: autocannon (bench/node_modules), one worker, keep-alive
// connections, printing `{ rps, p50, p99, total, errors }` as JSON for proxy.bench.mjs.
//
//   node autocannon-run.mjs <url> <connections> <seconds>
import autocannon from 'autocannon';

const [url, connections, seconds] = process.argv.slice(2);
if (!url?.startsWith('http://127.0.0.1:')) {
  console.error('autocannon-run: the URL must be http://127.0.0.1:<port>/ (the benchmark stays on loopback)');
  process.exit(2);
}
const result = await autocannon({ url, connections: Number(connections), duration: Number(seconds), pipelining: 1 });
console.log(
  JSON.stringify({
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    total: result.requests.total,
    errors: result.errors + result.timeouts + result.non2xx,
  }),
);
