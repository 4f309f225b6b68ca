#!/usr/bin/env bash
# Instructions per request of the raw engine (createProxyServer), counted by callgrind: a noise-free
# A/B on a loaded machine, where CPU-time ratios drift by ±10 %.
#
#   bench/proxy/instructions.sh [DIST_INDEX_JS] [REQUESTS] [WARMUP]
#
# DIST_INDEX_JS: the build to measure (default: this checkout's packages/http/dist/index.js; pass a
# copy of main's dist for the baseline). Three backends (plain Node, not instrumented) and the proxy
# run on 127.0.0.1; valgrind starts with instrumentation off, `h2load --h1` sends WARMUP requests
# (default 8000), instrumentation is switched on for REQUESTS more (default 3000, 8 connections) and
# off again. Printed: user-space instructions per request in total, in V8's optimizing compiler, in
# the GC (both depend on timing, not on the request, and vary from run to run) and the rest — the
# per-request work to compare. Kernel time is not counted (callgrind sees user space only).
# KEEP_PROFILE=FILE keeps the callgrind profile there (for `callgrind_annotate FILE`: which builtins,
# runtime functions and JIT code the instructions went to). Needs valgrind and h2load. Takes a few minutes (the proxy runs ~50× slower under callgrind).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
DIST=${1:-$HERE/../../packages/http/dist/index.js}
REQUESTS=${2:-3000}
WARMUP=${3:-8000}
DIST=$(realpath "$DIST")
# shellcheck source=lib.sh
source "$HERE/lib.sh"
start_backends

FULCRUM_BASE_DIST=$DIST valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
  --callgrind-out-file="$WORK/callgrind.out" \
  node --single-threaded "$HERE/servers.mjs" fulcrum-server-base "$BACKENDS" > "$WORK/proxy.out" 2> "$WORK/valgrind.err" &
VALGRIND=$!
PIDS+=("$VALGRIND")
# Under callgrind the proxy takes long to start: up to 300 s.
PORT=$(ready_port "$WORK/proxy.out" 1500 0.2)

h2load --h1 -n "$WARMUP" -c 8 "http://127.0.0.1:$PORT/" > /dev/null
callgrind_control -i on "$VALGRIND" > /dev/null 2>&1
h2load --h1 -n "$REQUESTS" -c 8 "http://127.0.0.1:$PORT/" | grep -E '^status codes'
callgrind_control -i off "$VALGRIND" > /dev/null 2>&1
callgrind_control -d "$VALGRIND" > /dev/null 2>&1
sleep 1
PROFILE=$(ls -S "$WORK"/callgrind.out* | head -1)
if [ -n "${KEEP_PROFILE:-}" ]; then cp "$PROFILE" "$KEEP_PROFILE"; fi
callgrind_annotate --threshold=100 "$PROFILE" 2>/dev/null | awk -v n="$REQUESTS" -v dist="$DIST" '
  /PROGRAM TOTALS/ { gsub(",", "", $1); total = $1 }
  /file:function/ { listing = 1; next }
  listing && /\(/ {
    v = $1; gsub(",", "", v)
    if ($0 ~ /compiler::|Compiler|Maglev|maglev|Turboshaft|turboshaft|OptimizedCompilation|CodeGenerator|InstructionSelector|RegisterAllocat|Pipeline/) compiler += v
    else if ($0 ~ /Marking|MarkCompact|Scavenge|Sweeper|Evacuat|IteratePointers|ShouldVisit|GCTracer|Heap::|IterateObjectCache|RootScavengeVisitor|RootVisitor|MemoryAllocator|PagedSpace|SemiSpace|FreeList/) gc += v
  }
  END {
    printf "%s\n  instructions per request: total %.0f, optimizing compiler %.0f, GC %.0f, rest (per-request work) %.0f\n", dist, total / n, compiler / n, gc / n, (total - compiler - gc) / n
  }'
