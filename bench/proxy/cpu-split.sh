#!/usr/bin/env bash
# User and system CPU per request of HAProxy, this checkout's raw engine (createProxyServer with
# cookie stickiness) and another build's, on the same three backends — to see which side of the
# kernel boundary a gap lies on, which the bench's single CPU-per-request figure cannot say.
#
#   bench/proxy/cpu-split.sh [BASE_DIST_INDEX_JS] [ROUNDS] [REQUESTS]
#
# BASE_DIST_INDEX_JS: the build to compare with (default: main's, /work/main/packages/http/dist/index.js).
# Layout as bench/proxy.bench.mjs: backends and proxies pinned to CPU 0, the load (`h2load --h1`,
# 64 connections, REQUESTS per measurement, default 40000) on CPU 1; every proxy warmed up with
# 20000 requests, then ROUNDS (default 3) rounds of HAProxy, this build, the base build in turn.
# CPU from /proc/<pid>/stat (utime, stime: every thread of the process), so the figure includes the
# kernel's loopback TCP work done on the proxy's behalf. Needs haproxy, h2load and taskset.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=$(realpath "${1:-/work/main/packages/http/dist/index.js}")
ROUNDS=${2:-3}
N=${3:-40000}
BRANCH=$(realpath "$HERE/../../packages/http/dist/index.js")
# shellcheck source=lib.sh
source "$HERE/lib.sh"
start_backends taskset -c 0

HAPROXY_PORT=$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")
node "$HERE/haproxy.mjs" "$HAPROXY_PORT" "$BACKENDS" > "$WORK/haproxy.cfg"
taskset -c 0 haproxy -db -f "$WORK/haproxy.cfg" 2> /dev/null &
HAPROXY=$!
PIDS+=("$HAPROXY")
FULCRUM_BASE_DIST=$BRANCH taskset -c 0 node "$HERE/servers.mjs" fulcrum-server-base "$BACKENDS" > "$WORK/branch.out" &
BRANCH_PID=$!
PIDS+=("$BRANCH_PID")
FULCRUM_BASE_DIST=$BASE taskset -c 0 node "$HERE/servers.mjs" fulcrum-server-base "$BACKENDS" > "$WORK/base.out" &
BASE_PID=$!
PIDS+=("$BASE_PID")
BRANCH_PORT=$(ready_port "$WORK/branch.out")
BASE_PORT=$(ready_port "$WORK/base.out")
for _ in $(seq 50); do (exec 3<> "/dev/tcp/127.0.0.1/$HAPROXY_PORT") 2> /dev/null && break; sleep 0.1; done

TICKS=$(getconf CLK_TCK)
measure() { # label pid port
  local before after rate
  before=$(awk '{print $14, $15}' "/proc/$2/stat")
  rate=$(taskset -c 1 h2load --h1 -n "$N" -c 64 "http://127.0.0.1:$3/" | awk '/finished in/ {print $4}')
  after=$(awk '{print $14, $15}' "/proc/$2/stat")
  awk -v n="$N" -v t="$TICKS" -v b="$before" -v a="$after" -v name="$1" -v r="$rate" 'BEGIN {
    split(b, x, " "); split(a, y, " ");
    printf "%-8s %9s req/s   user %5.1f µs   sys %5.1f µs   total %5.1f µs per request\n", name, r,
      (y[1] - x[1]) / t / n * 1e6, (y[2] - x[2]) / t / n * 1e6, (y[1] - x[1] + y[2] - x[2]) / t / n * 1e6 }'
}
for port in "$HAPROXY_PORT" "$BRANCH_PORT" "$BASE_PORT"; do taskset -c 1 h2load --h1 -n 20000 -c 64 "http://127.0.0.1:$port/" > /dev/null; done
echo "base: $BASE"
for round in $(seq "$ROUNDS"); do
  echo "round $round"
  measure haproxy "$HAPROXY" "$HAPROXY_PORT"
  measure branch "$BRANCH_PID" "$BRANCH_PORT"
  measure base "$BASE_PID" "$BASE_PORT"
done
