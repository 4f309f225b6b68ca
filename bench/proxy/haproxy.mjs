// HAProxy's configuration in the proxy benchmarks (proxy.bench.mjs, proxy/cpu-split.sh): one thread,
// keep-alive, round robin over the three backends with cookie stickiness (`SRV`, inserted), on
// 127.0.0.1:<port>. As a script, `node haproxy.mjs <port> <backend ports, comma-separated>` prints it.
import { pathToFileURL } from 'node:url';

export function haproxyConfig(port, backendPorts) {
  return `global
    nbthread 1
    # Well above the benchmark's connections, and within a default 20k descriptor limit (2 per connection).
    maxconn 4096
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    option http-keep-alive
frontend bench
    bind 127.0.0.1:${port}
    default_backend three
backend three
    balance roundrobin
    cookie SRV insert indirect nocache
${backendPorts.map((p, i) => `    server b${i + 1} 127.0.0.1:${p} cookie b${i + 1}`).join('\n')}
`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [port, backends] = process.argv.slice(2);
  process.stdout.write(haproxyConfig(Number(port), backends.split(',').map(Number)));
}
