# secretd: Swarm-grade secrets for standalone Docker containers.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X github.com/secretd/secretd/cmd/secretd/cli.Version=$(VERSION)
BIN      := bin/secretd
# The siblings secretd execs for the commands that link the daemon or
# compose-go (cmd/secretd/sibling), built beside it.
DAEMON_BIN  = $(dir $(BIN))secretd-daemon
COMPOSE_BIN = $(dir $(BIN))secretd-compose
FUZZTIME ?= 10s

.PHONY: all build run deps test unit e2e fuzz vet bench clean docs

# `make` builds the binaries and the man pages; `sudo make install` then
# installs them without needing Go on root's PATH.
all: build docs

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/secretd
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DAEMON_BIN) ./cmd/secretd-daemon
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(COMPOSE_BIN) ./cmd/secretd-compose

# Starts the daemon in the foreground with the embedded defaults: data in
# /var/lib/secretd, API on unix:///run/secretd/secretd.sock, volume driver
# "secretd" on /run/docker/plugins/secretd.sock. Needs root.
run: build
	$(BIN) daemon

# Everything the build and the tests need that Go modules do not bring: a
# static busybox for the test image (no registry is reachable); pass, gnupg
# and age for the shell secret driver's tests; RootlessKit with
# newuidmap/newgidmap for the rootless engine of the rootless e2e test;
# bash-completion, without which the installed bash completion cannot run;
# xz to unpack Docker Engine 29.7.2 for the e2e engine matrix (its dockerd
# comes from ../shared/engines, beside the clone); Debian's Podman 4.3 for
# the Podman e2e, without its recommends (it runs on the runc docker.io
# brings, with no network).
deps:
	@command -v busybox >/dev/null 2>&1 && command -v file >/dev/null 2>&1 && \
		file -L "$$(command -v busybox)" | grep -q static && command -v docker-compose >/dev/null 2>&1 && \
		command -v pass >/dev/null 2>&1 && command -v gpg >/dev/null 2>&1 && command -v age >/dev/null 2>&1 && \
		command -v rootlesskit >/dev/null 2>&1 && command -v newuidmap >/dev/null 2>&1 && command -v xz >/dev/null 2>&1 && \
		command -v podman >/dev/null 2>&1 && test -f /usr/share/bash-completion/bash_completion || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static file docker-compose pass gnupg age rootlesskit uidmap bash-completion xz-utils && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman; }
	$(GO) mod download
	# The Go clients of docker CLI 29 that api/server's tests build, in a
	# module of their own (two versions of one module).
	cd api/server/testdata/mobyclient && $(GO) mod download && $(GO) mod download -modfile=client-v0.2.2.mod

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }

# Unit tests (race detector on) and the end-to-end suite against the Docker
# Engine, then every fuzz target briefly.
test: vet
	$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e:
	$(GO) test -count=1 -timeout 20m -v ./e2e/

# .ci/fuzz runs a target once more when Go 1.26's fuzz coordinator trips
# on its own deadline (see the script).
fuzz:
	GO=$(GO) .ci/fuzz FuzzParse ./declaration/ $(FUZZTIME)
	GO=$(GO) .ci/fuzz FuzzValidate ./internal/store/ $(FUZZTIME)
	GO=$(GO) .ci/fuzz FuzzDecode ./api/server/ $(FUZZTIME)
	GO=$(GO) .ci/fuzz FuzzHandler ./api/server/ $(FUZZTIME)
	GO=$(GO) .ci/fuzz FuzzRecord ./internal/store/ $(FUZZTIME)

# Every benchmark; BENCH=REGEXP runs those it matches (the summary keeps
# the other goals' lines from their last run).
BENCH ?= .
bench:
	$(GO) test -count=1 -timeout 60m -run=XXX -bench='$(BENCH)' -benchtime=1x ./bench/

# Man pages for every command, rendered from the cobra tree the binary runs
# (MANSRC/*.1, docs/man by default; not committed). `make install` installs
# them.
MANSRC   ?= docs/man
docs:
	$(GO) run ./cmd/secretd-docs --dir $(MANSRC) --version $(VERSION)

clean:
	rm -rf bin $(MANSRC)

include deploy/deploy.mk
