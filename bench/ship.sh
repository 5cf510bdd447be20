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
exec "$(dirname "$0")/run_py.sh" ship "PostgreSQL as the postgres user" "$@"
