#!/usr/bin/env bash
# Measures ps-build in one run and prints the ratios of issue 4's targets:
#   1. four independent small project images built with -j 4, against the same four built one
#      after another (-j 1): target <= 0.6x;
#   2. a second `ps-build` of everything (base-debian, postgres, the four) with nothing changed:
#      target <= 3 s.
# Each image copies its sources and fetches something (WORKLOAD, below). Each round busts the
# four images' cache with a fresh build argument, so both ways do the same work; the base images
# come from the engine's cache. Needs the engine and the local Debian base
# (scripts/setup.sh podman|docker).
#
#   bash bench/build.sh                 # podman, 3 rounds
#   ENGINE=docker ROUNDS=5 bash bench/build.sh
#   WORKLOAD=download bash bench/build.sh   # builds that wait on the network, not the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-podman}
BASE=${BASE_IMAGE:-localhost/debian:bookworm}
ROUNDS=${ROUNDS:-3}
# apt: each image runs apt-get update + install of one small package (the default, as most
# project images do); download: each fetches a 1.7 MB release artifact at 1 MB/s and unpacks it.
WORKLOAD=${WORKLOAD:-apt}
DEB_URL=${DEB_URL:-http://deb.debian.org/debian/pool/main/p/postgresql-15/postgresql-client-15_15.14-0+deb12u1_amd64.deb}
mkdir -p bin
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/ps-build ./cmd/ps-build
psbuild=$PWD/bin/ps-build

work=$(mktemp -d)
project=psbench$RANDOM
cleanup() {
	for i in 1 2 3 4; do "$ENGINE" rmi -f "$project/svc$i:latest" >/dev/null 2>&1 || true; done
	rm -rf "$work"
}
trap cleanup EXIT

printf 'project:\n  name: %s\n' "$project" >"$work/.poststack.yml"
pkgs=(jq bc file less)
for i in 1 2 3 4; do
	case "$WORKLOAD" in
	apt) fetch="apt-get update -qq; apt-get install -y -qq --no-install-recommends ${pkgs[i-1]} >/dev/null; rm -rf /var/lib/apt/lists/*" ;;
	# A release artifact over a slow link (8 Mbit/s): the wait that parallel builds overlap.
	download) fetch="curl -fsS --limit-rate 1M -o /tmp/a.deb $DEB_URL; dpkg-deb -x /tmp/a.deb /opt/svc/vendor; rm /tmp/a.deb" ;;
	*) echo "WORKLOAD must be apt or download" >&2; exit 2 ;;
	esac
	mkdir -p "$work/containers/svc$i/src"
	# A small service as projects write them: its sources, what $WORKLOAD fetches, a non-root
	# user.
	for f in $(seq 1 50); do printf 'echo "svc%s module %s"\n' "$i" "$f" >"$work/containers/svc$i/src/m$f.sh"; done
	cat >"$work/containers/svc$i/Dockerfile" <<DOCKERFILE
FROM poststack/base-debian:latest
ARG BENCH_RUN
COPY containers/svc$i/src /opt/svc/src
RUN set -e; echo "\$BENCH_RUN" > /opt/svc/build-id; cat /opt/svc/src/*.sh > /opt/svc/all.sh; \\
	$fetch
RUN useradd -r -u 20001 svc && chown -R svc /opt/svc
USER svc
CMD ["sh", "/opt/svc/all.sh"]
DOCKERFILE
done

psb() { (cd "$work" && "$psbuild" --container-runtime "$ENGINE" --base-image "$BASE" --quiet "$@"); }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

echo "==> bench/build.sh: $ENGINE, $(nproc) CPUs, $ROUNDS rounds, workload $WORKLOAD; warming the base images"
psb base-debian postgres

seq_times=() par_times=()
for r in $(seq 1 "$ROUNDS"); do
	# Alternate which way goes first so that drift in the machine's load hits both.
	for mode in $( ((r % 2)) && echo "seq par" || echo "par seq"); do
		jobs=1; [[ $mode == par ]] && jobs=4
		t0=$(now)
		psb -j "$jobs" --build-arg "BENCH_RUN=$mode-$r-$RANDOM" svc1 svc2 svc3 svc4
		t=$(elapsed "$t0" "$(now)")
		if [[ $mode == seq ]]; then seq_times+=("$t"); else par_times+=("$t"); fi
		printf '    round %d  -j %d  %6.2f s\n' "$r" "$jobs" "$t"
	done
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
seq_med=$(median "${seq_times[@]}")
par_med=$(median "${par_times[@]}")
ratio=$(awk -v p="$par_med" -v s="$seq_med" 'BEGIN { printf "%.3f", p / s }')

psb >/dev/null # everything once, so the next run has nothing to do
t0=$(now)
psb
nochange=$(elapsed "$t0" "$(now)")

# verdict VALUE LIMIT: ok when VALUE <= LIMIT.
verdict() { awk -v v="$1" -v l="$2" 'BEGIN { print (v <= l) ? "ok" : "MISSED" }'; }
printf '\n%-52s %10s %10s %s\n' "measure" "value" "target" ""
printf '%-52s %9.2fs %10s\n' "4 images, -j 1 (median of $ROUNDS)" "$seq_med" ""
printf '%-52s %9.2fs %10s\n' "4 images, -j 4 (median of $ROUNDS)" "$par_med" ""
printf '%-52s %9.3fx %10s %s\n' "-j 4 / -j 1" "$ratio" "<= 0.6x" "$(verdict "$ratio" 0.6)"
printf '%-52s %9.2fs %10s %s\n' "second ps-build of 6 images, nothing changed" "$nochange" "<= 3s" "$(verdict "$nochange" 3)"
