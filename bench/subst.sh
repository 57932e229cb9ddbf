#!/usr/bin/env bash
# Measures ps-subst against GNU envsubst and compose-go's template.Substitute
# in one run and prints the ratios (issue 2's targets). Usage: bench/subst.sh [flags]
# Flags go to bench/substbench: -size MB (30), -big MB (1024), -rounds N (3),
# -nested kB (1200: one chain of nested defaults, issue 9).
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -x /usr/bin/time ]] || { echo "bench/subst.sh: GNU time missing: apt-get install -y time" >&2; exit 1; }
command -v envsubst >/dev/null || { echo "bench/subst.sh: envsubst missing: apt-get install -y gettext-base" >&2; exit 1; }
mkdir -p bin
# Built as `make build` builds it.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/ps-subst ./cmd/ps-subst
exec go run ./bench/substbench -ps-subst bin/ps-subst "$@"
