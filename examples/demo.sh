#!/usr/bin/env bash
# The poststack demo, on the example app (examples/myapp): build its image with ps-build, bring
# its dev environment up with ps-env (Postgres, migrations, the seed pod, the app pod), ask the
# app over HTTP, take it down and up again (the data stays), then remove it with its data. Last,
# a throwaway migrated PostgreSQL with ps-env ephemeral, as a CI job gets one. Run it with
# `make demo` (which builds bin/ and prepares podman and the base image first).
#
# The dev environment publishes Postgres on 127.0.0.1:5433 and the app on 127.0.0.1:8080; set
# APP_HOST_PORT (a variable the process environment overrides) to move the app elsewhere.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PS_BUILD=${PS_BUILD:-$root/bin/ps-build}
PS_ENV=${PS_ENV:-$root/bin/ps-env}
ENVIRONMENT=dev # the pod environment; staging (compose) is in examples/myapp/README.md
# No registry here: the base image is the local Debian image scripts/setup.sh made.
export POSTSTACK_BASE_IMAGE=${POSTSTACK_BASE_IMAGE:-localhost/debian:bookworm}
APP_URL=http://127.0.0.1:${APP_HOST_PORT:-8080}/

say() { printf '\n==> demo: %s\n' "$*"; }
die() {
	printf '==> demo: FAILED: %s\n' "$*" >&2
	exit 1
}

for b in "$PS_BUILD" "$PS_ENV"; do
	[[ -x $b ]] || die "$b not found: run 'make build' (or 'make demo')"
done
command -v podman >/dev/null || die "podman not installed: run 'scripts/setup.sh podman'"
command -v curl >/dev/null || die "curl not installed"
cd "$root/examples/myapp"
penv() { "$PS_ENV" --container-runtime podman "$@"; }

# visits: GET / (which records a visit), show the answer, print the app's visit count.
visits() {
	local page
	page=$(curl -fsS "$APP_URL") || die "GET $APP_URL failed"
	printf '%s\n' "$page" >&2
	sed -n 's/^ *"visits": \([0-9]*\).*/\1/p' <<<"$page"
}

say "ps-build app   # the app image and the images it is built FROM (cached when unchanged)"
"$PS_BUILD" --container-runtime podman app || die "ps-build failed"

teardown() {
	local status=$?
	say "ps-env down $ENVIRONMENT --volumes   # containers, network and data go"
	if ! penv down "$ENVIRONMENT" --volumes; then
		echo "==> demo: teardown failed" >&2
		((status)) || status=1
	fi
	exit "$status"
}
trap teardown EXIT

say "ps-env up $ENVIRONMENT"
penv up "$ENVIRONMENT" || die "ps-env up failed"

say "curl $APP_URL   # the app records a visit on every GET /"
first=$(visits)
page=$(curl -fsS "$APP_URL") || die "GET $APP_URL failed"
grep -q '"hello from the dev seed"' <<<"$page" || die "the seed pod's greeting is missing"
grep -q "\"visits\": $((first + 1))\$" <<<"$page" || die "the second GET did not count a visit"

say "ps-env up $ENVIRONMENT   # again: nothing changed, nothing restarts"
penv up "$ENVIRONMENT" || die "second ps-env up failed"

say "ps-env down $ENVIRONMENT, then up: the data stays in the volume"
penv down "$ENVIRONMENT" || die "ps-env down failed"
penv up "$ENVIRONMENT" || die "ps-env up after down failed"
again=$(visits)
((again == first + 2)) || die "after down and up the app counted $again visits, want $((first + 2))"
say "the app answered with the data it wrote before down ($again visits)"

trap - EXIT
say "ps-env down $ENVIRONMENT --volumes   # containers, network and data go"
penv down "$ENVIRONMENT" --volumes || die "ps-env down --volumes failed"

# A throwaway PostgreSQL with the app's migrations, as a CI job gets one.
if command -v psql >/dev/null; then
	state=$(mktemp -d)
	say "ps-env ephemeral up --migrate migrations   # native: the host's initdb/postgres, cached"
	url=$("$PS_ENV" ephemeral up --state-dir "$state" --migrate migrations) || die "ps-env ephemeral up failed"
	say "psql \"\$URL\" -c 'select message from greetings'   # the server outlived the command"
	psql "$url" -Atc 'select message from greetings' || die "psql failed"
	say "ps-env ephemeral down --all"
	"$PS_ENV" ephemeral down --state-dir "$state" --all || die "ps-env ephemeral down failed"
	rmdir "$state" 2>/dev/null || rm -rf "$state"
fi
