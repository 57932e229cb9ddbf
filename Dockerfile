# The four poststack binaries on a small Debian base.
#
# The binaries are built outside the image, statically, so that any base works and the image
# build needs no Go toolchain:
#   CGO_ENABLED=0 make build
#   docker build -t poststack .
# Where no registry is reachable, build on the local base image made by scripts/setup.sh:
#   podman build --build-arg BASE_IMAGE=localhost/debian:bookworm -t poststack .
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# No package installs: the build stays fast and offline. For sslmode=verify-full against a
# managed Postgres, mount its CA and point sslrootcert= (or PGSSLROOTCERT) at it.
RUN useradd --uid 10001 --user-group --create-home --shell /usr/sbin/nologin poststack

COPY bin/ /usr/local/bin/

LABEL org.opencontainers.image.title="poststack" \
      org.opencontainers.image.description="ps-env, ps-migrate, ps-subst, ps-build" \
      org.opencontainers.image.source="https://github.com/poststack/poststack"

USER 10001:10001
WORKDIR /home/poststack
CMD ["ps-env", "--help"]
