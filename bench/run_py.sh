#!/usr/bin/env bash
# What bench/ship.sh, backup.sh and mysql.sh share: check root, build the
# release binary, run bench/<script>.py, and kill whatever it left behind.
#
#   bench/run_py.sh <script> <who it runs servers as> [args...]
#
# Set BENCH_SKIP_BUILD=1 to reuse target/release/instarec as it is.
set -euo pipefail

cd "$(dirname "$0")/.."
script=$1
runs_as=$2
shift 2

if [[ $(id -u) -ne 0 ]]; then
    echo "bench/$script.sh must run as root (it runs $runs_as)" >&2
    exit 2
fi

if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    cargo build --release
fi

# The python script kills everything it started on exit; this trap catches
# what it could not (e.g. python itself killed): the process groups it recorded.
pgid_file=$(mktemp /tmp/instarec-bench-pgids.XXXXXX)
cleanup() {
    while read -r pgid; do
        [[ -n "$pgid" ]] && kill -KILL -- "-$pgid" 2>/dev/null || true
    done <"$pgid_file"
    rm -f "$pgid_file"
}
trap cleanup EXIT

BENCH_PGID_FILE="$pgid_file" python3 "bench/$script.py" "$@"
