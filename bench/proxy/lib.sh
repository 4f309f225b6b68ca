# Sourced by cpu-split.sh and instructions.sh (after `set -euo pipefail` and HERE=this folder): a
# work directory and the children started, removed and killed on exit; waiting for a child's
# `ready <port>`; the three backends.
WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# ready_port FILE [TRIES] [PAUSE]: waits for a line `ready <port>` in FILE (TRIES times PAUSE s, by
# default 300 × 0.1) and prints the port; exits the script with FILE on stderr if none comes.
ready_port() {
  local tries=${2:-300} pause=${3:-0.1}
  for _ in $(seq "$tries"); do
    if grep -q '^ready' "$1" 2>/dev/null; then
      awk '/^ready/ {print $2}' "$1"
      return 0
    fi
    sleep "$pause"
  done
  echo "not ready: $1" >&2
  cat "$1" >&2
  exit 1
}

# start_backends [PREFIX...]: backend.mjs b1, b2 and b3, each run under PREFIX (e.g. `taskset -c 0`);
# sets PORTS to their ports and BACKENDS to the same joined by commas.
start_backends() {
  local id
  for id in b1 b2 b3; do
    "$@" node "$HERE/backend.mjs" "$id" > "$WORK/$id.out" &
    PIDS+=($!)
  done
  PORTS=()
  for id in b1 b2 b3; do PORTS+=("$(ready_port "$WORK/$id.out")"); done
  BACKENDS=$(IFS=,; echo "${PORTS[*]}")
}
