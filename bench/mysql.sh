#!/usr/bin/env bash
# MySQL/MariaDB benchmark: ship lag under a write load, and standby apply
# throughput through instarec relay vs mariadb-binlog|mariadb vs native
# replication.
#
#   bench/mysql.sh [duration-seconds]        (as root; default 20)
#
# Builds the release binary, then bench/mysql.py starts fresh MariaDB
# servers (as the mysql user) on loopback, prints one markdown table and
# replaces the "## MySQL/MariaDB shipping and apply" section of
# docs/benchmarks.md with it (other sections are kept).
# Set BENCH_SKIP_BUILD=1 to reuse target/release/instarec as it is.
set -euo pipefail

cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
    echo "bench/mysql.sh must run as root (it runs MariaDB as the mysql user)" >&2
    exit 2
fi

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    cargo build --release
fi

# mysql.py kills everything it started on exit; this trap catches what it
# could not (e.g. python itself killed): process groups it recorded.
pgid_file=$(mktemp /tmp/instarec-bench-pgids.XXXXXX)
cleanup() {
    while read -r pgid; do
        [[ -n "$pgid" ]] && kill -KILL -- "-$pgid" 2>/dev/null || true
    done <"$pgid_file"
    rm -f "$pgid_file"
}
trap cleanup EXIT

BENCH_PGID_FILE="$pgid_file" python3 bench/mysql.py "$@"
