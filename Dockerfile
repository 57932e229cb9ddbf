# The four poststack binaries, with psql, pg_dump and pg_restore (ps-migrate backup and
# dump-schema) and CA certificates (sslmode=verify-full), on a small Debian base, as a non-root
# user. Two stages: Go builds static binaries from the repository (the build context, trimmed by
# .dockerignore); the runtime stage gets only those binaries.
#
#   docker build -t poststack .
#   docker run --rm poststack ps-migrate --help
#   docker run --rm --network host -v "$PWD/migrations:/work/migrations:ro" \
#     -e POSTSTACK_DATABASE_URL=postgres://… poststack ps-migrate up
#
# Where no registry is reachable, point both stages at images made on the machine (scripts/setup.sh
# makes them: `scripts/setup.sh image`): the Go stage needs a Go as new as go.mod's `go` line in
# /usr/local/go and network access to the Go module proxy (GOPROXY), the runtime stage a Debian
# 12 whose apt sources answer:
#   podman build --build-arg GO_IMAGE=localhost/poststack-go:1.26.8 \
#     --build-arg BASE_IMAGE=localhost/debian:bookworm -t poststack .
ARG GO_IMAGE=golang:1.26-bookworm
ARG BASE_IMAGE=debian:bookworm-slim

FROM ${GO_IMAGE} AS build
# Stamped into --version; without it the binaries report "dev" (the context has no .git).
ARG VERSION=
# Names the build stage's layers, which the engines keep as untagged images: image prune
# --filter label=io.poststack.stage=build removes them; label=io.poststack.build=VERSION finds
# those of one build.
LABEL io.poststack.stage=build io.poststack.build=${VERSION}
ARG GOPROXY=https://proxy.golang.org,direct
ENV CGO_ENABLED=0 \
    GOTOOLCHAIN=local \
    GOPROXY=${GOPROXY}
WORKDIR /src
# go build fetches only the modules the binaries import (about 20, a few MB), not the tests'.
COPY go.mod go.sum ./
COPY cmd/ cmd/
COPY internal/ internal/
COPY pkg/ pkg/
RUN set -eux; \
    go build -trimpath \
      -ldflags "-s -w ${VERSION:+-X github.com/poststack/poststack/internal/cli.stampedVersion=$VERSION}" \
      -o /out/ ./cmd/ps-env ./cmd/ps-migrate ./cmd/ps-subst ./cmd/ps-build; \
    /out/ps-migrate --version

FROM ${BASE_IMAGE}
# psql, pg_dump and pg_restore from Debian 12's postgresql-client-15 (15 is the major of the servers
# poststack starts; pg_dump refuses servers newer than itself), with the libraries they link and
# CA certificates. The binaries are taken out of the package rather than installing it: it
# depends on postgresql-client-common, whose pg_wrapper brings ~50 MB of Perl for what PATH does
# here. ldd checks that every library they need is there.
ARG PG_MAJOR=15
RUN set -eux; \
    export DEBIAN_FRONTEND=noninteractive; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates libpq5 libreadline8 zlib1g; \
    cd /tmp; \
    apt-get download "postgresql-client-${PG_MAJOR}"; \
    dpkg-deb --fsys-tarfile postgresql-client-*.deb | tar -x -C / \
      "./usr/lib/postgresql/${PG_MAJOR}/bin/psql" \
      "./usr/lib/postgresql/${PG_MAJOR}/bin/pg_dump" \
      "./usr/lib/postgresql/${PG_MAJOR}/bin/pg_restore"; \
    rm postgresql-client-*.deb; \
    if ldd /usr/lib/postgresql/${PG_MAJOR}/bin/* | grep 'not found'; then exit 1; fi; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log; \
    useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin poststack; \
    mkdir /work; \
    chown poststack:poststack /work
ENV PATH=/usr/local/bin:/usr/lib/postgresql/${PG_MAJOR}/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin

COPY --from=build /out/ /usr/local/bin/

LABEL org.opencontainers.image.title="poststack" \
      org.opencontainers.image.description="ps-env, ps-migrate, ps-subst, ps-build with psql, pg_dump and pg_restore" \
      org.opencontainers.image.source="https://github.com/poststack/poststack"

USER 10001:10001
# ps-migrate's default --migrations-path is ./migrations: mount the project here.
WORKDIR /work
CMD ["ps-env", "--help"]
