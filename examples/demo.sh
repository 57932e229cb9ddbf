#!/usr/bin/env bash
# The poststack demo: render the example app's pod with ps-subst, play it with podman, show
# what the container printed, take it down again, then start a throwaway migrated PostgreSQL
# with ps-env ephemeral, query it, and remove it. Run it with `make demo` (which builds
# bin/ and prepares podman and the base image first).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PS_SUBST=${PS_SUBST:-$root/bin/ps-subst}
ENVIRONMENT=${ENVIRONMENT:-dev}
POD=myapp-$ENVIRONMENT-app
CONTAINER=$POD-app # podman kube play names containers <pod>-<container>
TEMPLATE=containers/app/app-pod.yaml

say() { printf '\n==> demo: %s\n' "$*"; }
die() {
	printf '==> demo: FAILED: %s\n' "$*" >&2
	exit 1
}

[[ -x $PS_SUBST ]] || die "$PS_SUBST not found: run 'make build' (or 'make demo')"
command -v podman >/dev/null || die "podman not installed: run 'scripts/setup.sh podman'"
cd "$root/examples/myapp"

# The rendered pod never touches the disk: it may carry secrets. --yaml: a value cannot add keys.
render() { "$PS_SUBST" --env "$ENVIRONMENT" --yaml "$TEMPLATE"; }

teardown() {
	local status=$?
	say "podman kube down (re-rendered)"
	if ! render | podman kube down -; then
		echo "==> demo: teardown failed" >&2
		((status)) || status=1
	fi
	exit "$status"
}

say "ps-subst --env $ENVIRONMENT --yaml $TEMPLATE"
render || die "ps-subst failed" # shown so the reader sees what podman receives

say "ps-subst --env $ENVIRONMENT --yaml $TEMPLATE | podman kube play --replace -"
trap teardown EXIT
render | podman kube play --replace - || die "podman kube play failed"

say "waiting for $CONTAINER to exit"
code=$(timeout 60 podman wait "$CONTAINER") || die "$CONTAINER did not exit within 60 s"
[[ $code == 0 ]] || die "$CONTAINER exited with $code"

say "podman logs $CONTAINER"
logs=$(podman logs "$CONTAINER" 2>&1)
printf '%s\n' "$logs"
grep -q "project=myapp environment=$ENVIRONMENT " <<<"$logs" ||
	die "the container did not print the substituted values"

say "the container ran with the values ps-subst substituted"

# A throwaway PostgreSQL with the app's migrations, as a CI job gets one.
PS_ENV=${PS_ENV:-$root/bin/ps-env}
if [[ -x $PS_ENV ]] && command -v psql >/dev/null; then
	state=$(mktemp -d)
	say "ps-env ephemeral up --migrate migrations   # native: the host's initdb/postgres, cached"
	url=$("$PS_ENV" ephemeral up --state-dir "$state" --migrate migrations) || die "ps-env ephemeral up failed"
	say "psql \"\$URL\" -c 'select message from greetings'   # the server outlived the command"
	psql "$url" -Atc 'select message from greetings' || die "psql failed"
	say "ps-env ephemeral down --all"
	"$PS_ENV" ephemeral down --state-dir "$state" --all || die "ps-env ephemeral down failed"
	rmdir "$state" 2>/dev/null || rm -rf "$state"
fi
