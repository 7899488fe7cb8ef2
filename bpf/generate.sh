#!/bin/sh
# Regenerate the eBPF objects and their Go bindings (bpf2go) under bpf/.
#
#   bpf/generate.sh          install clang-14/llvm-14 if missing, regenerate
#   bpf/generate.sh --check  regenerate and fail if any committed
#                            *_bpfel.go / *_bpfel.o changed (CI: the
#                            committed objects must match the C sources)
#
# The generated files are committed so that `go build` needs no clang.
set -eu

cd "$(dirname "$0")/.."

check=false
case "${1:-}" in
--check) check=true ;;
"") ;;
*) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! command -v clang-14 >/dev/null 2>&1 || ! command -v llvm-strip-14 >/dev/null 2>&1; then
	echo "generate.sh: installing clang-14 and llvm-14" >&2
	if [ "$(id -u)" -ne 0 ]; then
		echo "generate.sh: clang-14/llvm-strip-14 missing; run as root or: apt-get install -y clang-14 llvm-14" >&2
		exit 1
	fi
	apt-get install -y clang-14 llvm-14 >&2 || {
		apt-get update >&2 && apt-get install -y clang-14 llvm-14 >&2
	}
fi
if [ ! -e /usr/include/bpf/bpf_helpers.h ]; then
	echo "generate.sh: libbpf headers missing: apt-get install -y libbpf-dev" >&2
	exit 1
fi

generated() {
	find bpf -name '*_bpfel.go' -o -name '*_bpfel.o' | LC_ALL=C sort
}

before=$(mktemp)
after=$(mktemp)
trap 'rm -f "$before" "$after"' EXIT

generated | xargs -r sha256sum >"$before"
go generate ./bpf/...
generated | xargs -r sha256sum >"$after"

if $check; then
	if ! diff -u "$before" "$after"; then
		echo "generate.sh: generated eBPF files were out of date with their C sources;" >&2
		echo "generate.sh: they are regenerated now, commit them." >&2
		exit 1
	fi
	echo "generate.sh: generated eBPF files are up to date" >&2
fi
