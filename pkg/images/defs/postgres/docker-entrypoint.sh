#!/usr/bin/env bash
# Entrypoint of poststack/postgres. It honours the environment contract of the official postgres
# image, so that compose files, testcontainers-go and `ps-env` treat both images alike:
#
#   POSTGRES_USER              superuser to create (default postgres)
#   POSTGRES_PASSWORD          its password; required unless POSTGRES_HOST_AUTH_METHOD=trust
#   POSTGRES_DB                database to create (default: POSTGRES_USER)
#   POSTGRES_INITDB_ARGS       extra initdb arguments (shell words, e.g. "--data-checksums")
#   POSTGRES_INITDB_WALDIR     optional separate WAL directory
#   POSTGRES_HOST_AUTH_METHOD  pg_hba method for TCP connections (default scram-sha-256)
#   PGDATA                     cluster directory (default /var/lib/postgresql/data)
#   <NAME>_FILE                read POSTGRES_USER/PASSWORD/DB/INITDB_ARGS from a file (secrets)
#
# On the first start only (PGDATA holds no cluster), it runs initdb, starts a server that listens
# on the unix socket alone, creates POSTGRES_DB, runs /docker-entrypoint-initdb.d/*.sql,
# *.sql.gz, *.sql.xz and *.sh in sorted order, and stops that server. Then it execs postgres, which
# thus is PID 1 and receives the engine's stop signal. PostgreSQL logs "database system is ready to
# accept connections" twice on a first start (testcontainers-go waits for the second) and once on
# later starts.
set -Eeuo pipefail

log() { printf '%s poststack-entrypoint: %s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# file_env NAME [DEFAULT] sets NAME from NAME, or from the file named by NAME_FILE, so that
# secrets need not sit in the container's environment (docker/podman secrets, Kubernetes).
file_env() {
	local name="$1" def="${2:-}" file_var="${1}_FILE"
	local val="$def"
	if [[ -n "${!name:-}" && -n "${!file_var:-}" ]]; then
		die "both $name and $file_var are set; they are exclusive"
	fi
	if [[ -n "${!name:-}" ]]; then
		val="${!name}"
	elif [[ -n "${!file_var:-}" ]]; then
		[[ -r "${!file_var}" ]] || die "$file_var names ${!file_var}, which cannot be read"
		val="$(<"${!file_var}")"
	fi
	export "$name"="$val"
	unset "$file_var"
}

# A first argument that is an option means "postgres with these options", as in the official
# image: `docker run image -c fsync=off`.
if [[ $# -eq 0 || "$1" == -* ]]; then
	set -- postgres "$@"
fi

# Anything other than the server (bash, psql, pg_dump) runs as given, untouched.
if [[ "$1" != postgres ]]; then
	exec "$@"
fi

: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA

# As root: give PGDATA and the socket directory to postgres, then run this script again as
# postgres. setpriv execs in place, so the server started below keeps PID 1.
if [[ "$(id -u)" == 0 ]]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chmod 0700 "$PGDATA"
	find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
	chown postgres:postgres /var/run/postgresql
	chmod 3777 /var/run/postgresql
	if [[ -n "${POSTGRES_INITDB_WALDIR:-}" ]]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
		chmod 0700 "$POSTGRES_INITDB_WALDIR"
	fi
	export HOME=/var/lib/postgresql
	exec setpriv --reuid=postgres --regid=postgres --init-groups -- "${BASH_SOURCE[0]}" "$@"
fi

# Run as a non-root user (--user), the directory must already be usable by that user.
mkdir -p "$PGDATA"
chmod 0700 "$PGDATA" 2>/dev/null || true

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
	file_env POSTGRES_USER postgres
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=scram-sha-256}"

	if [[ -z "$POSTGRES_PASSWORD" && "$POSTGRES_HOST_AUTH_METHOD" != trust ]]; then
		die "the database is uninitialised and POSTGRES_PASSWORD is not set.
  Set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE) to the superuser's password, or set
  POSTGRES_HOST_AUTH_METHOD=trust to accept every connection without a password (never do
  that where the port is reachable by others)."
	fi
	if [[ "$POSTGRES_HOST_AUTH_METHOD" == trust ]]; then
		log "warning: POSTGRES_HOST_AUTH_METHOD=trust: any client that reaches the port connects as any role without a password"
	fi

	# Shell words, so that quoted values work: POSTGRES_INITDB_ARGS="--locale 'C.UTF-8'".
	extra_args=()
	eval "extra_args=( ${POSTGRES_INITDB_ARGS} )"
	initdb_args=(--username="$POSTGRES_USER" --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD")
	if [[ -n "${POSTGRES_INITDB_WALDIR:-}" ]]; then
		initdb_args+=(--waldir="$POSTGRES_INITDB_WALDIR")
	fi
	log "initialising a PostgreSQL ${PG_MAJOR:-} cluster in $PGDATA for user $POSTGRES_USER"
	if [[ -n "$POSTGRES_PASSWORD" ]]; then
		# Through a pipe, never on a command line that `ps` would show.
		initdb "${initdb_args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra_args[@]}"
	else
		initdb "${initdb_args[@]}" "${extra_args[@]}"
	fi

	{
		echo
		echo "# poststack: every client over TCP authenticates with POSTGRES_HOST_AUTH_METHOD."
		echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"
	{
		echo
		echo "# poststack"
		echo "listen_addresses = '*'"
		echo "password_encryption = scram-sha-256"
	} >>"$PGDATA/postgresql.conf"

	# The server's own options (e.g. -c shared_buffers=…) apply to the setup server too, but it
	# listens on the unix socket only: no client can connect before initialisation is complete.
	server_opts=""
	if [[ $# -gt 1 ]]; then
		server_opts="$(printf '%q ' "${@:2}")"
	fi
	pg_ctl -D "$PGDATA" -o "$server_opts -c listen_addresses='' -p 5432" -w start

	export PGUSER="$POSTGRES_USER" PGPASSWORD="$POSTGRES_PASSWORD" PGHOST=/var/run/postgresql PGPORT=5432
	psql_cmd=(psql -X -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password)

	"${psql_cmd[@]}" --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
		SELECT format('CREATE DATABASE %I', :'db')
		WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
	EOSQL

	shopt -s nullglob
	for f in /docker-entrypoint-initdb.d/*; do
		case "$f" in
		*.sh)
			# Executable scripts run as programs; others are sourced, as in the official image,
			# so they see psql_cmd and the variables above.
			if [[ -x "$f" ]]; then
				log "running $f"
				"$f"
			else
				log "sourcing $f"
				# shellcheck disable=SC1090
				. "$f"
			fi
			;;
		*.sql)
			log "running $f"
			"${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f"
			;;
		*.sql.gz)
			log "running $f"
			gunzip -c "$f" | "${psql_cmd[@]}" --dbname "$POSTGRES_DB"
			;;
		*.sql.xz)
			log "running $f"
			xz -dc "$f" | "${psql_cmd[@]}" --dbname "$POSTGRES_DB"
			;;
		*)
			log "ignoring $f"
			;;
		esac
	done
	shopt -u nullglob
	unset PGUSER PGPASSWORD PGHOST PGPORT

	pg_ctl -D "$PGDATA" -m fast -w stop
	log "initialisation complete; starting PostgreSQL"
else
	log "$PGDATA holds a PostgreSQL $(<"$PGDATA/PG_VERSION") cluster; skipping initialisation"
fi

# The secrets were only needed for initdb; the server does not need them in its environment.
unset POSTGRES_PASSWORD POSTGRES_PASSWORD_FILE
exec "$@"
