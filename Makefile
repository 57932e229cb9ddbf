# poststack — `make test` and `make demo` prepare the machine themselves (scripts/setup.sh,
# which needs root on Debian 12); `make build` only needs Go.
SHELL := bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BINARIES := ps-env ps-migrate ps-subst ps-build
BIN_DIR  ?= bin
# A release tag when there is one; otherwise --version falls back to the build information
# (module version or "dev", plus the VCS revision).
VERSION  ?= $(shell git describe --tags --dirty 2>/dev/null)
LDFLAGS  ?= -s -w $(if $(VERSION),-X github.com/poststack/poststack/internal/cli.stampedVersion=$(VERSION))
FUZZTIME ?= 60s
TEST_TIMEOUT ?= 30m
GOTESTFLAGS ?=
PKGS     ?= ./...

# Tests start their own PostgreSQL from the host binaries (pkg/pgnative); set
# POSTSTACK_TEST_DATABASE_URL to point them at another superuser URL instead.
TEST_ENV := $(if $(POSTSTACK_TEST_DATABASE_URL),POSTSTACK_TEST_DATABASE_URL='$(POSTSTACK_TEST_DATABASE_URL)') \
	TESTCONTAINERS_RYUK_DISABLED=true TESTCONTAINERS_HOST_OVERRIDE=localhost

IMAGE    ?= localhost/poststack:dev
ENGINE   ?= podman

.PHONY: help setup test vet fmt-check unit e2e build image demo bench fuzz clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

setup: ## install and start everything the tests need (root, Debian 12)
	bash scripts/setup.sh all

test: setup fmt-check vet ## setup, gofmt check, go vet, go test ./... against real engines
	$(TEST_ENV) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) $(PKGS)

vet: ## go vet ./...
	$(GO) vet $(PKGS)

fmt-check: ## fail when a file is not gofmt-formatted
	@out=$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go')); \
	if [[ -n "$$out" ]]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

unit: ## go test ./... without setting anything up (engine tests skip when missing)
	$(TEST_ENV) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) $(GOTESTFLAGS) $(PKGS)

e2e: setup ## only the black-box tests in e2e/
	$(TEST_ENV) $(GO) test -count=1 -timeout $(TEST_TIMEOUT) -v ./e2e/

build: ## build bin/ps-* (add CGO_ENABLED=0 for static binaries, as the Dockerfile needs)
	@mkdir -p $(BIN_DIR)
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN_DIR)/ $(addprefix ./cmd/,$(BINARIES))

image: ## build the Dockerfile with the machine's Go and Debian images (IMAGE=localhost/poststack:dev ENGINE=podman)
	bash scripts/setup.sh image
	$(ENGINE) build $(if $(filter docker,$(notdir $(ENGINE))),--pull=false,--pull=never) \
		--build-arg GO_IMAGE=localhost/poststack-go:$$($(GO) env GOVERSION | sed 's/^go//') \
		--build-arg BASE_IMAGE=localhost/debian:bookworm \
		--build-arg GOPROXY="$$($(GO) env GOPROXY)" \
		$(if $(VERSION),--build-arg VERSION=$(VERSION)) -t $(IMAGE) .
	@echo "built $(IMAGE): $(ENGINE) run --rm $(IMAGE) ps-migrate --help"

demo: ## setup podman, build, run examples/demo.sh
	bash scripts/setup.sh podman
	$(MAKE) --no-print-directory build
	bash examples/demo.sh

bench: build ## run bench/*.sh when present
	@shopt -s nullglob; scripts=(bench/*.sh); \
	if (( $${#scripts[@]} == 0 )); then echo "no bench/*.sh scripts"; exit 0; fi; \
	for s in "$${scripts[@]}"; do echo "==> $$s"; bash "$$s"; done

fuzz: ## fuzz the substitution grammar against compose-go (FUZZTIME=60s)
	$(GO) test -run XXX -fuzz FuzzCompatible -fuzztime $(FUZZTIME) ./pkg/subst/

clean: ## remove build and test outputs
	rm -rf $(BIN_DIR) coverage.out coverage.html
