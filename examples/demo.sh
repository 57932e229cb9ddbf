#!/usr/bin/env bash
# The poststack demo: the main job on the example app (examples/myapp), as `make demo` runs it
# (after preparing podman and the local base image, and building bin/):
#   1. ps-build            the project's images: base-debian, postgres, myapp/app
#   2. ps-env up dev       Postgres, the migrations, the seed pod, the app pod
#   3. ps-env status dev   what runs: database, migrations, containers
#   4. GET /               the app answers with rows it read from its database
#   5. ps-migrate lint     the review of a pending unsafe migration (examples/myapp/pending/):
#                          exit 3 with the finding, and the demo goes on
#   6. ps-env down dev     containers, pods and network go (checked), the data volume stays
# It leaves the data volume myapp-dev-pgdata, and says how to remove it.
#
# The dev environment publishes Postgres on 127.0.0.1:5433 and the app on 127.0.0.1:8080; both
# must be free (ps-env up checks them before it starts anything). Set APP_HOST_PORT (a variable
# the process environment overrides) to move the app elsewhere.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PS_BUILD=${PS_BUILD:-$root/bin/ps-build}
PS_ENV=${PS_ENV:-$root/bin/ps-env}
PS_MIGRATE=${PS_MIGRATE:-$root/bin/ps-migrate}
ENVIRONMENT=dev # the pod environment; staging (compose) is in examples/myapp/README.md
PROJECT=myapp   # .poststack.yml's project name: it names the containers, labels and volume
# No registry here: the base image is the local Debian image scripts/setup.sh made.
export POSTSTACK_BASE_IMAGE=${POSTSTACK_BASE_IMAGE:-localhost/debian:bookworm}
APP_URL=http://127.0.0.1:${APP_HOST_PORT:-8080}/

say() { printf '\n==> demo: %s\n' "$*"; }
show() { # show CMD... prints the command as a user would type it, then runs it
	printf '$ %s\n' "$*"
	"$@"
}
die() {
	printf '==> demo: FAILED: %s\n' "$*" >&2
	exit 1
}

for b in "$PS_BUILD" "$PS_ENV" "$PS_MIGRATE"; do
	[[ -x $b ]] || die "$b not found: run 'make build' (or 'make demo')"
done
command -v podman >/dev/null || die "podman not installed: run 'scripts/setup.sh podman'"
command -v curl >/dev/null || die "curl not installed"
# ps-migrate lint reviews in a throwaway native PostgreSQL: the host's server binaries.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null ||
	die "no PostgreSQL server binaries (initdb) for ps-migrate lint: apt-get install postgresql-15"
cd "$root/examples/myapp"
# The binaries by their names in what is shown: bin/ first on PATH.
PATH=$(dirname "$PS_ENV"):$(dirname "$PS_BUILD"):$(dirname "$PS_MIGRATE"):$PATH
export POSTSTACK_CONTAINER_RUNTIME=podman
started=$SECONDS

# running lists this project's containers that still run, by the labels ps-env gives them.
running() { podman ps --filter "label=io.poststack.project=$PROJECT" --format '{{.Names}}'; }

work=$(mktemp -d) # the HTTP answer and the review's copy of migrations/
up= # set once ps-env up has started something
# A failure half-way takes the environment down (keeping its data), as the last step would.
on_exit() {
	local status=$?
	rm -rf "$work"
	if ((status)) && [[ -n $up ]]; then
		say "stopping after the failure: ps-env down $ENVIRONMENT"
		"$PS_ENV" down "$ENVIRONMENT" || echo "==> demo: ps-env down failed too" >&2
	fi
	exit "$status"
}
trap on_exit EXIT

say "1/6 build the project's images (ps-build builds what they are FROM first; unchanged ones are up to date)"
show ps-build || die "ps-build failed"

say "2/6 bring the dev environment up: Postgres, migrations, the seed pod, the app pod"
up=1
show ps-env up "$ENVIRONMENT" || die "ps-env up failed"

say "3/6 what runs"
show ps-env status "$ENVIRONMENT" || die "ps-env status failed"

say "4/6 ask the app: GET / reads the greetings and counts this visit, in its database"
headers=$work/headers body=$work/body
printf '$ curl -sS %s\n' "$APP_URL"
curl -sS --max-time 10 -D "$headers" -o "$body" "$APP_URL" || die "GET $APP_URL failed"
status_line=$(head -n1 "$headers" | tr -d '\r')
printf '%s\n' "$status_line"
cat "$body"
printf '\n'
[[ $status_line == *" 200"* ]] || die "the app answered '$status_line', want 200"
grep -q '"hello from the dev seed"' "$body" || die "the answer lacks the greeting the seed pod wrote"
visits=$(sed -n 's/^ *"visits": \([0-9]*\).*/\1/p' "$body")

say "5/6 review a pending migration before it lands: examples/myapp/pending/0003_visits_path_index.sql"
# The review runs in a copy of migrations/ that also holds the pending file, so that `ps-env up`
# never sees it; --base 2: migrations 1 and 2 are the base, 3 is new.
review=$work/review
mkdir "$review"
cp -r migrations "$review/"
cp pending/*.sql "$review/migrations/"
cat pending/0003_visits_path_index.sql
set +e
(cd "$review" && show ps-migrate lint --base 2)
lint_status=$?
set -e
echo "(ps-migrate lint exited $lint_status)"
((lint_status == 3)) || die "ps-migrate lint exited $lint_status, want 3: the unsafe migration must be an error"

say "6/6 stop the environment: its containers go, its data stays"
show ps-env down "$ENVIRONMENT" || die "ps-env down failed"
left=$(running)
[[ -z $left ]] || die "containers of $PROJECT still run after ps-env down: $left"
echo "no container of $PROJECT is running (podman ps --filter label=io.poststack.project=$PROJECT is empty)"
podman volume exists "$PROJECT-$ENVIRONMENT-pgdata" || die "the data volume $PROJECT-$ENVIRONMENT-pgdata is gone"
echo "the data volume $PROJECT-$ENVIRONMENT-pgdata is kept: the next 'ps-env up' finds its data (visits so far: $visits)"
up=

cat <<EOF

==> demo: done in $((SECONDS - started)) s. What you just saw:
  - ps-build built the example's images, each after the ones it is FROM (base-debian, postgres,
    myapp/app); an image whose inputs did not change is up to date at once.
  - ps-env up dev started PostgreSQL, applied migrations/ (0001, 0002), ran the seed pod and
    started the app pod; ps-env status showed the database, the migrations and the containers.
  - The app answered GET / with the greetings it read from its database and the visit it wrote.
  - ps-migrate lint ran the pending 0003 in a scratch server and found that CREATE INDEX without
    CONCURRENTLY blocks writes to visits: exit 3, with the safe way to write it.
  - ps-env down dev removed the containers, pods and network and kept the data volume.

To remove the rest, data included:
  cd examples/myapp && ../../bin/ps-env down dev --volumes
EOF
