#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
#
# The `make vmtest` checks, run inside the qemu guest by vmtest/vmtest.sh
# (busybox sh, as root, on the patched 6.1 kernel). The binaries are in
# /bin: hooktest, cryptfs, e2e.test (the tests of fstest/e2e) and workload
# (all static). The scratch disk (ext4, with user xattrs, which 6.1's tmpfs
# lacks) is mounted on /scratch.
#
# Stages, in order (VMTEST_STAGES selects some, space-separated):
#   module     (Debian's stock kernel only) the loaded fuse is our module:
#              its version, modversions refusing the stock virtiofs.ko,
#              ours loading, `cryptfs kmod status` saying so, and
#              `cryptfs status` of an auto mount saying ebpf, the module's
#              version and the hook
#   hooktest   the kernel hook on its own (vmtest/hooktest)
#   fstest     the POSIX suite on a cryptfs mount with --fast-path=ebpf,
#              then the integrity tests (default tier auto, which must
#              pick ebpf here)
#   fstest-nohook  the POSIX suite with --fast-path=off and kernel-cache:
#              no program attached, so the patched module must behave like
#              the stock one
#   reuse      a deleted file's inode number reused by a new file of the
#              same type: no fact of the old one shows (vmtest/workload)
#   meta       the metadata workload in the off, kernel-cache and ebpf
#              tiers, its table, the >= 90% cut (vmtest/workload)
#   untar      busybox tar -xf of a source-like archive and rm -rf of it
#              in the kernel-cache and ebpf tiers: identical trees, and the
#              requests each sends to the daemon (vmtest/workload)
#   coherence  the coherence stress in the ebpf tier (vmtest/workload)
#   bench      (only when asked for: make bench-vm) make bench's workloads
#              in small in the off, kernel-cache and ebpf tiers, and their
#              table of requests and same-guest time ratios (vmtest/workload)
#
# VMTEST_META_FLAGS adds flags to `workload meta` (vmtest.sh --quick: a
# smaller tree). Each stage runs under a time limit (fstest and meta 2400 s,
# fstest-nohook 3600 s, module 120 s, the others 300 s; VMTEST_STAGE_TIMEOUT
# overrides them all), so a hung
# stage fails without stopping the rest; FUSE mounts a failed stage left
# behind are aborted (fusectl) and detached. Prints "=== stage NAME: ..."
# lines and a summary; exits 1 if any stage failed.
set -u

export TMPDIR=/scratch/tmp

# The fstest stages, run as "sh guest.sh fstest-stage TIERS" (timeout needs a
# program): -test.v output without the lines of passing subtests (the
# suite has hundreds); failures keep all their detail. The test timeout
# comes before the stage's, so a hang ends with Go's goroutine dump.
# TIERS "ebpf" adds the integrity tests with the default tier.
if [ "${1:-}" = fstest-stage ]; then
	tiers=${2:-ebpf}
	tests='^(TestCryptfs|TestTamperedBlock|TestPlaintextNeverInLower)$'
	[ "$tiers" = ebpf ] || tests='^TestCryptfs$'
	CRYPTFS_BIN=/bin/cryptfs CRYPTFS_TIERS=$tiers \
		e2e.test -test.v -test.count=1 -test.timeout=55m -test.run "$tests" \
		>"$TMPDIR/fstest-$tiers.log" 2>&1
	rc=$?
	grep -v -E '^ +--- PASS|^=== (RUN|PAUSE|CONT)' "$TMPDIR/fstest-$tiers.log"
	exit $rc
fi

# The module stage, run as "sh guest.sh module-stage": the fuse module the
# guest's /init loaded is ours, and only ours fits it.
if [ "${1:-}" = module-stage ]; then
	bad=0
	ok() { echo "ok    $*"; }
	no() { echo "FAIL  $*"; bad=1; }
	kver=$(uname -r)
	dkms=/lib/modules/$kver/updates/dkms
	v=$(cat /sys/module/fuse/version 2>/dev/null)
	if [ -n "${VMTEST_KMOD_VERSION:-}" ] && [ "$v" = "$VMTEST_KMOD_VERSION" ]; then
		ok "fuse version $v"
	else
		no "fuse version '$v', want '${VMTEST_KMOD_VERSION:-}'"
	fi
	if [ "$(cat /sys/module/fuse/initstate 2>/dev/null)" = live ]; then
		ok "fuse is a loadable module (taint $(cat /sys/module/fuse/taint))"
	else
		no "fuse is not a live loadable module"
	fi
	if grep -q "${VMTEST_DEBIAN_VERSION:-no version given}" /proc/version; then
		ok "the kernel is Debian's $VMTEST_DEBIAN_VERSION: $(cat /proc/version)"
	else
		no "/proc/version does not name Debian ${VMTEST_DEBIAN_VERSION:-}: $(cat /proc/version)"
	fi
	if insmod /lib/modules/stock/virtiofs.ko 2>/dev/null; then
		no "the stock virtiofs.ko loaded against the patched fuse.ko"
		rmmod virtiofs
	else
		ok "the stock virtiofs.ko is refused: $(dmesg | grep -m 1 'virtiofs: disagrees about version' | sed 's/^\[[^]]*\] //')"
	fi
	if insmod "$dkms/virtiofs.ko" && insmod "$dkms/cuse.ko" && [ -c /dev/cuse ]; then
		ok "our virtiofs.ko and cuse.ko load (/dev/cuse is there)"
	else
		no "our virtiofs.ko or cuse.ko does not load"
	fi
	if out=$(cryptfs kmod status 2>&1); then
		echo "$out" | sed 's/^/      /'
		if echo "$out" | grep -q '^FUSE: *loadable module, loaded' &&
			echo "$out" | grep -q "^Version: *$v (cryptfs, this binary's patch)" &&
			echo "$out" | grep -q '^Hook: *yes' &&
			echo "$out" | grep -q '^modprobe: *updates/dkms/fuse.ko' &&
			echo "$out" | grep -q '^ebpf tier: *available'; then
			ok "cryptfs kmod status reports the module, its version, the hook and modprobe's choice"
		else
			no "cryptfs kmod status does not report the module, version $v, the hook and updates/dkms"
		fi
	else
		echo "$out"
		no "cryptfs kmod status failed"
	fi
	# A mount with the default --fast-path=auto: cryptfs status must say
	# ebpf, and name the module's version and the hook.
	c=$TMPDIR/status-cipher m=$TMPDIR/status-mnt
	mkdir -p "$m"
	if echo pw | cryptfs init --insecure-kdf "$c" >/dev/null 2>&1 &&
		echo pw | cryptfs mount --insecure-kdf "$c" "$m" >/dev/null 2>&1; then
		out=$(cryptfs status "$m" 2>&1)
		echo "$out" | grep -E '^(Fast path|Wanted|Kernel FUSE):' | sed 's/^/      /'
		kline="loadable module, loaded, $v, cryptfs hook: yes"
		if echo "$out" | grep -qF "Fast path:   ebpf (the kernel's fuse has the cryptfs hook ($kline))" &&
			echo "$out" | grep -qF "Wanted:      --fast-path=auto (ebpf tier wanted: yes)" &&
			echo "$out" | grep -qF "Kernel FUSE: $kline (kernel $kver)"; then
			ok "cryptfs status of an auto mount says ebpf, the module's version $v and the hook"
		else
			echo "$out"
			no "cryptfs status of an auto mount does not say ebpf with module $v and the hook"
		fi
		cryptfs unmount "$m" || no "cryptfs unmount $m failed"
	else
		no "cryptfs init or mount for the status check failed"
	fi
	rm -rf "$c" "$m"
	exit $bad
fi

stages=${VMTEST_STAGES:-hooktest fstest reuse meta untar coherence}
mkdir -p "$TMPDIR" || exit 1
cd "$TMPDIR" || exit 1

failed=
summary=

# run_stage NAME LIMIT COMMAND...: runs COMMAND for at most LIMIT seconds
# (or $VMTEST_STAGE_TIMEOUT) and records its outcome.
run_stage() {
	name=$1
	limit=${VMTEST_STAGE_TIMEOUT:-$2}
	shift 2
	echo "=== stage $name: start"
	t0=$(date +%s)
	timeout -s KILL "$limit" "$@"
	rc=$?
	secs=$(($(date +%s) - t0))
	if [ "$rc" = 0 ]; then
		verdict=PASS
	else
		verdict="FAIL (exit $rc)"
		[ "$rc" = 137 ] && verdict="FAIL (killed after ${limit}s)"
		failed="$failed $name"
	fi
	echo "=== stage $name: $verdict after ${secs}s"
	summary="$summary
=== stage $name: $verdict after ${secs}s"
	# Whatever a stage left mounted would hide the next one's problems:
	# report it, abort its connection (frees processes waiting on a dead
	# daemon) and detach it.
	leftover=$(awk '$3 ~ /^fuse(\.|$)/ {print $2}' /proc/self/mounts)
	if [ -n "$leftover" ]; then
		echo "=== stage $name left FUSE mounts behind:"
		echo "$leftover"
		failed="$failed $name-cleanup"
		awk '{ for (i = 7; i <= NF; i++) if ($i == "-") break;
			if ($(i + 1) ~ /^fuse(\.|$)/) { split($3, d, ":"); print d[1] * 1048576 + d[2], $5 } }' \
			/proc/self/mountinfo | while read -r dev mnt; do
			echo 1 >"/sys/fs/fuse/connections/$dev/abort" 2>/dev/null
			umount -l "$mnt"
		done
	fi
}

for s in $stages; do
	case $s in
	module) run_stage module 120 sh "$0" module-stage ;;
	hooktest) run_stage hooktest 300 hooktest ;;
	fstest) run_stage fstest 2400 sh "$0" fstest-stage ebpf ;;
	fstest-nohook) run_stage fstest-nohook 3600 sh "$0" fstest-stage off,kernel-cache ;;
	reuse) run_stage reuse 300 workload reuse -bin /bin/cryptfs -tier ebpf ;;
	meta)
		# shellcheck disable=SC2086 # VMTEST_META_FLAGS is a list of flags
		run_stage meta 2400 workload meta -bin /bin/cryptfs ${VMTEST_META_FLAGS:-}
		;;
	untar) run_stage untar 1800 workload untar -bin /bin/cryptfs ${VMTEST_UNTAR_FLAGS:-} ;;
	coherence) run_stage coherence 300 workload coherence -bin /bin/cryptfs -tier ebpf ;;
	# Not in the default list: `make bench-vm` (vmtest.sh --bench) asks for it.
	# shellcheck disable=SC2086 # VMTEST_BENCH_FLAGS is a list of flags
	bench) run_stage bench 3600 workload bench -bin /bin/cryptfs ${VMTEST_BENCH_FLAGS:-} ;;
	*)
		echo "=== unknown stage $s"
		failed="$failed $s"
		;;
	esac
done

echo "=== summary$summary"
if [ -n "$failed" ]; then
	echo "=== FAILED:$failed"
	exit 1
fi
echo "=== all stages passed"
