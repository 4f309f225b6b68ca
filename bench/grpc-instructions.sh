#!/usr/bin/env bash
# Instructions per unary gRPC call of the HTTP/2 proxy, counted by callgrind: an A/B that the other
# processes of a shared machine do not disturb, where CPU-time ratios drift by ±10 % (`grpc-cpu.mjs`
# is the timed counterpart).
#
#   [CLIENTS=8 STREAMS=16] bench/grpc-instructions.sh [DIST_INDEX_JS | node-minimal] [CALLS] [WARMUP]
#
# DIST_INDEX_JS: the build to measure (default: this checkout's packages/http/dist/index.js; pass a
# copy of main's dist, e.g. packages/http/node_modules/.base/dist/index.js, for the baseline);
# `node-minimal` measures the bare `node:http2` proxy of grpc-programs.mjs instead. The proxy is
# grpc-programs.mjs's (h2c in, h2 out, round robin over three grpc-js backends in one plain,
# uninstrumented process). valgrind starts with instrumentation off, h2load sends WARMUP calls
# (default 8000), instrumentation is switched on for CALLS more (default 3000; CLIENTS connections ×
# STREAMS concurrent streams, one 16-byte gRPC message each) and off again. Printed: user-space
# instructions per call in total, in V8's optimizing compiler, in the GC (both depend on timing) and
# the rest — the per-call work to compare. Unlike the HTTP/1.1 count, the rest too varies by 3–5 %
# between runs of one build (the optimizing compiler keeps working through the run — every
# `ClientHttp2Session.request` reshapes prototypes in Node's own code — and concurrent streams are
# read in batches whose sizes vary): repeat it and compare medians. Kernel time is not counted
# (callgrind sees user space only). KEEP_PROFILE=FILE keeps the callgrind profile there (for
# `callgrind_annotate FILE`). Needs valgrind and h2load; takes a few minutes (the proxy runs ~50×
# slower under callgrind).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIST=${1:-$HERE/../packages/http/dist/index.js}
CALLS=${2:-3000}
WARMUP=${3:-8000}
CLIENTS=${CLIENTS:-8}
STREAMS=${STREAMS:-16}
if [ "$DIST" != node-minimal ]; then DIST=$(realpath "$DIST"); fi
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# The programs and the request, from grpc-programs.mjs; four free ports (three backends, the proxy).
node --input-type=module -e "
import { writeFileSync } from 'node:fs';
import { BACKENDS, NODE_MINIMAL, fulcrumProgram, writeRequest } from '$HERE/grpc-programs.mjs';
import { freePort } from '$HERE/processes.mjs';
const [work, dist] = process.argv.slice(1);
writeRequest(work + '/request.bin');
writeFileSync(work + '/backends.cjs', BACKENDS);
writeFileSync(work + '/proxy.mjs', dist === 'node-minimal' ? NODE_MINIMAL : fulcrumProgram(dist));
writeFileSync(work + '/ports', [await freePort(), await freePort(), await freePort(), await freePort()].join(' ') + '\n');
" "$WORK" "$DIST"
read -r B1 B2 B3 PORT < "$WORK/ports"

# wait_ready FILE TRIES PAUSE: until FILE has a line `ready`; exits the script with FILE if none comes.
wait_ready() {
  for _ in $(seq "$2"); do
    if grep -q '^ready' "$1" 2>/dev/null; then return 0; fi
    sleep "$3"
  done
  echo "not ready: $1" >&2
  cat "$1" >&2
  exit 1
}

node -e "$(cat "$WORK/backends.cjs")" "$B1" "$B2" "$B3" > "$WORK/backends.out" 2>&1 &
PIDS+=($!)
wait_ready "$WORK/backends.out" 300 0.1

valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no --callgrind-out-file="$WORK/callgrind.out" \
  node --single-threaded --input-type=module -e "$(cat "$WORK/proxy.mjs")" "$PORT" "$B1" "$B2" "$B3" > "$WORK/proxy.out" 2> "$WORK/valgrind.err" &
VALGRIND=$!
PIDS+=("$VALGRIND")
# Under callgrind the proxy takes long to start: up to 300 s.
wait_ready "$WORK/proxy.out" 1500 0.2

calls() {
  h2load -c "$CLIENTS" -m "$STREAMS" -t 1 -n "$1" -H 'content-type: application/grpc' -H 'te: trailers' -d "$WORK/request.bin" \
    "http://127.0.0.1:$PORT/bench.Echo/Unary"
}
calls "$WARMUP" > /dev/null
callgrind_control -i on "$VALGRIND" > /dev/null 2>&1
calls "$CALLS" | grep -E '^status codes'
callgrind_control -i off "$VALGRIND" > /dev/null 2>&1
callgrind_control -d "$VALGRIND" > /dev/null 2>&1
sleep 1
PROFILE=$(ls -S "$WORK"/callgrind.out* | head -1)
if [ -n "${KEEP_PROFILE:-}" ]; then cp "$PROFILE" "$KEEP_PROFILE"; fi
callgrind_annotate --threshold=100 "$PROFILE" 2>/dev/null | awk -v n="$CALLS" -v dist="$DIST" '
  /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
  /file:function/ { listing = 1; next }
  listing && /\(/ {
    v = $1; gsub(",", "", v)
    if ($0 ~ /compiler::|Compiler|Maglev|maglev|Turboshaft|turboshaft|OptimizedCompilation|CodeGenerator|InstructionSelector|RegisterAllocat|Pipeline/) compiler += v
    else if ($0 ~ /Marking|MarkCompact|Scavenge|Sweeper|Evacuat|IteratePointers|ShouldVisit|GCTracer|Heap::|IterateObjectCache|RootScavengeVisitor|RootVisitor|MemoryAllocator|PagedSpace|SemiSpace|FreeList/) gc += v
  }
  END {
    printf "%s\n  instructions per call: total %.0f, optimizing compiler %.0f, GC %.0f, rest (per-call work) %.0f\n", dist, total / n, compiler / n, gc / n, (total - compiler - gc) / n
  }'
