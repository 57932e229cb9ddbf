#!/usr/bin/env bash
# Measures `ps-env up` of the example's dev environment (database + migrations + 1 init pod + 1
# app pod; images built, nothing running) against the same steps done by hand with podman,
# psql and ps-subst, in one run, and a second `up` with nothing changed and `down` (issue 11):
#   up (cold) ≤ 1.3 × by hand;  second up ≤ 1 s;  down ≤ 2 s.
# Each figure is the median of ROUNDS runs (default 3). Needs podman and the images
# (scripts/setup.sh podman; ps-build runs here once).
#
#   bash bench/envup.sh            # ROUNDS=5 bash bench/envup.sh for more samples
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
root=$PWD
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/ ./cmd/ps-env ./cmd/ps-subst ./cmd/ps-build
work=$(mktemp -d)
trap 'cd "$work/p" 2>/dev/null && "$root/bin/ps-env" down dev --volumes >/dev/null 2>&1; rm -rf "$work"' EXIT
cp -a examples/myapp "$work/p"
cd "$work/p"
project=bench$$
app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
sed -i "s/^  name: myapp$/  name: $project/; s/port: 5433/port: auto/; s/APP_HOST_PORT: 8080/APP_HOST_PORT: $app_port/" .poststack.yml
POSTSTACK_BASE_IMAGE=${POSTSTACK_BASE_IMAGE:-localhost/debian:bookworm} "$root/bin/ps-build" --quiet app >/dev/null
ps_env() { "$root/bin/ps-env" --container-runtime podman --quiet "$@"; }
now() { date +%s.%N; }
since() { echo "$(now) - $1" | bc; }

# The by-hand run: what a careful user scripts with podman and psql for the same result.
by_hand() {
	local n=$project-hand pw=handpass port pg=$project-hand-postgres
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	podman network create "$n" >/dev/null
	podman volume create "$n-pgdata" >/dev/null
	podman run -d --name "$pg" --network "$n" -v "$n-pgdata:/var/lib/postgresql/data" \
		-p "127.0.0.1:$port:5432" -e POSTGRES_PASSWORD=$pw poststack/postgres:latest >/dev/null
	local admin="postgres://postgres:$pw@127.0.0.1:$port/postgres?sslmode=disable"
	until psql "$admin" -XAtqc 'select 1' >/dev/null 2>&1; do sleep 0.05; done
	psql "$admin" -XAtq -v ON_ERROR_STOP=1 -c "create role app login password '$pw'" -c "create database app owner app" >/dev/null
	local url="postgres://app:$pw@127.0.0.1:$port/app?sslmode=disable"
	for f in migrations/0*_*.sql; do
		[[ $f == *.rollback.sql ]] && continue
		psql "$url" -XAtq -v ON_ERROR_STOP=1 -1 -f "$f" >/dev/null
	done
	# The pods, rendered by ps-subst with a URL pointing at this database.
	local curl_url="postgres://app:$pw@$pg:5432/app?sslmode=disable"
	POSTSTACK_PROJECT=$project POSTSTACK_ENVIRONMENT=hand POSTSTACK_DATABASE_URL=$curl_url \
		"$root/bin/ps-subst" --yaml containers/seed/seed-pod.yaml | podman kube play --network "$n" - >/dev/null
	[[ $(podman wait "$project-hand-seed-seed") == 0 ]]
	podman pod rm -f "$project-hand-seed" >/dev/null
	POSTSTACK_PROJECT=$project POSTSTACK_ENVIRONMENT=hand POSTSTACK_DATABASE_URL=$curl_url APP_PORT=8080 \
		APP_HOST_PORT=$app_port LOG_LEVEL=info \
		"$root/bin/ps-subst" --yaml containers/app/app-pod.yaml | podman kube play --network "$n" - >/dev/null
	until curl -fs "http://127.0.0.1:$app_port/healthz" >/dev/null; do sleep 0.05; done
}
hand_down() {
	local n=$project-hand
	podman pod rm -f -t 0 "$n-app" >/dev/null 2>&1 || true
	podman rm -f -t 0 "$n-postgres" >/dev/null 2>&1 || true
	podman network rm "$n" >/dev/null 2>&1 || true
	podman volume rm "$n-pgdata" >/dev/null 2>&1 || true
}

# The floor of a second up: the engine's own read commands that it runs (recorded through a
# PATH shim in the round below), replayed one after another — what podman alone costs here.
shim=$work/shim
mkdir -p "$shim"
real_podman=$(command -v podman)
printf '#!/bin/sh\nprintf "%%s\\n" "$*" >> %s/argv\nexec %s "$@"\n' "$shim" "$real_podman" > "$shim/podman"
chmod +x "$shim/podman"
floor_of_second_up() {
	: > "$shim/argv"
	PATH=$shim:$PATH ps_env up dev >/dev/null
	local t n=0
	t=$(now)
	while read -r line; do
		case $line in
		*inspect* | ps\ * | "pod ps"* | version*) read -ra a <<<"$line"; "$real_podman" "${a[@]}" </dev/null >/dev/null 2>&1 || true; n=$((n + 1)) ;;
		esac
	done < "$shim/argv"
	echo "$(since "$t") $n"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
hand=() cold=() warm=() down=() floor=()
for ((i = 1; i <= rounds; i++)); do
	t=$(now); by_hand 2>/dev/null; hand+=("$(since "$t")"); hand_down
	t=$(now); ps_env up dev >/dev/null; cold+=("$(since "$t")")
	curl -fs "http://127.0.0.1:$app_port/" >/dev/null
	t=$(now); ps_env up dev >/dev/null; warm+=("$(since "$t")")
	read -r f fn < <(floor_of_second_up); floor+=("$f")
	t=$(now); ps_env down dev >/dev/null; down+=("$(since "$t")")
	ps_env down dev --volumes >/dev/null
done
h=$(printf '%s\n' "${hand[@]}" | median)
c=$(printf '%s\n' "${cold[@]}" | median)
w=$(printf '%s\n' "${warm[@]}" | median)
d=$(printf '%s\n' "${down[@]}" | median)
fl=$(printf '%s\n' "${floor[@]}" | median)
ratio=$(echo "scale=2; $c / $h" | bc)
printf 'by hand (podman + psql + ps-subst)  %6.2f s   runs: %s\n' "$h" "${hand[*]}"
printf 'ps-env up, nothing running          %6.2f s   runs: %s   ratio %s (target ≤ 1.3)\n' "$c" "${cold[*]}" "$ratio"
printf 'ps-env up, nothing changed          %6.2f s   runs: %s   (target ≤ 1 s)\n' "$w" "${warm[*]}"
printf '  floor: its %s podman read commands alone  %6.2f s   runs: %s   (within 10%%: %s)\n' "$fn" "$fl" "${floor[*]}" "$(echo "$w <= $fl * 1.1" | bc)"
printf 'ps-env down                         %6.2f s   runs: %s   (target ≤ 2 s)\n' "$d" "${down[*]}"
