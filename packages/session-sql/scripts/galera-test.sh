#!/usr/bin/env bash
# The real Galera test: a 3-node MariaDB Galera cluster (Debian's galera-4) on loopback ports in
# temporary data directories, started and torn down by packages/session-sql/scripts/galera.test.ts.
# Needs root (mariadbd --user=root), mariadbd, mariadb-install-db, rsync and libgalera_smm.so.
# Usage: packages/session-sql/scripts/galera-test.sh   (from anywhere; ~40 s)
set -euo pipefail
cd "$(dirname "$0")/../../.."
provider="${WSREP_PROVIDER:-/usr/lib/galera/libgalera_smm.so}"
if [ ! -f "$provider" ]; then
  echo "galera-test: $provider not found (apt-get install -y galera-4 rsync)" >&2
  exit 1
fi
export WSREP_PROVIDER="$provider"
exec node_modules/.bin/vitest run --config packages/session-sql/scripts/vitest.galera.config.ts "$@"
