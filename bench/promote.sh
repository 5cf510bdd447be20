#!/usr/bin/env bash
# Promote RTO benchmark: repeated `instarec demo` rounds (real PostgreSQL,
# ship, standby from the archive, proxy), planned and crash failover.
#
#   bench/promote.sh [rounds]        (default 5 of each)
#
# RTO is what promote reports: from its start to the first write accepted
# through the proxy. Rewrites the "Promote RTO" section of docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    cargo build --release
fi
exec python3 bench/promote.py "${1:-5}"
