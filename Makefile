# scimbridge — `make test` and `make demo` work on a fresh Debian 12 machine: they install
# what they need (slapd, 389-DS, Samba AD DC, node and npm, promtool, systemd-analyze; the
# pinned Go tools) when it is missing.

GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN     := bin/scimbridge
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SHELL   := /bin/bash

# The Debian package's version: the tag on HEAD (without a leading v), or
# 0.0.0~git<commit date>.<short hash>, which dpkg orders before any release.
DEB_VERSION ?= $(shell git describe --tags --exact-match 2>/dev/null | sed 's/^v//' | grep . || \
	echo "0.0.0~git$$(git log -1 --format=%cd --date=format:%Y%m%d 2>/dev/null || date -u +%Y%m%d).$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)")
DEB_ARCH    ?= $(shell $(GO) env GOARCH)
DEB_DIR     ?= bin
# nfpm builds the package; `go run` at a pinned version keeps it out of go.mod.
NFPM        ?= github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0


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

.PHONY: all build test test-short vet deps demo bench bench-scale fuzz lint mutation verify clean deb

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/scimbridge

# deps installs, with apt-get, what the tests need and is missing: the directory servers the
# tests run privately — OpenLDAP (slapd, ldap-utils), 389 Directory Server (389-ds-base) and a
# Samba AD DC —, node with npm for the SCIMMY test target (then the target's npm packages),
# promtool (Debian's prometheus package) for the alerting rules' tests, and systemd-analyze and
# unshare for the unit's and the package's install tests.
# The preseed keeps slapd from creating a system instance; a policy-rc.d keeps the packages'
# services (smbd, nmbd, …) from starting during the install, and they are disabled afterwards
# under systemd: the tests run their own servers, never the system's.
DIRECTORY_PACKAGES_SLAPD := slapd ldap-utils
DIRECTORY_PACKAGES_389   := 389-ds-base
DIRECTORY_PACKAGES_SAMBA := samba samba-ad-dc samba-ad-provision winbind python3-samba ldb-tools
deps:
	@missing=""; \
	{ [ -x /usr/sbin/slapd ] && command -v ldapmodify >/dev/null 2>&1; } || missing="$$missing $(DIRECTORY_PACKAGES_SLAPD)"; \
	{ [ -x /usr/sbin/dscreate ] && [ -x /usr/sbin/ns-slapd ]; } || missing="$$missing $(DIRECTORY_PACKAGES_389)"; \
	{ [ -x /usr/sbin/samba ] && [ -x /usr/bin/samba-tool ] && [ -f /usr/share/samba/setup/provision.ldif ]; } || missing="$$missing $(DIRECTORY_PACKAGES_SAMBA)"; \
	{ command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; } || missing="$$missing nodejs npm"; \
	command -v promtool >/dev/null 2>&1 || missing="$$missing prometheus"; \
	command -v systemd-analyze >/dev/null 2>&1 || missing="$$missing systemd"; \
	command -v unshare >/dev/null 2>&1 || missing="$$missing util-linux"; \
	if [ -n "$$missing" ]; then \
		echo "make: installing$$missing (apt-get)"; \
		echo "slapd slapd/no_configuration boolean true" | $(SUDO) debconf-set-selections; \
		policy=""; \
		if [ ! -e /usr/sbin/policy-rc.d ]; then \
			printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null && $(SUDO) chmod 755 /usr/sbin/policy-rc.d && policy=1; \
		fi; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		rc=$$?; \
		if [ -n "$$policy" ]; then $(SUDO) rm -f /usr/sbin/policy-rc.d; fi; \
		if [ $$rc -ne 0 ]; then echo "make: apt-get install$$missing failed (exit $$rc)"; exit $$rc; fi; \
		if [ -d /run/systemd/system ]; then \
			$(SUDO) systemctl disable --now smbd nmbd winbind samba-ad-dc prometheus >/dev/null 2>&1 || true; \
		fi; \
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

# test runs vet, lint and every test, the LDAP integration tests included: each test package
# starts the servers it uses once (slapd and 389-DS on 127.0.0.1, a Samba AD DC in a network
# namespace of its own; 389-DS and Samba need root, without it their tests skip and say so).
# Output: one line per package, the output of failed tests, and at the end every skipped test
# with its reason. -count=1: never a cached result. The integration tests build and run the
# scimbridge binary, which go test's cache cannot see: after a change to bridge/outbound it
# reported the integration suite as passed from an earlier run.
test: deps vet lint
	set -o pipefail; $(GO) test -count=1 -race -timeout 20m -json ./... 2>&1 | $(GO) run ./.ci/testsum

# test-short skips the long bursts; for a quick loop while developing.
test-short: deps
	$(GO) test -short ./...

# deb builds $(DEB_DIR)/scimbridge_<version>_<arch>.deb: the binary, the systemd unit, the
# sysusers.d account, the configuration as a conffile, the docs, the rules and the dashboard.
deb: build
	@mkdir -p $(DEB_DIR)
	VERSION="$(DEB_VERSION)" ARCH="$(DEB_ARCH)" $(GO) run $(NFPM) package \
		--config systemd/deb/nfpm.yaml --packager deb --target $(DEB_DIR)/scimbridge_$(DEB_VERSION)_$(DEB_ARCH).deb

demo: deps build
	./$(BIN) demo

# bench runs the benchmarks that print throughput and latency ratios (needs more time and
# memory than the tests; not part of `make test`).
bench: deps
	$(GO) test -run '^$$' -bench . -benchtime 1x -timeout 60m ./...

# bench-scale compares a directory of 1,000,000 users with one of 100,000 (seeded offline
# with slapadd): SCIM lookups and pages through the inbound server, then the outbound initial
# sync of 1,000,000 users (rate, CPU per user, RSS). About 15 minutes on 2 cores, 4 GB of disk, 8 GB of memory.
bench-scale: deps
	SCIMBRIDGE_BENCH_SCALE=1 $(GO) test -run '^$$' -bench 'BenchmarkInboundScale' -benchtime 1x -timeout 60m ./bridge/inbound/
	SCIMBRIDGE_BENCH_USERS=1000000 SCIMBRIDGE_BENCH_INSTANT_ONLY=1 $(GO) test -run '^$$' -bench 'BenchmarkOutbound$$' -benchtime 1x -timeout 90m ./integration/

# fuzz runs every fuzz target for FUZZTIME each (not part of `make test` or CI). Their seed
# corpora are in the packages' testdata/fuzz, which `go test` always runs; what a run finds
# lands there too, as a failing case to fix. Targets: SCIM filters and Entra ID's value-path
# comparisons, PATCH operations, request bodies → LDAP entries (users and groups), DNs built
# from client values.
FUZZTIME ?= 60s
FUZZ_TARGETS := \
	./mapping:FuzzTranslateUserFilter \
	./mapping:FuzzApplyPatch \
	./mapping:FuzzUserToLDAP \
	./mapping:FuzzGroupToLDAP \
	./ldapstore:FuzzRDN \
	./bridge/inbound:FuzzParseFilter

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "make: fuzzing $$name in $$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg; \
	done


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
