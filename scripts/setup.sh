#!/usr/bin/env bash
# Prepares a Debian 12 machine (root) for poststack's tests and demo: packages, PostgreSQL 15,
# podman (+ its Docker-compatible API socket), dockerd and a locally built Debian base image.
# Every step checks whether it is already done, so re-running is cheap.
#
# Usage: scripts/setup.sh [STEP...]      (default: all)
#   all        everything below
#   podman     packages for podman, containers.conf, base image in podman (what `make demo` needs)
#   packages   apt packages only
#   postgres   PostgreSQL 15 on 127.0.0.1:5432 with a password for the test superuser
#   socket     podman API socket at /run/podman/podman.sock
#   docker     dockerd on /var/run/docker.sock and the base image in docker
#   image      the base image and the Go build image in podman (and in docker when dockerd is up)
#   act        nektos/act (built with go install) for the GitHub Action's tests
#   compose    docker compose v2, built from the Go module proxy, as a docker CLI plugin
#   peers      goose and golang-migrate's migrate (Postgres only), for the adopt/convert tests
#   env        print the environment variables the tests use
#
# Knobs (environment): POSTSTACK_CACHE_DIR (default /var/cache/poststack),
# POSTSTACK_PG_PASSWORD (default postgres), POSTSTACK_BASE_IMAGE (default localhost/debian:bookworm),
# POSTSTACK_DEBIAN_MIRROR (default: the mirror apt uses).
set -euo pipefail

CACHE_DIR=${POSTSTACK_CACHE_DIR:-/var/cache/poststack}
PG_PASSWORD=${POSTSTACK_PG_PASSWORD:-postgres}
BASE_IMAGE=${POSTSTACK_BASE_IMAGE:-localhost/debian:bookworm}
PODMAN_SOCK=/run/podman/podman.sock
DOCKER_SOCK=/var/run/docker.sock
# The newest installed server (15 on Debian 12); override with POSTSTACK_PG_VERSION.
PG_VERSION=${POSTSTACK_PG_VERSION:-$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null | sort -V | tail -n1)}
PG_VERSION=${PG_VERSION:-15}
PG_CLUSTER=main
PG_PORT=5432
TEST_DATABASE_URL="postgres://postgres:${PG_PASSWORD}@127.0.0.1:${PG_PORT}/postgres?sslmode=disable"

PODMAN_PACKAGES=(podman runc conmon catatonit netavark aardvark-dns iptables debian-archive-keyring
	debootstrap gettext-base ca-certificates curl)
ALL_PACKAGES=("${PODMAN_PACKAGES[@]}" time)
# A docker engine installed some other way (docker-ce, moby on CI runners) conflicts with
# Debian's docker.io; keep whatever is there.
command -v dockerd >/dev/null 2>&1 || ALL_PACKAGES+=(docker.io containerd tini)

export DEBIAN_FRONTEND=noninteractive

log() { printf '==> setup: %s\n' "$*" >&2; }
die() {
	printf '==> setup: ERROR: %s\n' "$*" >&2
	exit 1
}
need_root() { [[ $(id -u) == 0 ]] || die "must run as root (it installs packages and starts daemons)"; }

# wait_for SECONDS DESCRIPTION CMD... polls CMD every 0.2 s until it succeeds.
wait_for() {
	local timeout=$1 what=$2
	shift 2
	local deadline=$((SECONDS + timeout))
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 0.2
	done
	log "$what is up"
}

APT_UPDATED=
apt_install() {
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	((${#missing[@]})) || return 0
	need_root
	log "installing ${missing[*]}"
	if [[ -z $APT_UPDATED ]]; then
		# Third-party sources on these machines may be unreachable; Debian's mirror is what counts,
		# and the install below fails loudly if a package really cannot be found.
		apt-get update -qq -o Acquire::Retries=2 || log "apt-get update reported errors (continuing)"
		APT_UPDATED=1
	fi
	apt-get install -y -qq --no-install-recommends -o Dpkg::Use-Pty=0 "${missing[@]}" >/dev/null ||
		die "apt-get install ${missing[*]} failed"
}

step_packages() { apt_install "${ALL_PACKAGES[@]}"; }
step_podman_packages() { apt_install "${PODMAN_PACKAGES[@]}"; }

# set_toml_key FILE SECTION KEY VALUE sets KEY in [SECTION] without touching other settings.
set_toml_key() {
	local file=$1 section=$2 key=$3 value=$4 tmp
	tmp=$(mktemp)
	awk -v section="[$section]" -v key="$key" -v value="$value" '
		function emit() { print key " = " value; done = 1 }
		/^[[:space:]]*\[/ {
			if (insec && !done) emit()
			insec = ($0 == section); seen = seen || insec
			print; next
		}
		insec && $0 ~ "^[[:space:]]*#?[[:space:]]*" key "[[:space:]]*=" { if (!done) emit(); next }
		{ print }
		END {
			if (insec && !done) emit()
			else if (!seen) { print ""; print section; emit() }
		}' "$file" >"$tmp"
	cat "$tmp" >"$file"
	rm -f "$tmp"
}

step_containers_conf() {
	local conf=/etc/containers/containers.conf
	if [[ -f $conf ]] &&
		grep -Eq '^[[:space:]]*runtime[[:space:]]*=[[:space:]]*"runc"' "$conf" &&
		grep -Eq '^[[:space:]]*default_ulimits[[:space:]]*=.*nofile=20000:20000' "$conf"; then
		return 0
	fi
	need_root
	log "configuring $conf (runc, ulimits)"
	mkdir -p /etc/containers
	touch "$conf"
	# crun cannot handle this host's hybrid cgroups, and the default nofile limit is above what
	# the VM allows a container to set.
	set_toml_key "$conf" containers default_ulimits '["nofile=20000:20000", "nproc=20000:20000"]'
	set_toml_key "$conf" engine runtime '"runc"'
}

# step_stale_forwards deletes the iptables DNAT rules netavark left for podman containers that
# no longer exist (a container killed mid-teardown keeps its port forwards): a server that
# later binds such a port is never reached, since connections to it go to the dead
# container's address.
step_stale_forwards() {
	command -v iptables >/dev/null && command -v podman >/dev/null || return 0
	local rule id n=0
	while IFS= read -r rule; do
		id=$(sed -n 's/.*podman id: \([0-9a-f]*\).*/\1/p' <<<"$rule")
		[[ -n $id ]] || continue
		podman container exists "$id" 2>/dev/null && continue
		# shellcheck disable=SC2086 # the rule's words, as iptables -S printed them
		eval "iptables -t nat ${rule/-A /-D }" 2>/dev/null && n=$((n + 1))
	done < <(iptables -t nat -S NETAVARK-HOSTPORT-DNAT 2>/dev/null | grep -- '-A NETAVARK-HOSTPORT-DNAT')
	((n == 0)) || log "removed $n port forwards of podman containers that are gone"
}

pg_ready() { pg_isready -q -h 127.0.0.1 -p "$PG_PORT"; }
pg_password_ok() {
	PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 psql -X -q -w -h 127.0.0.1 -p "$PG_PORT" -U postgres \
		-d postgres -tAc 'select 1' 2>/dev/null | grep -qx 1
}

step_postgres() {
	if pg_ready && pg_password_ok; then
		log "postgres already running on 127.0.0.1:$PG_PORT"
		return 0
	fi
	need_root
	command -v pg_ctlcluster >/dev/null || apt_install "postgresql-$PG_VERSION"
	if ! pg_lsclusters -h 2>/dev/null | awk '{print $1" "$2}' | grep -qx "$PG_VERSION $PG_CLUSTER"; then
		log "creating cluster $PG_VERSION/$PG_CLUSTER"
		pg_createcluster "$PG_VERSION" "$PG_CLUSTER" -p "$PG_PORT" >/dev/null
	fi
	local confd=/etc/postgresql/$PG_VERSION/$PG_CLUSTER/conf.d
	if [[ -n ${CI:-} && ! -f $confd/poststack-ci.conf ]]; then
		# Throwaway CI machine: durability is worthless, speed and many parallel test
		# connections are not.
		mkdir -p "$confd"
		cat >"$confd/poststack-ci.conf" <<-'EOF'
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			max_connections = 300
		EOF
		pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop >/dev/null 2>&1 || true
	fi
	if ! pg_ready; then
		log "starting postgres $PG_VERSION/$PG_CLUSTER"
		pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start || {
			tail -n 20 "/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log" >&2 || true
			die "postgres did not start"
		}
	fi
	wait_for 30 "postgres" pg_ready || die "postgres is not accepting connections on 127.0.0.1:$PG_PORT"
	log "setting the password of role postgres"
	runuser -u postgres -- psql -X -q -p "$PG_PORT" -d postgres \
		-c "ALTER ROLE postgres WITH PASSWORD '${PG_PASSWORD//\'/\'\'}'" ||
		die "could not set the postgres password"
	pg_password_ok || die "password login as postgres on 127.0.0.1:$PG_PORT fails (check pg_hba.conf)"
	log "postgres ready: $TEST_DATABASE_URL"
}

socket_ping() { curl -fsS --max-time 3 --unix-socket "$1" http://d/_ping >/dev/null 2>&1; }

step_podman_socket() {
	if socket_ping "$PODMAN_SOCK"; then
		return 0
	fi
	need_root
	log "starting podman API service on $PODMAN_SOCK"
	mkdir -p "$(dirname "$PODMAN_SOCK")"
	rm -f "$PODMAN_SOCK"
	# It outlives this shell: nothing of the caller's run (its TMPDIR, its directory) may be
	# something it depends on later.
	(cd / && exec setsid nohup env -u TMPDIR podman system service --time=0 "unix://$PODMAN_SOCK") \
		>/var/log/podman-service.log 2>&1 </dev/null &
	wait_for 30 "podman API socket" socket_ping "$PODMAN_SOCK" || {
		tail -n 20 /var/log/podman-service.log >&2 || true
		die "podman API socket $PODMAN_SOCK does not answer (log: /var/log/podman-service.log)"
	}
}

step_dockerd() {
	if socket_ping "$DOCKER_SOCK"; then
		return 0
	fi
	need_root
	command -v dockerd >/dev/null || die "dockerd not installed (run: scripts/setup.sh packages)"
	log "starting dockerd (log: /var/log/dockerd.log)"
	setsid nohup dockerd --host "unix://$DOCKER_SOCK" >>/var/log/dockerd.log 2>&1 </dev/null &
	wait_for 60 "dockerd" socket_ping "$DOCKER_SOCK" || {
		tail -n 30 /var/log/dockerd.log >&2 || true
		die "dockerd did not come up on $DOCKER_SOCK (log: /var/log/dockerd.log)"
	}
}

debian_mirror() {
	if [[ -n ${POSTSTACK_DEBIAN_MIRROR:-} ]]; then
		echo "$POSTSTACK_DEBIAN_MIRROR"
		return
	fi
	local m
	# deb822 sources: the URIs of the stanza whose Suites include plain "bookworm".
	m=$(awk '
		/^[[:space:]]*$/ { if (suite && uri) { print uri; exit } uri = ""; suite = 0; next }
		/^URIs:/ { uri = $2 }
		/^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm") suite = 1 }
		END { if (suite && uri) print uri }' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1)
	if [[ -z $m ]]; then
		m=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' \
			/etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n1)
	fi
	echo "${m:-http://deb.debian.org/debian}"
}

ROOTFS_TAR=$CACHE_DIR/debian-bookworm-minbase.tar

build_rootfs() {
	[[ -s $ROOTFS_TAR ]] && return 0
	need_root
	apt_install debootstrap
	local mirror dir
	mirror=$(debian_mirror)
	dir=$(mktemp -d /var/tmp/poststack-rootfs.XXXXXX)
	log "debootstrap bookworm (minbase) from $mirror (~30 s, cached in $ROOTFS_TAR)"
	if ! debootstrap --variant=minbase bookworm "$dir" "$mirror" >/var/log/poststack-debootstrap.log 2>&1; then
		tail -n 20 /var/log/poststack-debootstrap.log >&2 || true
		rm -rf "$dir"
		die "debootstrap failed (log: /var/log/poststack-debootstrap.log)"
	fi
	# Trim what an image does not need: apt lists and caches are refreshed by any image build.
	rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/*
	mkdir -p "$CACHE_DIR"
	tar --numeric-owner -C "$dir" -cf "$ROOTFS_TAR.tmp" .
	mv "$ROOTFS_TAR.tmp" "$ROOTFS_TAR"
	rm -rf "$dir"
}

IMPORT_CHANGES=(--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
	--change 'CMD ["bash"]')

step_image_podman() {
	if podman image exists "$BASE_IMAGE" 2>/dev/null; then
		return 0
	fi
	build_rootfs
	log "importing $BASE_IMAGE into podman"
	podman import --quiet "${IMPORT_CHANGES[@]}" "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null ||
		die "podman import of $BASE_IMAGE failed"
	podman run --rm "$BASE_IMAGE" true || die "podman cannot run $BASE_IMAGE (see errors above)"
	log "podman runs $BASE_IMAGE"
}

step_image_docker() {
	if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
		return 0
	fi
	build_rootfs
	log "importing $BASE_IMAGE into docker"
	docker import "${IMPORT_CHANGES[@]}" "$ROOTFS_TAR" "$BASE_IMAGE" >/dev/null ||
		die "docker import of $BASE_IMAGE failed"
	docker run --rm "$BASE_IMAGE" true || die "docker cannot run $BASE_IMAGE (see errors above)"
	log "docker runs $BASE_IMAGE"
}

# The Go stage of the repository's Dockerfile where no registry is reachable: the base image with
# the host's Go toolchain in /usr/local/go (where the official golang image has it) and the host's
# CA bundle, so that the module proxy is trusted as the host trusts it (these machines reach it
# through a TLS-inspecting egress proxy): localhost/poststack-go:<go version> (GO_IMAGE).
go_image_name() {
	local v
	v=$(go env GOVERSION) || return 1
	echo "localhost/poststack-go:${v#go}"
}

# go_image_build_cache compiles, once per Go version, the standard library and the modules that
# the binaries import as the Dockerfile's Go stage does (CGO_ENABLED=0, -trimpath) into a build
# cache that the Go image carries: the image build then compiles only poststack's own packages
# (~20 s instead of ~2.5 min on 2 cores). A stale cache only makes that build slower.
go_image_build_cache() {
	local cache=$CACHE_DIR/go-build-$(go env GOVERSION) repo pkgs
	if [[ ! -d $cache ]]; then
		repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
		pkgs=$(cd "$repo" && go list -deps -f '{{if or .Standard (and .Module (not .Module.Main))}}{{.ImportPath}}{{end}}' ./cmd/...) ||
			die "go list of the binaries' dependencies failed"
		log "compiling the binaries' dependencies for the Go image's build cache (about a minute)"
		mkdir -p "$cache.tmp"
		# shellcheck disable=SC2086 # one package a word
		(cd "$repo" && CGO_ENABLED=0 GOCACHE=$cache.tmp GOFLAGS= go build -trimpath $pkgs) ||
			die "compiling the binaries' dependencies failed"
		mv "$cache.tmp" "$cache"
	fi
	echo "$cache"
}

# step_go_image ENGINE makes the Go build image in podman or docker (from the base image there).
step_go_image() {
	local engine=$1 image dir cache out pull=--pull=never
	if ! command -v go >/dev/null; then
		log "no Go on PATH: not making the Go build image (the Dockerfile's GO_IMAGE)"
		return 0
	fi
	image=$(go_image_name) || die "go env GOVERSION failed"
	"$engine" image inspect "$image" >/dev/null 2>&1 && return 0
	[[ -s /etc/ssl/certs/ca-certificates.crt ]] || die "no /etc/ssl/certs/ca-certificates.crt for $image (install ca-certificates)"
	cache=$(go_image_build_cache)
	dir=$(mktemp -d /var/tmp/poststack-go-image.XXXXXX)
	# Hard links where the sources are on the same file system: no 450 MB copy.
	cp -al "$(go env GOROOT)" "$dir/go" 2>/dev/null || cp -a "$(go env GOROOT)" "$dir/go"
	cp -al "$cache" "$dir/go-build" 2>/dev/null || cp -a "$cache" "$dir/go-build"
	cp /etc/ssl/certs/ca-certificates.crt "$dir/"
	cat >"$dir/Dockerfile" <<-EOF
		FROM $BASE_IMAGE
		COPY go /usr/local/go
		COPY go-build /root/.cache/go-build
		COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
		ENV GOPATH=/go GOCACHE=/root/.cache/go-build PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
		WORKDIR /go
	EOF
	log "making $image in $engine: $BASE_IMAGE with the host's Go ($(go env GOROOT)), a build cache and the CA bundle"
	[[ $engine == docker ]] && pull=--pull=false
	if ! out=$("$engine" build --quiet "$pull" -t "$image" "$dir" 2>&1); then
		rm -rf "$dir"
		printf '%s\n' "$out" >&2
		die "$engine build of $image failed"
	fi
	rm -rf "$dir"
	"$engine" run --rm "$image" go version >/dev/null || die "$engine cannot run go in $image"
	log "$engine has $image"
}

step_env() {
	cat <<-EOF
		export POSTSTACK_TEST_DATABASE_URL='$TEST_DATABASE_URL'
		export TESTCONTAINERS_RYUK_DISABLED=true
		export TESTCONTAINERS_HOST_OVERRIDE=localhost
	EOF
}

# nektos/act, the GitHub Actions runner emulation the action's tests use. Built from the Go module
# proxy (no release download is reachable) into the cache, so reruns find it.
ACT_VERSION=${POSTSTACK_ACT_VERSION:-v0.2.89}
step_act() {
	local bin=$CACHE_DIR/act-$ACT_VERSION/act
	if [[ ! -x $bin ]]; then
		command -v go >/dev/null || die "Go is needed to build nektos/act"
		log "building nektos/act $ACT_VERSION (go install; about a minute)"
		mkdir -p "$(dirname "$bin")"
		GOBIN=$(dirname "$bin") GOFLAGS=-mod=mod go install "github.com/nektos/act@$ACT_VERSION" ||
			die "go install github.com/nektos/act@$ACT_VERSION failed"
	fi
	ln -sf "$bin" /usr/local/bin/act
	act --version >/dev/null || die "act does not run"
	log "act $ACT_VERSION ready"
}

# docker compose v2 is not packaged by Debian 12 (only v1, which lacks ${V:+a}). Its module
# cannot be go-installed (its go.mod has exclude directives), but builds as the main module
# from a copy of its source; the binary is cached and installed as a CLI plugin, which both
# `docker compose` and, through DOCKER_HOST, podman's API socket use.
COMPOSE_VERSION=${POSTSTACK_COMPOSE_VERSION:-v2.40.3}
COMPOSE_PLUGIN=/usr/local/lib/docker/cli-plugins/docker-compose
step_compose() {
	local bin=$CACHE_DIR/compose-$COMPOSE_VERSION/docker-compose
	if [[ ! -x $bin ]]; then
		command -v go >/dev/null || die "Go is needed to build docker compose"
		log "building docker compose $COMPOSE_VERSION from the Go module proxy (a few minutes)"
		local src work
		src=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		[[ -d $src ]] || die "go mod download github.com/docker/compose/v2@$COMPOSE_VERSION failed"
		work=$(mktemp -d)
		cp -r "$src"/. "$work"
		chmod -R u+w "$work"
		mkdir -p "$(dirname "$bin")"
		(cd "$work" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" -o "$bin.tmp" ./cmd) ||
			die "building docker compose $COMPOSE_VERSION failed (see above)"
		mv "$bin.tmp" "$bin"
		rm -rf "$work"
	fi
	mkdir -p "$(dirname "$COMPOSE_PLUGIN")"
	ln -sf "$bin" "$COMPOSE_PLUGIN"
	"$COMPOSE_PLUGIN" version >/dev/null || die "docker compose does not run"
	log "docker compose $COMPOSE_VERSION ready ($COMPOSE_PLUGIN)"
}

# The migration tools `ps-migrate adopt`/`convert` take over from, for their end-to-end tests:
# pressly/goose and golang-migrate's migrate, go-installed from the module proxy with only their
# Postgres drivers (build tags), cached like act, linked into /usr/local/bin.
GOOSE_VERSION=${POSTSTACK_GOOSE_VERSION:-v3.30.0}
GOLANG_MIGRATE_VERSION=${POSTSTACK_GOLANG_MIGRATE_VERSION:-v4.20.1}
GOOSE_TAGS=no_mysql,no_sqlite3,no_mssql,no_azuresql,no_clickhouse,no_libsql,no_vertica,no_ydb
# go_install NAME MODULE@VERSION TAGS installs one program into $CACHE_DIR/NAME-VERSION/.
go_install() {
	local name=$1 pkg=$2 tags=$3 bin
	bin=$CACHE_DIR/$name-${pkg##*@}/$(basename "${pkg%@*}")
	if [[ ! -x $bin ]]; then
		command -v go >/dev/null || die "Go is needed to build $name"
		log "building $pkg (go install -tags $tags)"
		mkdir -p "$(dirname "$bin")"
		GOBIN=$(dirname "$bin") CGO_ENABLED=0 GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" -tags "$tags" "$pkg" ||
			die "go install $pkg failed"
	fi
	ln -sf "$bin" "/usr/local/bin/$(basename "$bin")"
}
step_peers() {
	go_install goose "github.com/pressly/goose/v3/cmd/goose@$GOOSE_VERSION" "$GOOSE_TAGS"
	goose --version >/dev/null || die "goose does not run"
	go_install golang-migrate "github.com/golang-migrate/migrate/v4/cmd/migrate@$GOLANG_MIGRATE_VERSION" postgres
	migrate -version >/dev/null 2>&1 || die "migrate does not run"
	log "goose $GOOSE_VERSION and migrate $GOLANG_MIGRATE_VERSION ready"
}

run_step() {
	local start=$SECONDS
	case $1 in
	all)
		step_packages
		step_containers_conf
		step_stale_forwards
		step_postgres
		step_podman_socket
		step_dockerd
		step_image_podman
		step_image_docker
		step_go_image podman
		step_go_image docker
		step_act
		step_compose
		step_peers
		;;
	act) step_act ;;
	peers) step_peers ;;
	compose) step_compose ;;
	podman)
		step_podman_packages
		step_containers_conf
		step_stale_forwards
		step_image_podman
		;;
	packages) step_packages ;;
	postgres) step_postgres ;;
	socket)
		step_podman_packages
		step_containers_conf
		step_podman_socket
		;;
	docker)
		step_packages
		step_dockerd
		step_image_docker
		;;
	image)
		step_podman_packages
		step_containers_conf
		step_image_podman
		step_go_image podman
		if socket_ping "$DOCKER_SOCK"; then
			step_image_docker
			step_go_image docker
		fi
		;;
	env)
		step_env
		return 0
		;;
	-h | --help | help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		return 0
		;;
	*)
		printf "==> setup: unknown step %s (try: %s --help)\n" "$1" "$0" >&2
		exit 2
		;;
	esac
	log "'$1' done in $((SECONDS - start)) s"
}

main() {
	(($#)) || set -- all
	local s
	for s in "$@"; do
		run_step "$s"
	done
}

main "$@"
