#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The `make vmtest` entry point: build (or reuse) the patched guest kernel,
# build cryptfs and the test binaries statically, boot the guest once and
# run every check in it (vmtest/guest.sh: the hook smoke test, the fstest
# POSIX suite in the ebpf tier, inode-number reuse, the metadata workload
# table, the coherence stress). Prints the metadata table and the stage
# summary at the end.
#
# Usage: vmtest/vmtest.sh [--quick] [--stages "hooktest fstest reuse meta coherence"]
#                         [run.sh options, e.g. --timeout 5400]
#
# --quick skips the fstest suite and runs the metadata workload on a
# quarter of the tree (10 directories): 1-3 minutes with a warm kernel
# cache instead of 5-26 (see vmtest/README.md, Timings).
#
# Exit status: 0 when every stage passed; otherwise the guest's status
# (1: a stage failed) or run.sh's (101: the kernel log shows a problem,
# 124: timeout, 125: the guest died or the harness failed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export PATH=$PATH:/usr/local/go/bin

stages=
meta_flags=
while [ $# -gt 0 ]; do
	case $1 in
	--stages) stages=$2; shift 2 ;;
	--quick) stages="hooktest reuse meta coherence"; meta_flags="-dirs 10"; shift ;;
	*) break ;;
	esac
done

t0=$(date +%s.%N)
since() { printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)"; }

kernel=$("$here/build-kernel.sh")
echo "vmtest: kernel ready after $(since)s" >&2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
(
	cd "$repo"
	export CGO_ENABLED=0
	go build -o "$work/bin/cryptfs" ./cmd/cryptfs
	go build -o "$work/bin/hooktest" ./vmtest/hooktest
	go build -o "$work/bin/workload" ./vmtest/workload
	go test -c -o "$work/bin/e2e.test" ./fstest/e2e
)
echo "vmtest: binaries built after $(since)s" >&2

args=(--kernel "$kernel" --scratch 8G --mem 2G --timeout 5400 --keep "$work/keep"
	--file "$here/guest.sh:/vmtest/guest.sh")
for b in cryptfs hooktest workload e2e.test; do
	args+=(--bin "$work/bin/$b")
done
[ -n "$stages" ] && args+=(--env "VMTEST_STAGES=$stages")
[ -n "$meta_flags" ] && args+=(--env "VMTEST_META_FLAGS=$meta_flags")

status=0
"$here/run.sh" "${args[@]}" "$@" -- sh /vmtest/guest.sh || status=$?

log=$work/keep/log
if [ -f "$log" ]; then
	table=$(tr -d '\r' <"$log" | sed -n '/^=== metadata table$/,/^=== end$/{/^===/d;p}')
	if [ -n "$table" ]; then
		echo
		echo "Metadata workload in the vmtest guest (Linux 6.1 with the cryptfs hook, qemu TCG):"
		echo "$table"
	fi
	echo
	tr -d '\r' <"$log" | sed -n '/^=== summary$/,$p' | grep '^===' || true
fi
echo "vmtest: exit status $status after $(since)s" >&2
exit "$status"
