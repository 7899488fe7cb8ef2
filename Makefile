# cryptfs: the commands a developer and CI run. See README.md.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin/cryptfs
FUZZTIME ?= 60s
# Every fuzz target, as package:FuzzName.

.PHONY: all build test test-uring test-short stress deps lint vet staticcheck fuzz generate check-generate demo vmtest vmtest-debian bench-vm kmod dkms-install clean

all: build

# cryptfs --version: the git description, linked in (GOFLAGS may say
# -buildvcs=false, which leaves the binary without VCS information).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)

build:
	$(GO) build -ldflags "-X main.buildVersion=$(VERSION)" -o $(BIN) ./cmd/cryptfs

# System packages the tests need, installed when missing on Debian
# (scripts/deps.sh says which and why).
deps:
	@scripts/deps.sh

# Everything: unit, fuzz seed corpora, CLI scripts, BPF programs against the
# real verifier, the POSIX suite on a plain directory and on real cryptfs
# mounts, integrity and tamper tests. Root-only and BPF-only tests skip
# with a reason when the capability is missing.
# The model checker, concurrency and crash tests use a fixed seed here so
# that CI is repeatable (FSTEST_MODEL_SEED=N picks another; make stress
# draws them from the clock).
FSTEST_MODEL_SEED ?= 20261127
test: deps build vet
	FSTEST_MODEL_SEED=$(FSTEST_MODEL_SEED) CRYPTFS_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 45m ./...
	CRYPTFS_BIN=$(CURDIR)/$(BIN) $(GO) -C bench test -race -count=1 -timeout 45m ./...

# The tests that mount, again with every mount served over FUSE over
# io_uring (--transport=uring through CRYPTFS_TRANSPORT; Linux 6.14+): the
# fuse module's enable_uring is set for the run and put back after. make
# test runs the POSIX suite over io_uring once (TestTransportURingSuite);
# this runs all of them. Says SKIP where the kernel has no FUSE over
# io_uring. URING_PKGS picks the packages.
URING_PKGS ?= ./fstest/... ./cmd/cryptfs/...
test-uring: deps build
	@p=/sys/module/fuse/parameters/enable_uring; \
	if [ ! -e $$p ]; then echo "SKIP make test-uring: this kernel has no FUSE over io_uring ($$p is missing)"; exit 0; fi; \
	old=$$(cat $$p); trap 'echo $$old > '$$p EXIT; echo Y > $$p || exit 1; \
	echo "CRYPTFS_TRANSPORT=uring, $$p=Y (was $$old)"; \
	FSTEST_MODEL_SEED=$(FSTEST_MODEL_SEED) CRYPTFS_TRANSPORT=uring CRYPTFS_BIN=$(CURDIR)/$(BIN) \
	  $(GO) test -count=1 -timeout 30m $(URING_PKGS)

# The same without the slow second suite runs.
test-short: deps build
	CRYPTFS_BIN=$(CURDIR)/$(BIN) $(GO) test -short -count=1 ./...
	CRYPTFS_BIN=$(CURDIR)/$(BIN) $(GO) -C bench test -short -count=1 ./...

# bench/ is a module of its own (its plotting and profile dependencies stay
# out of the product's go.mod): vet and staticcheck it too, with the
# staticcheck of this module's go.mod.
vet:
	$(GO) vet ./...
	$(GO) -C bench vet ./...

staticcheck:
	$(GO) tool staticcheck ./...
	sc=$$($(GO) tool -n staticcheck) && cd bench && $$sc ./...

lint: vet staticcheck
	@out=$$(gofmt -l . | grep -v '^bin/'); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Run every fuzz target for FUZZTIME each (default 60s); see the script for
# how a Go coordinator race at the end of -fuzztime is told from a failure.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) scripts/fuzz.sh

# Regenerate the eBPF objects (installs clang-14 when missing) and check
# that the committed ones are current.
generate:
	bpf/generate.sh

check-generate:
	bpf/generate.sh --check

# The reliability tests at full size (200k model operations per tier, 30
# crashes, large directories), with seeds from the clock: about 20 minutes on 2 cores.
stress: deps build
	FSTEST_STRESS=1 CRYPTFS_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 3h -v -run 'Reliability|TestModel' ./fstest/ ./fstest/e2e/

# init, mount, use, show the cipher tree and fast-path statistics, unmount.
demo: deps build
	scripts/demo.sh $(BIN)

# The patched 6.1 kernel in a qemu guest (builds it once, cached under
# /var/cache/cryptfs-vmtest): the hook smoke test, the POSIX suite in the
# ebpf tier, the metadata table (>= 90% fewer upcalls than off) and the
# coherence stress. See vmtest/README.md.
vmtest:
	vmtest/vmtest.sh

# The same on Debian 12's own, unmodified kernel package (pinned in
# vmtest/debian.lock, downloaded with apt and checksum-verified) with our
# fuse.ko built for it: no kernel compile. Adds the module checks and the
# suite in the off and kernel-cache tiers on the patched module. This is
# the mode CI runs. See vmtest/README.md.
vmtest-debian:
	vmtest/vmtest.sh --debian

# make bench's workloads in small for off, kernel-cache and ebpf in the same
# stock-kernel guest: requests per opcode and same-guest time ratios, written
# to bench/results/bench-guest.md (the ebpf column make bench cannot measure
# on a kernel without the cryptfs module). Not run by CI. See vmtest/README.md.
bench-vm:
	vmtest/vmtest.sh --debian --bench

# The cryptfs fuse.ko (with cuse.ko and virtiofs.ko) for an installed
# Debian 12 kernel: make kmod [KVER=6.1.0-NN-amd64] builds it into
# bpf/kernel/kmod/out/KVER; make dkms-install [KVER=...] installs it with
# DKMS for that and every later kernel. See bpf/kernel/kmod/README.md.
KVER ?= $(shell uname -r)
kmod:
	$(MAKE) -C bpf/kernel/kmod KVER=$(KVER)

dkms-install:
	$(MAKE) -C bpf/kernel/kmod dkms-install KVER=$(KVER)

# make install [PREFIX=/usr/local] [DESTDIR=]: the binary; the mount
# helper links mount.fuse.cryptfs and mount.cryptfs in /sbin (mount(8)
# looks for helpers there only, whatever the PREFIX); manual pages and
# bash/zsh/fish completions generated from the command tree; the systemd
# units (system and user); the PAM module and snippets when built/present.
# Every file, link and created directory goes into $(MANIFEST); make
# uninstall (same PREFIX and DESTDIR) removes exactly those, leaving files
# changed since. See scripts/install.sh and the README.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
MOUNTHELPERDIR ?= /sbin
SYSCONFDIR ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSTEMDUSERUNITDIR ?= $(PREFIX)/lib/systemd/user
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/vendor-completions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
PAMMODDIR ?= $(or $(firstword $(wildcard /usr/lib/*-linux-gnu/security /lib/*-linux-gnu/security)),/lib/security)
PAMDOCDIR ?= $(DATADIR)/cryptfs/pam
MANIFEST ?= $(DATADIR)/cryptfs/install-manifest
MANDATE ?= $(shell git log -1 --format=%cs 2>/dev/null)
INSTALL_BIN ?= $(CURDIR)/$(BIN)
INSTALL_VARS := PREFIX DESTDIR BINDIR MANDIR MOUNTHELPERDIR SYSCONFDIR SYSTEMDUNITDIR SYSTEMDUSERUNITDIR \
	BASHCOMPDIR ZSHCOMPDIR FISHCOMPDIR PAMMODDIR PAMDOCDIR MANIFEST MANDATE
INSTALL_ENV = $(foreach v,$(INSTALL_VARS),$(v)='$($(v))') BIN='$(INSTALL_BIN)'

.PHONY: install uninstall
install: build
	$(INSTALL_ENV) scripts/install.sh install

uninstall:
	$(INSTALL_ENV) scripts/install.sh uninstall

clean:
	rm -rf bin

# make bench, make bench-quick: side-by-side benchmarks (bench/).
include bench/Makefile.inc
