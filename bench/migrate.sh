#!/usr/bin/env bash
# Measures ps-migrate against the floor of one psql session in one run, and its
# no-op up against goose v3's, and prints the ratios (issues 3 and 10). Needs
# the test PostgreSQL server (scripts/setup.sh postgres) or -admin URL of a
# superuser. goose is installed from the Go module proxy into bin/bench/ the
# first time (a few minutes: it builds every database driver goose ships).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin bin/bench
# Built as `make build` builds it.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o bin/ps-migrate ./cmd/ps-migrate
goose_version=v3.30.0
if ! [ -x bin/bench/goose ] || ! bin/bench/goose --version 2>/dev/null | grep -qF "$goose_version"; then
	# As goose's README installs it; outside this module, so its dependencies stay out of go.mod.
	GOBIN="$PWD/bin/bench" GOFLAGS=-buildvcs=false CGO_ENABLED=0 \
		go install "github.com/pressly/goose/v3/cmd/goose@$goose_version"
fi
exec go run ./bench/migratebench -ps-migrate bin/ps-migrate -goose bin/bench/goose "$@"
