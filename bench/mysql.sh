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
exec "$(dirname "$0")/run_py.sh" mysql "MariaDB as the mysql user" "$@"
