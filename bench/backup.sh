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
exec "$(dirname "$0")/run_py.sh" backup "PostgreSQL as the postgres user" "$@"
