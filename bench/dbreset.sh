#!/usr/bin/env bash
# Measures `ps-env db reset` (pkg/envdb) in one run against the issue's targets, with 50
# migrations (a table, an index and three rows each) and a seed file: a reset between two tests
# (the time until the database is ready; the spare for the next reset is cloned by the server
# meanwhile) ≤ 100 ms and ≥ 10× faster than dropping the database and running the migrations
# again. Back-to-back resets, which wait for that clone, are printed too. Exits 1 when a target
# is missed.
#
#   bash bench/dbreset.sh                 # a native server as durable as an environment's
#                                         # container (fsync, synchronous_commit on)
#   bash bench/dbreset.sh -admin "$URL"   # an existing server (superuser URL), e.g. the
#                                         # environment's container
#   bash bench/dbreset.sh -n 40           # more samples
set -euo pipefail
cd "$(dirname "$0")/.."
n=20
admin=""
while [ $# -gt 0 ]; do
	case "$1" in
	-n) n="$2"; shift 2 ;;
	-admin) admin="$2"; shift 2 ;;
	*) echo "usage: bash bench/dbreset.sh [-n N] [-admin URL]" >&2; exit 2 ;;
	esac
done
out=$(POSTSTACK_TEST_DATABASE_URL="$admin" go test -run '^$' -bench '^Benchmark(Reset|ResetBackToBack|Remigrate)$' \
	-benchtime "${n}x" -count 1 ./pkg/envdb/)
echo "$out" | grep '^Benchmark'
echo "$out" | awk '
	/^BenchmarkReset-/           { reset = $3 / 1e6 }
	/^BenchmarkResetBackToBack-/ { b2b = $3 / 1e6 }
	/^BenchmarkRemigrate-/       { remig = $3 / 1e6 }
	END {
		if (reset == 0 || remig == 0) { print "missing results"; exit 1 }
		ratio = remig / reset
		printf "db reset (50 migrations):   %7.1f ms   (target <= 100 ms)\n", reset
		printf "back-to-back resets:        %7.1f ms   (each waits for the previous spare clone)\n", b2b
		printf "drop + re-migrate:          %7.1f ms\n", remig
		printf "ratio re-migrate / reset:   %7.1fx    (target >= 10x)\n", ratio
		if (reset > 100 || ratio < 10) { print "FAIL: a target is missed"; exit 1 }
		print "ok"
	}'
