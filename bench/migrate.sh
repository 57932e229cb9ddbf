#!/usr/bin/env bash
# Measures ps-migrate against the floor of one psql session in one run and
# prints the ratios (issue 3's targets). Needs the test PostgreSQL server
# (scripts/setup.sh postgres) or -admin URL of a superuser.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
# Built as `make build` builds it.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/ps-migrate ./cmd/ps-migrate
exec go run ./bench/migratebench -ps-migrate bin/ps-migrate "$@"
