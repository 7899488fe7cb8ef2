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
#   hooktest   the kernel hook on its own (vmtest/hooktest)
#   fstest     the POSIX suite on a cryptfs mount with --fast-path=ebpf,
#              then the integrity tests (default tier auto, which must
#              pick ebpf here)
#   reuse      a deleted file's inode number reused by a new file of the
#              same type: no fact of the old one shows (vmtest/workload)
#   meta       the metadata workload in the off, kernel-cache and ebpf
#              tiers, its table, the >= 90% cut (vmtest/workload)
#   coherence  the coherence stress in the ebpf tier (vmtest/workload)
#
# VMTEST_META_FLAGS adds flags to `workload meta` (vmtest.sh --quick: a
# smaller tree). Each stage runs under a time limit (fstest and meta 2400 s,
# the others 300 s; VMTEST_STAGE_TIMEOUT overrides them all), so a hung
# stage fails without stopping the rest; FUSE mounts a failed stage left
# behind are aborted (fusectl) and detached. Prints "=== stage NAME: ..."
# lines and a summary; exits 1 if any stage failed.
set -u

export TMPDIR=/scratch/tmp

# The fstest stage, run as "sh guest.sh fstest-stage" (timeout needs a
# program): -test.v output without the lines of passing subtests (the
# suite has hundreds); failures keep all their detail. The test timeout
# comes before the stage's, so a hang ends with Go's goroutine dump.
if [ "${1:-}" = fstest-stage ]; then
	CRYPTFS_BIN=/bin/cryptfs CRYPTFS_TIERS=ebpf \
		e2e.test -test.v -test.count=1 -test.timeout=35m \
		-test.run '^(TestCryptfs|TestTamperedBlock|TestPlaintextNeverInLower)$' \
		>"$TMPDIR/fstest.log" 2>&1
	rc=$?
	grep -v -E '^ +--- PASS|^=== (RUN|PAUSE|CONT)' "$TMPDIR/fstest.log"
	exit $rc
fi

stages=${VMTEST_STAGES:-hooktest fstest reuse meta coherence}
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
	hooktest) run_stage hooktest 300 hooktest ;;
	fstest) run_stage fstest 2400 sh "$0" fstest-stage ;;
	reuse) run_stage reuse 300 workload reuse -bin /bin/cryptfs -tier ebpf ;;
	meta)
		# shellcheck disable=SC2086 # VMTEST_META_FLAGS is a list of flags
		run_stage meta 2400 workload meta -bin /bin/cryptfs ${VMTEST_META_FLAGS:-}
		;;
	coherence) run_stage coherence 300 workload coherence -bin /bin/cryptfs -tier ebpf ;;
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
