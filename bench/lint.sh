#!/usr/bin/env bash
# Measures `ps-migrate lint` of 20 new migrations on a base of 200 with the native provider
# (issue 12: ≤ 3 s end to end), next to `ps-env ephemeral up --migrate` of the same 220
# migrations measured in the same run (the ratio is the figure that travels between machines),
# and a bare `ps-env ephemeral up` (the floor: a server and nothing else).
# 1st run = empty cache (XDG_CACHE_HOME a new directory: initdb runs and the base is applied),
# then the 2nd and 3rd runs on that cache.
# Each figure is the median of ROUNDS runs (default 5).
#
#   bash bench/lint.sh            # ROUNDS=9 bash bench/lint.sh for more samples
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-5}
root=$PWD
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/ ./cmd/ps-env ./cmd/ps-migrate
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/p/migrations"
cd "$work/p"
# The base: 200 migrations, a table each with an index and a foreign key to the one before.
for i in $(seq 1 200); do
	v=$(printf '%04d' "$i")
	{
		echo "CREATE TABLE t$i (id bigserial PRIMARY KEY, name text NOT NULL, n int, created timestamptz DEFAULT now()$( ((i > 1)) && echo ", parent bigint REFERENCES t$((i - 1))(id)"));"
		echo "CREATE INDEX t${i}_name_idx ON t$i (name);"
	} >"migrations/${v}_table_$i.sql"
	echo "DROP TABLE t$i;" >"migrations/${v}_table_$i.rollback.sql"
done
# 20 new ones: half unsafe (an index build, a rewrite, a validated constraint, a scan under
# a write lock), half safe (nullable column, concurrent index, NOT VALID, widened varchar).
for i in $(seq 1 20); do
	v=$(printf '%04d' $((200 + i)))
	t=t$((i * 10))
	case $((i % 4)) in
	0) sql="CREATE INDEX ${t}_n_idx_$i ON $t (n);" down="DROP INDEX ${t}_n_idx_$i;" ;;
	1) sql="ALTER TABLE $t ADD COLUMN c$i text;" down="ALTER TABLE $t DROP COLUMN c$i;" ;;
	2) sql="ALTER TABLE $t ALTER COLUMN n TYPE bigint;" down="ALTER TABLE $t ALTER COLUMN n TYPE int;" ;;
	3) sql="ALTER TABLE $t ADD CONSTRAINT ${t}_n_check_$i CHECK (n > 0) NOT VALID;" down="ALTER TABLE $t DROP CONSTRAINT ${t}_n_check_$i;" ;;
	esac
	echo "$sql" >"migrations/${v}_change_$i.sql"
	echo "$down" >"migrations/${v}_change_$i.rollback.sql"
done

now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# One timed run of a command; prints seconds. ps-env ephemeral up leaves a server: stop it.
lint_once() {
	local s rc=0
	s=$(now)
	"$root/bin/ps-migrate" --quiet lint --base 200 >/dev/null || rc=$?
	since "$s"
	# The unsafe half are errors: exit 3 is the expected result; anything else is a failure.
	((rc == 3)) || { echo "lint exited $rc, want 3" >&2; exit 1; }
}
ephemeral_once() {
	local s url
	s=$(now)
	url=$("$root/bin/ps-env" --quiet ephemeral up --state-dir "$work/state" "$@")
	since "$s"
	"$root/bin/ps-env" --quiet ephemeral down --state-dir "$work/state" --all >/dev/null
	[[ $url == postgres://* ]] || { echo "ephemeral up printed no URL" >&2; exit 1; }
}
# measure NAME FN ARGS: the cold figure (a fresh cache each round: the first run), the second
# run's and the third's (by then both tools have their migrated state cached: ephemeral keeps it
# only from its second start, lint from its first).
declare -A cold warm cached
measure() {
	local name=$1
	shift
	local c=() w=() k=()
	for _ in $(seq "$rounds"); do
		export XDG_CACHE_HOME=$work/cache-$RANDOM$RANDOM
		c+=("$("$@")")
		w+=("$("$@")")
		k+=("$("$@")")
		rm -rf "$XDG_CACHE_HOME"
	done
	cold[$name]=$(printf '%s\n' "${c[@]}" | median)
	warm[$name]=$(printf '%s\n' "${w[@]}" | median)
	cached[$name]=$(printf '%s\n' "${k[@]}" | median)
}
measure lint lint_once
measure ephemeral ephemeral_once --migrate migrations
measure bare ephemeral_once

printf '%-44s %8s %8s %8s\n' "median of $rounds (seconds)" "1st run" "2nd" "3rd"
printf '%-44s %8.3f %8.3f %8.3f\n' "ps-migrate lint --base 200 (20 new)" "${cold[lint]}" "${warm[lint]}" "${cached[lint]}"
printf '%-44s %8.3f %8.3f %8.3f\n' "ps-env ephemeral up --migrate (220)" "${cold[ephemeral]}" "${warm[ephemeral]}" "${cached[ephemeral]}"
printf '%-44s %8.3f %8.3f %8.3f\n' "ps-env ephemeral up (floor: a bare server)" "${cold[bare]}" "${warm[bare]}" "${cached[bare]}"
printf 'lint / ephemeral up --migrate: 1st run %.2f×, cached %.2f×\n' \
	"$(echo "${cold[lint]} / ${cold[ephemeral]}" | bc -l)" "$(echo "${cached[lint]} / ${cached[ephemeral]}" | bc -l)"
# The 1st run's floor: what a server with the base migrated costs from an empty cache
# (ephemeral up --migrate's 1st run: initdb, start, the 200 base migrations) plus the review
# alone (lint's 3rd run less a bare cached start, which is what the 3rd run's start costs).
floor=$(echo "${cold[ephemeral]} + ${cached[lint]} - ${cached[bare]}" | bc -l)
printf 'lint 1st run floor (ephemeral up --migrate 1st + lint 3rd - bare 3rd) %.3f s; lint 1st run / floor %.2f×\n' \
	"$floor" "$(echo "${cold[lint]} / $floor" | bc -l)"
printf 'target lint ≤ 3 s: cached %s, 1st run %s\n' \
	"$(echo "${cached[lint]} <= 3" | bc -l | sed 's/^1$/met/; s/^0$/NOT met/')" \
	"$(echo "${cold[lint]} <= 3" | bc -l | sed 's/^1$/met/; s/^0$/NOT met/')"
