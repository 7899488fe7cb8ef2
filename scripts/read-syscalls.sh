#!/bin/bash
# What a daemon does per cold 4 KiB random READ, on a local lower directory:
# its system calls, its CPU time and the bytes it makes the lower file
# system read, per READ request (counted as the daemon's replies: one
# writev each, for cryptfs and for gocryptfs).
#
#   scripts/read-syscalls.sh bin/cryptfs      # or: gocryptfs
#
# It mounts a fresh tree under /var/tmp (root: it drops the page cache),
# writes a 64 MiB file, and reads 16,384 random 4 KiB blocks with fio
# (some twice: those come from the page cache) twice from a cold cache,
# with the same random sequence: once plain (CPU, read_bytes), once under
# `strace -c -f` (counts only; strace slows the daemon down). The CPU
# time moves by a third from run to run on a busy machine; the counts do
# not. Everything
# it made is unmounted and removed on exit. docs/performance.md, "Random
# reads", quotes its output.
set -eu
bin=${1:?usage: $0 CRYPTFS_BINARY|gocryptfs}
[ "$(id -u)" = 0 ] || { echo "$0: needs root (drop_caches)" >&2; exit 1; }
for tool in fio strace; do
	command -v $tool >/dev/null || { echo "$0: needs $tool" >&2; exit 1; }
done
reads=16384
d=$(mktemp -d /var/tmp/read-syscalls.XXXXXX)
cleanup() {
	if mountpoint -q "$d/mnt"; then
		if [ "$bin" = gocryptfs ]; then fusermount -u "$d/mnt" || umount "$d/mnt"; else "$bin" unmount "$d/mnt"; fi
	fi
	rm -rf "$d"
}
trap cleanup EXIT
mkdir -m 700 "$d/lower" "$d/mnt"
echo password > "$d/pw"
if [ "$bin" = gocryptfs ]; then
	gocryptfs -q -init -passfile "$d/pw" "$d/lower" >/dev/null
	gocryptfs -q -passfile "$d/pw" "$d/lower" "$d/mnt" 2>/dev/null
	pid=$(pgrep -n -x gocryptfs)
else
	"$bin" init --passfile "$d/pw" "$d/lower" >/dev/null
	"$bin" mount --passfile "$d/pw" "$d/lower" "$d/mnt" >/dev/null
	pid=$(pgrep -n -f "mount --internal-daemon.*$d/mnt")
fi
mountpoint -q "$d/mnt"
dd if=/dev/urandom of="$d/mnt/f" bs=1M count=64 status=none
sync

readrun() {
	echo 3 >/proc/sys/vm/drop_caches
	fio --name=r --filename="$d/mnt/f" --rw=randread --bs=4k --size=64M --io_size=$((reads * 4))k \
		--ioengine=psync --invalidate=1 --randrepeat=1 --norandommap --output=/dev/null
}
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
rbytes() { awk '/^read_bytes/ {print $2}' "/proc/$pid/io"; }

c0=$(ticks); b0=$(rbytes)
readrun
c1=$(ticks); b1=$(rbytes)

strace -c -f -p "$pid" -o "$d/strace" 2>/dev/null &
sp=$!
sleep 1
readrun
sleep 0.5
kill -INT $sp
wait $sp || true
requests=$(awk '$NF == "writev" {print $4}' "$d/strace")
hz=$(getconf CLK_TCK)
echo "$bin: $requests READs: daemon CPU $(((c1 - c0) * 1000000 / hz / requests)) us per READ ($((c1 - c0)) ticks of 1/$hz s), lower read_bytes $(((b1 - b0) / requests)) per READ"
awk -v n="$requests" '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $4 >= n / 2 {printf "  %-12s %6d calls, %.2f per READ\n", $NF, $4, $4 / n}' "$d/strace"
