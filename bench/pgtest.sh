#!/usr/bin/env bash
# Measures pkg/pgtest in one run against issue 5's targets, with 50 migrations: the median time
# to hand a test its database from the pool (≤ 5 ms) and as a cold clone with an empty pool
# (≤ 60 ms), and the baseline of running the 50 migrations into an empty database (pgtest from
# the pool must be ≥ 10× faster). Exits 1 when a target is missed.
#
#   bash bench/pgtest.sh                      # a native throwaway server (the host's binaries)
#   bash bench/pgtest.sh -admin "$URL"        # an existing server (superuser URL)
#   bash bench/pgtest.sh -provider container  # a container server (pkg/ephemeral)
#   bash bench/pgtest.sh -n 100               # more samples
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./bench/pgtestbench "$@"
