#!/usr/bin/env bash
# WAL shipping benchmark: instarec ship vs pg_receivewal vs pgBackRest.
#
#   bench/ship.sh [duration-seconds]        (as root; default 30)
#
# Builds the release binary, then bench/ship.py starts a fresh PostgreSQL 15
# primary per configuration, runs the same pgbench load against each, prints
# one markdown table and rewrites docs/benchmarks.md with it.
# Set BENCH_SKIP_BUILD=1 to reuse target/release/instarec as it is.
# Synchronous mode only, 3 interleaved rounds, docs/benchmarks.md untouched:
#   BENCH_ONLY=instarec_sync,native_sync,instarec_sync_s3 BENCH_REPEAT=3 bench/ship.sh 15
# (BENCH_INSTAREC=/path/to/instarec measures another build.)
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "bench/ship.sh must run as root (it runs PostgreSQL as the postgres user)" >&2
    exit 2
fi

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    cargo build --release
fi

# ship.py kills everything it started on exit; this trap catches what it
# could not (e.g. python itself killed): process groups it recorded.
pgid_file=$(mktemp /tmp/instarec-bench-pgids.XXXXXX)
cleanup() {
    while read -r pgid; do
        [[ -n "$pgid" ]] && kill -KILL -- "-$pgid" 2>/dev/null || true
    done <"$pgid_file"
    rm -f "$pgid_file"
}
trap cleanup EXIT

BENCH_PGID_FILE="$pgid_file" python3 bench/ship.py "$@"
