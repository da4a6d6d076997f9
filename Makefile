# scimbridge — `make test` and `make demo` work on a fresh Debian 12 machine: they install
# what they need (slapd, ldap-utils, node and npm; the pinned Go tools) when it is missing.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin/scimbridge
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SHELL   := /bin/bash

# Tools, installed with `go install` at these versions through the Go module proxy into
# bin/tools (one binary per version, so a bump installs the new one; the Go build cache
# and golangci-lint's own cache make later runs fast).
GOLANGCI_LINT_VERSION := v2.15.0
GREMLINS_VERSION      := v0.6.0
TOOLS                 := $(CURDIR)/bin/tools
GOLANGCI_LINT         := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)
GREMLINS              := $(TOOLS)/gremlins-$(GREMLINS_VERSION)

# Mutation testing: the packages, and a bound per package.
MUTATION_PKGS    ?= bridge/outbound bridge/capture mapping targets/scim
MUTATION_TIMEOUT ?= 45m

.PHONY: all build test test-short vet deps demo bench lint mutation verify clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/scimbridge

# deps installs with apt-get what the tests need and is missing: Debian's OpenLDAP server and
# clients (the preseed keeps the package from creating a system instance: the tests run
# private ones), and node with npm for the SCIMMY test target; then the target's npm packages.
deps:
	@pkgs=""; \
	if [ ! -x /usr/sbin/slapd ] || ! command -v ldapmodify >/dev/null 2>&1; then pkgs="$$pkgs slapd ldap-utils"; fi; \
	if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then pkgs="$$pkgs nodejs npm"; fi; \
	if [ -n "$$pkgs" ]; then \
		echo "make: installing$$pkgs (apt-get)"; \
		echo "slapd slapd/no_configuration boolean true" | $(SUDO) debconf-set-selections && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$pkgs >/dev/null || \
		{ echo "make: apt-get could not install$$pkgs" >&2; exit 1; }; \
	fi
	@if [ ! -d integration/testdata/scimmy/node_modules ]; then \
		echo "make: installing the SCIMMY test target (npm ci in integration/testdata/scimmy)"; \
		(cd integration/testdata/scimmy && { npm ci --no-audit --no-fund --loglevel=error || npm ci --no-audit --no-fund --loglevel=error; }) || \
			echo "make: WARNING: npm ci failed; the tests against the SCIMMY target will be skipped (listed at the end of make test)"; \
	fi

vet:
	$(GO) vet ./... ./.ci/testsum

$(GOLANGCI_LINT):
	@echo "make: installing golangci-lint $(GOLANGCI_LINT_VERSION) (go install)"
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS)/.install $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS)/.install/golangci-lint $@

$(GREMLINS):
	@echo "make: installing gremlins $(GREMLINS_VERSION) (go install)"
	@mkdir -p $(TOOLS)
	GOBIN=$(TOOLS)/.install $(GO) install github.com/go-gremlins/gremlins/cmd/gremlins@$(GREMLINS_VERSION)
	mv $(TOOLS)/.install/gremlins $@

# lint runs the linters of .golangci.yml (STYLE.md §13) with the pinned golangci-lint.
lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./... ./.ci/testsum

# test runs vet, lint and every test, the LDAP integration tests included (each test package
# starts its own slapd on 127.0.0.1). Output: one line per package, the output of failed
# tests, and at the end every skipped test with its reason.
test: deps vet lint
	set -o pipefail; $(GO) test -race -timeout 15m -json ./... 2>&1 | $(GO) run ./.ci/testsum

# test-short skips the long bursts; for a quick loop while developing.
test-short: deps
	$(GO) test -short ./...

demo: deps build
	./$(BIN) demo

# bench runs the benchmarks that print throughput and latency ratios (needs more time and
# memory than the tests; not part of `make test`).
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

# mutation runs gremlins on each of MUTATION_PKGS (its own tests against each covered
# mutant) and prints the scores; not part of `make test` (it takes tens of minutes).
# Efficacy is the share of covered mutants the tests kill. -count=1: the timeout of a mutant
# is a multiple of how long the package's tests took, which a cached result would hide.
mutation: deps $(GREMLINS)
	@for p in $(MUTATION_PKGS); do \
		echo "== $$p"; \
		(cd $$p && GOFLAGS=-count=1 timeout $(MUTATION_TIMEOUT) $(GREMLINS) unleash --workers 2 --timeout-coefficient 10 -S lt) || \
			echo "make: gremlins failed or timed out on $$p"; \
	done

verify:
	$(GO) mod tidy && git diff --exit-code go.mod go.sum

clean:
	rm -rf bin
