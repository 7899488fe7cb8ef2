#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Boot the cryptfs guest kernel under qemu with a busybox initramfs, run one
# command in it, and exit with that command's exit status.
#
# Usage: vmtest/run.sh [options] -- COMMAND [ARG...]
#
#   --kernel PATH     kernel to boot (default: whatever vmtest/build-kernel.sh
#                     builds or has cached)
#   --bin PATH        copy a static binary to /bin/<name> in the guest
#                     (repeatable; dynamic binaries are refused)
#   --file SRC[:DST]  copy a file or directory into the guest (repeatable;
#                     DST defaults to /data/<name>)
#   --env NAME=VALUE  set an environment variable for COMMAND (repeatable)
#   --timeout SECS    kill the guest after SECS seconds (default 600)
#   --accel MODE      auto (KVM if a probe boot works, else TCG), kvm or tcg
#                     (default auto)
#   --mem SIZE        guest memory (default 1G)
#   --smp N           guest CPUs (default 2)
#   --append ARGS     extra kernel command line arguments
#   --keep DIR        keep the initramfs and console log in DIR
#   --scratch SIZE    attach a fresh ext4 disk of SIZE (e.g. 4G, sparse,
#                     made with mkfs.ext4 on the host) and mount it on
#                     /scratch in the guest: a disk file system with user
#                     xattrs (6.1's tmpfs has none) and more room than RAM
#
# The guest mounts proc, sysfs, devtmpfs, tmpfs on /tmp (the working
# directory of COMMAND) and /run, bpffs on /sys/fs/bpf, fusectl and the
# scratch disk if any, runs COMMAND with its output on the console, fails
# the run if the kernel log shows an oops, a BUG or a WARNING, prints an
# exit marker line and reboots.  The host parses the marker.
#
# Exit status: COMMAND's status; 101 if COMMAND passed but the kernel
# complained; 124 on timeout; 125 if the guest died without a status
# (kernel panic, harness error).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kernel=
bins=()
files=()
envs=()
timeout=600
accel=auto
mem=1G
smp=2
append=
keep=
scratch=
cache=${CRYPTFS_VMTEST_CACHE:-/var/cache/cryptfs-vmtest}

usage() {
	sed -n '/^# Usage:/,/^# Exit status/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 125
}
log() { echo "vmtest: $*" >&2; }
die() { echo "vmtest: error: $*" >&2; exit 125; }

while [ $# -gt 0 ]; do
	case $1 in
	--kernel) kernel=$2; shift 2 ;;
	--bin) bins+=("$2"); shift 2 ;;
	--file) files+=("$2"); shift 2 ;;
	--env) envs+=("$2"); shift 2 ;;
	--timeout) timeout=$2; shift 2 ;;
	--accel) accel=$2; shift 2 ;;
	--mem) mem=$2; shift 2 ;;
	--smp) smp=$2; shift 2 ;;
	--append) append=$2; shift 2 ;;
	--keep) keep=$2; shift 2 ;;
	--scratch) scratch=$2; shift 2 ;;
	-h|--help) usage ;;
	--) shift; break ;;
	*) echo "vmtest: unknown argument $1" >&2; usage ;;
	esac
done
[ $# -gt 0 ] || { echo "vmtest: no command given" >&2; usage; }
case $accel in auto|kvm|tcg) ;; *) die "--accel must be auto, kvm or tcg" ;; esac

tools=(qemu-system-x86_64 cpio)
[ -n "$scratch" ] && tools+=(mkfs.ext4)
for tool in "${tools[@]}"; do
	command -v "$tool" >/dev/null || die "$tool not found (run vmtest/build-kernel.sh, which installs it)"
done
busybox=/bin/busybox
if [ ! -x "$busybox" ] || readelf -l "$busybox" 2>/dev/null | grep -q INTERP; then
	die "$busybox must be busybox-static (apt-get install busybox-static)"
fi

if [ -z "$kernel" ]; then
	kernel=$("$here/build-kernel.sh") || die "kernel build failed"
fi
[ -f "$kernel" ] || die "kernel $kernel not found"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Quote a word for the guest's /bin/sh.
shquote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }

# pack_initramfs DIR: a cpio archive with busybox, /init and DIR/extra.
pack_initramfs() {
	local root=$1/root out=$1/initramfs.cpio applet
	mkdir -p "$root"/{bin,dev,proc,sys,tmp,run,data,vmtest,scratch}
	cp "$busybox" "$root/bin/busybox"
	for applet in $("$busybox" --list); do
		[ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
	done
	# Without /dev/console in the archive, /init starts without stdio
	# (the init script copes, but the kernel warns).
	mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
	cp "$1/init" "$root/init"
	chmod 755 "$root/init"
	[ -d "$1/extra" ] && cp -a "$1/extra/." "$root/"
	(cd "$root" && find . -print0 | cpio --null -o -H newc --quiet) >"$out"
}

# write_init DIR MARKER: /init runs /vmtest/cmd.sh, then prints MARKER=status.
write_init() {
	cat >"$1/init" <<-EOF
		#!/bin/sh
		export PATH=/bin
		mount -t devtmpfs devtmpfs /dev 2>/dev/null
		exec </dev/console >/dev/console 2>&1
		mount -t proc proc /proc
		mount -t sysfs sysfs /sys
		mount -t tmpfs tmpfs /tmp
		mount -t tmpfs -o mode=755 tmpfs /run
		# A modular kernel (Debian's, vmtest.sh --debian): load what
		# /lib/modules/load-order lists, in order, before anything needs it.
		if [ -f /lib/modules/load-order ]; then
			for m in \$(cat /lib/modules/load-order); do
				if ! insmod "\$m"; then
					echo "vmtest: insmod \$m failed"
					echo "$2=125"
					reboot -f
				fi
			done
			echo "vmtest: loaded \$(wc -l </lib/modules/load-order) modules from /lib/modules/load-order"
			# virtio_blk probes asynchronously.
			for i in 1 2 3 4 5 6 7 8 9 10; do
				[ -b /dev/vda ] && break
				sleep 0.2
			done
		fi
		if [ -b /dev/vda ] && ! mount -t ext4 /dev/vda /scratch; then
			echo "vmtest: cannot mount the scratch disk"
			echo "$2=125"
			reboot -f
		fi
		mount -t bpf bpf /sys/fs/bpf 2>/dev/null
		mount -t fusectl fusectl /sys/fs/fuse/connections 2>/dev/null
		echo "vmtest: guest up, kernel \$(uname -r), \$(nproc) CPUs"
		cd /tmp
		/bin/sh /vmtest/cmd.sh
		status=\$?
		if dmesg | grep -E -q 'BUG:|WARNING:|Oops|Call Trace|general protection|suspicious RCU|refcount_t:'; then
			echo "vmtest: the kernel log shows a problem:"
			dmesg | tail -n 100
			[ \$status = 0 ] && status=101
		fi
		echo "$2=\$status"
		sync
		reboot -f
	EOF
}

# qemu_run ACCEL INITRAMFS TIMEOUT LOG [QEMU_ARG...]: the console goes to LOG
# and, line by line (sed -u, so a log file or CI shows progress), to stdout.
qemu_run() {
	local a=(-accel "tcg,thread=multi" -cpu max)
	[ "$1" = kvm ] && a=(-accel kvm -cpu host)
	local initrd=$2 secs=$3 logf=$4
	shift 4
	# --foreground keeps qemu in our process group: ^C or killing the
	# caller's group stops it too.
	timeout --foreground -k 5 "$secs" qemu-system-x86_64 "${a[@]}" "$@" -m "$mem" -smp "$smp" \
		-kernel "$kernel" -initrd "$initrd" \
		-append "console=ttyS0 quiet panic=-1 oops=panic $append" \
		-display none -no-reboot -nodefaults -serial stdio </dev/null |
		tee "$logf" | sed -u 's/\r//g'
	return "${PIPESTATUS[0]}"
}

# KVM only if a quick probe boot of this kernel reaches user space.  The
# answer is cached per host kernel, qemu and guest kernel.
if [ "$accel" = auto ]; then
	accel=tcg
	if [ -r /dev/kvm ] && [ -w /dev/kvm ]; then
		probe_key=$( { uname -r; qemu-system-x86_64 --version | head -1; sha256sum "$kernel"; } | sha256sum | cut -c1-16)
		probe_file=$cache/kvm-probe-$probe_key
		if [ ! -f "$probe_file" ]; then
			log "probing KVM (cached in $probe_file)"
			mkdir -p "$work/probe/extra/vmtest" "$cache"
			write_init "$work/probe" VMTEST_PROBE
			echo 'echo probe' >"$work/probe/extra/vmtest/cmd.sh"
			pack_initramfs "$work/probe"
			qemu_run kvm "$work/probe/initramfs.cpio" 60 "$work/probe/log" >/dev/null 2>&1 || true
			if grep -q 'VMTEST_PROBE=0' "$work/probe/log"; then
				echo kvm >"$probe_file"
			else
				echo tcg >"$probe_file"
			fi
		fi
		accel=$(cat "$probe_file")
	fi
fi

# The real run.
marker=VMTEST_EXIT_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
mkdir -p "$work/run/extra/bin" "$work/run/extra/vmtest" "$work/run/extra/data"
write_init "$work/run" "$marker"
for b in ${bins[@]+"${bins[@]}"}; do
	[ -f "$b" ] || die "--bin $b: no such file"
	if readelf -l "$b" 2>/dev/null | grep -q INTERP; then
		die "--bin $b is dynamically linked (build it with CGO_ENABLED=0)"
	fi
	cp "$b" "$work/run/extra/bin/"
done
for f in ${files[@]+"${files[@]}"}; do
	src=${f%%:*}
	dst=/data/$(basename "$src")
	[ "$src" != "$f" ] && dst=${f#*:}
	[ -e "$src" ] || die "--file $src: no such file"
	mkdir -p "$work/run/extra$(dirname "$dst")"
	cp -a "$src" "$work/run/extra$dst"
done
{
	for e in ${envs[@]+"${envs[@]}"}; do
		printf 'export %s=%s\n' "${e%%=*}" "$(shquote "${e#*=}")"
	done
	printf 'exec'
	for w in "$@"; do printf ' %s' "$(shquote "$w")"; done
	printf '\n'
} >"$work/run/extra/vmtest/cmd.sh"
pack_initramfs "$work/run"

disk=()
if [ -n "$scratch" ]; then
	truncate -s "$scratch" "$work/scratch.img"
	mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "$work/scratch.img" ||
		die "mkfs.ext4 of the scratch disk failed"
	disk=(-drive "file=$work/scratch.img,format=raw,if=virtio,cache=unsafe")
fi

log "booting $kernel ($accel, $smp CPUs, $mem, timeout ${timeout}s)"
start=$(date +%s.%N)
set +e
qemu_run "$accel" "$work/run/initramfs.cpio" "$timeout" "$work/run/log" ${disk[@]+"${disk[@]}"}
qrc=$?
set -e
elapsed=$(echo "$(date +%s.%N) - $start" | bc)
if [ -n "$keep" ]; then
	mkdir -p "$keep"
	cp "$work/run/initramfs.cpio" "$work/run/log" "$keep/"
fi

status=$(tr -d '\r' <"$work/run/log" | sed -n "s/^$marker=\([0-9]*\)\$/\1/p" | tail -n 1)
if [ -z "$status" ]; then
	if [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
		log "timeout after ${timeout}s"
		exit 124
	fi
	log "the guest died without an exit status (qemu exit $qrc) after ${elapsed}s"
	exit 125
fi
log "guest exited with status $status after ${elapsed}s (boot + test, $accel)"
exit "$status"
