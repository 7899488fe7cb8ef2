#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The `make vmtest` and `make vmtest-debian` entry point: prepare the
# guest kernel, build cryptfs and the test binaries statically, boot the
# guest once and run every check in it (vmtest/guest.sh: the hook smoke
# test, the fstest POSIX suite in the ebpf tier, inode-number reuse, the
# metadata workload table, the coherence stress). Prints the metadata table
# and the stage summary at the end.
#
# Usage: vmtest/vmtest.sh [--debian] [--quick] [--stages "hooktest fstest ..."]
#                         [run.sh options, e.g. --timeout 5400]
#
# --debian boots Debian 12's own, unmodified kernel package (pinned in
# vmtest/debian.lock, fetched and checked by vmtest/debian-kernel.sh) with
# our fuse.ko built for it (bpf/kernel/kmod) instead of the stock one, and
# adds the stages module (the loaded fuse is ours) and fstest-nohook (the
# suite with --fast-path=off and kernel-cache: no program attached). No
# kernel is compiled. Without --debian: the patched kernel that
# vmtest/build-kernel.sh builds (fuse built in).
#
# --quick skips the fstest suites and runs the metadata workload on a
# quarter of the tree (10 directories): 1-3 minutes with a warm kernel
# cache instead of 5-26 (see vmtest/README.md, Timings).
#
# --bench runs the stages module and bench (make bench-vm): make bench's
# workloads in small for the off, kernel-cache and ebpf tiers in the guest,
# and writes their table to bench/results/bench-guest.md (or the file
# $BENCH_GUEST_OUT names). Not part of the default stages (CI): it adds
# 10-30 minutes under TCG.
#
# Exit status: 0 when every stage passed; otherwise the guest's status
# (1: a stage failed) or run.sh's (101: the kernel log shows a problem,
# 124: timeout, 125: the guest died or the harness failed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
export PATH=$PATH:/usr/local/go/bin

stages=
quick=0
meta_flags=
debian=0
bench=0
while [ $# -gt 0 ]; do
	case $1 in
	--stages) stages=$2; shift 2 ;;
	--quick) quick=1; meta_flags="-dirs 10"; shift ;;
	--debian) debian=1; shift ;;
	--bench) bench=1; shift ;;
	*) break ;;
	esac
done
if [ -z "$stages" ] && [ "$bench" = 1 ]; then
	stages="bench"
	[ "$debian" = 1 ] && stages="module bench"
fi
if [ -z "$stages" ]; then
	stages="hooktest fstest reuse meta untar coherence"
	[ "$quick" = 1 ] && stages="hooktest reuse meta untar coherence"
	# On the stock kernel: first that the module is ours, and also that
	# without a program attached it behaves like the stock one.
	if [ "$debian" = 1 ]; then
		stages="module $stages"
		[ "$quick" = 0 ] && stages="$stages fstest-nohook"
	fi
fi

t0=$(date +%s.%N)
since() { printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)"; }

kernel_args=()
if [ "$debian" = 1 ]; then
	# Debian's own kernel package, unmodified, and our fuse.ko for it.
	dir=$("$here/debian-kernel.sh")
	kernel=$dir/vmlinuz
	kver=$(awk '$1 == "kver" {print $2}' "$here/debian.lock")
	debver=$(awk -v p="linux-image-$kver" '$1 == p {print $2}' "$here/debian.lock")
	kmod_version=$(sed -n 's/^version=//p' "$dir/kmod/BUILD-INFO")
	kernel_args=(--file "$dir/guest/lib:/lib" --env "VMTEST_KMOD_VERSION=$kmod_version"
		--env "VMTEST_DEBIAN_VERSION=$debver")
	kernel_desc="Debian's stock $kver ($debver) with the cryptfs fuse.ko $kmod_version"
else
	kernel=$("$here/build-kernel.sh")
	kernel_desc="Linux 6.1 with the cryptfs hook"
fi
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
	--file "$here/guest.sh:/vmtest/guest.sh" ${kernel_args[@]+"${kernel_args[@]}"})
for b in cryptfs hooktest workload e2e.test; do
	args+=(--bin "$work/bin/$b")
done
args+=(--env "VMTEST_STAGES=$stages")
[ -n "$meta_flags" ] && args+=(--env "VMTEST_META_FLAGS=$meta_flags")

status=0
"$here/run.sh" "${args[@]}" "$@" -- sh /vmtest/guest.sh || status=$?

log=$work/keep/log
if [ -f "$log" ]; then
	table=$(tr -d '\r' <"$log" | sed -n '/^=== metadata table$/,/^=== end$/{/^===/d;p}')
	if [ -n "$table" ]; then
		echo
		echo "Metadata workload in the vmtest guest ($kernel_desc, qemu TCG):"
		echo "$table"
	fi
	table=$(tr -d '\r' <"$log" | sed -n '/^=== untar table$/,/^=== end$/{/^===/d;p}')
	if [ -n "$table" ]; then
		echo
		echo "untar and rm -rf in the vmtest guest ($kernel_desc, qemu TCG):"
		echo "$table"
	fi
	table=$(tr -d '\r' <"$log" | sed -n '/^=== bench table$/,/^=== end$/{/^===/d;p}')
	if [ -n "$table" ]; then
		out=${BENCH_GUEST_OUT:-$repo/bench/results/bench-guest.md}
		{
			echo "# cryptfs in the vmtest guest: off, kernel-cache and ebpf"
			echo
			echo "Generated by \`make bench-vm\` (\`vmtest/vmtest.sh --bench\`) on $(date -u '+%Y-%m-%d %H:%M UTC'):"
			echo "$kernel_desc, in qemu ($(tr -d '\r' <"$log" | grep -m1 '^vmtest: guest up' || true);"
			echo "TCG unless KVM can boot the guest, see vmtest/README.md), on $(nproc) host cores with load"
			echo "average $(cut -d' ' -f1-3 /proc/loadavg) at the end."
			echo
			echo "**Read the request counts, not the times.** The counts are exact and do not depend on"
			echo "timing (the kernel and the daemon decide them). The times are guest wall times under a"
			echo "software CPU emulator on a shared host, where the guest kernel's own work is emulated"
			echo "too: only the ratios between tiers measured in this one guest run mean anything, and"
			echo "even those move with the host's load. For times on real hardware see"
			echo "[bench.md](bench.md) (\`make bench\`, which cannot run the ebpf tier on a kernel"
			echo "without the cryptfs FUSE module)."
			echo
			echo "$table"
		} >"$out"
		echo
		echo "bench in the vmtest guest ($kernel_desc, qemu): written to $out"
		echo "$table" | sed -n '/^| workload | off requests/,/^$/p'
	fi
	echo
	tr -d '\r' <"$log" | sed -n '/^=== summary$/,$p' | grep '^===' || true
fi
echo "vmtest: exit status $status after $(since)s" >&2
exit "$status"
