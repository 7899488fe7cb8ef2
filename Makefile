# cryptfs: the commands a developer and CI run. See README.md.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
BIN := bin/cryptfs
FUZZTIME ?= 60s
# Every fuzz target, as package:FuzzName.
FUZZ_TARGETS = $(shell $(GO) test -list 'Fuzz.*' ./... 2>/dev/null | awk '/^ok/{pkg=$$2} /^Fuzz/{print pkg":"$$1}' )

.PHONY: all build test test-short deps lint vet staticcheck fuzz generate check-generate demo vmtest clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/cryptfs

# System packages the tests need (FUSE userspace tools), installed when
# missing on Debian.
deps:
	@command -v fusermount3 >/dev/null || { echo "installing fuse3"; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q fuse3 >/dev/null; }

# Everything: unit, fuzz seed corpora, CLI scripts, BPF programs against the
# real verifier, the POSIX suite on a plain directory and on real cryptfs
# mounts, integrity and tamper tests. Root-only and BPF-only tests skip
# with a reason when the capability is missing.
test: deps build vet
	CRYPTFS_BIN=$(CURDIR)/$(BIN) $(GO) test -race -count=1 -timeout 30m ./...

# The same without the slow second suite runs.
test-short: deps build
	CRYPTFS_BIN=$(CURDIR)/$(BIN) $(GO) test -short -count=1 ./...

vet:
	$(GO) vet ./...

staticcheck:
	$(GO) tool staticcheck ./...

lint: vet staticcheck
	@out=$$(gofmt -l . | grep -v '^bin/'); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Run every fuzz target for FUZZTIME each (default 60s).
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
	  pkg=$${t%%:*}; name=$${t##*:}; \
	  echo "== $$name ($$pkg) for $(FUZZTIME)"; \
	  $(GO) test -run '^$$' -fuzz "^$$name$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $$pkg; \
	done

# Regenerate the eBPF objects (installs clang-14 when missing) and check
# that the committed ones are current.
generate:
	bpf/generate.sh

check-generate:
	bpf/generate.sh --check

# init, mount, use, show the cipher tree and fast-path statistics, unmount.
demo: deps build
	scripts/demo.sh $(BIN)

# The patched 6.1 kernel in a qemu guest (builds it once, cached under
# /var/cache/cryptfs-vmtest), running the fast-path checks inside it.
vmtest:
	vmtest/smoke.sh

clean:
	rm -rf bin
