#!/usr/bin/env bash
# Times `ps-env ephemeral up` against issue 5's targets in one run: native with 50 migrations
# from nothing to a usable URL, cold (empty data-directory cache) ≤ 1.0 s and cached ≤ 0.3 s;
# the container provider with a local image ≤ 2.5 s; each next to a baseline measured in the
# same run (initdb + pg_ctl start; <engine> run + first login) and the in-process time.
# Flags go to bench/ephemeralbench (-runs, -container-runs, -engines docker,podman, -image).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
# Built as `make build` builds it.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/ps-env ./cmd/ps-env
exec go run ./bench/ephemeralbench -ps-env bin/ps-env "$@"
