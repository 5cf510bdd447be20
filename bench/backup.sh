#!/usr/bin/env bash
# Backup and restore benchmark: instarec vs pg_basebackup vs pgBackRest.
#
#   bench/backup.sh [pgbench-scale]        (as root; default 70, about 1 GiB)
#
# Builds the release binary, then bench/backup.py starts one fresh
# PostgreSQL 15 primary, loads it with pgbench -i, takes a base backup with
# each tool and restores it, prints one markdown table and writes the
# "Backup and restore" section of docs/benchmarks.md.
# Set BENCH_SKIP_BUILD=1 to reuse target/release/instarec as it is;
# BENCH_KEEP=1 keeps the scratch dirs in /tmp.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "bench/backup.sh must run as root (it runs PostgreSQL as the postgres user)" >&2
    exit 2
fi

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    cargo build --release
fi

# backup.py kills everything it started on exit; this trap catches what it
# could not (e.g. python itself killed): the process groups it recorded.
pgid_file=$(mktemp /tmp/instarec-bench-pgids.XXXXXX)
cleanup() {
    while read -r pgid; do
        [[ -n "$pgid" ]] && kill -KILL -- "-$pgid" 2>/dev/null || true
    done <"$pgid_file"
    rm -f "$pgid_file"
}
trap cleanup EXIT

BENCH_PGID_FILE="$pgid_file" python3 bench/backup.py "$@"
