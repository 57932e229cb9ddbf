#!/usr/bin/env bash
# A stand-in for the project's application (ps-env init wrote it): it says which database it
# was given, then reports every 30 seconds whether that database accepts TCP connections.
# Replace it, and the Dockerfile beside it, with the real thing.
set -euo pipefail

: "${DATABASE_URL:?DATABASE_URL is not set (app-pod.yaml passes POSTSTACK_DATABASE_URL)}"
: "${DB_HOST:?DB_HOST is not set}"
: "${DB_PORT:?DB_PORT is not set}"

log() { printf '%s app: %s\n' "$(date -u '+%Y-%m-%dT%H:%M:%SZ')" "$*"; }

log "started (log level ${LOG_LEVEL:-info}), database ${DB_HOST}:${DB_PORT}"
while true; do
	if (exec 3<>"/dev/tcp/${DB_HOST}/${DB_PORT}") 2>/dev/null; then
		log "database ${DB_HOST}:${DB_PORT} accepts connections"
	else
		log "database ${DB_HOST}:${DB_PORT} does not answer yet"
	fi
	# sleep in the background and wait: bash then acts on the stop signal at once.
	sleep 30 &
	wait $!
done
