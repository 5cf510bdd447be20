#!/usr/bin/env bash
# Promote RTO benchmark: repeated rounds of a fresh topology with a client
# writing through `instarec proxy`, then `instarec promote`, planned and
# after kill -9 of the primary.
#
#   bench/promote.sh [--engine postgres|mysql] [rounds]   (default postgres, 5 of each)
#
# postgres rounds are `instarec demo` runs; mysql rounds (as root: MariaDB
# runs as the mysql user) are built by bench/promote.py. RTO is what promote
# reports: from its start to the first write accepted through the proxy.
# Rewrites that engine's part of the "Promote RTO" section of docs/benchmarks.md.
# Set BENCH_SKIP_BUILD=1 to reuse target/release/instarec as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--engine" && "${2:-}" == "mysql" && $(id -u) -ne 0 ]]; then
    echo "bench/promote.sh --engine mysql must run as root (it runs MariaDB as the mysql user)" >&2
    exit 2
fi
if [[ -z "${BENCH_SKIP_BUILD:-}" ]]; then
    cargo build --release
fi
exec python3 bench/promote.py "$@"
