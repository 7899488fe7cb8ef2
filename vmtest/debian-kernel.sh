#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Prepare Debian 12's own, unmodified kernel for the qemu guest of
# `make vmtest-debian`, and the cryptfs FUSE module built for it:
#
#   1. apt-get download the packages pinned in vmtest/debian.lock (the
#      kernel image, its headers, linux-kbuild, linux-source-6.1) and check
#      each .deb's sha256 against the lock file and the archive's index;
#   2. unpack them (dpkg-deb -x, nothing is installed on the host);
#   3. build fuse.ko, cuse.ko and virtiofs.ko with bpf/kernel/kmod/build.sh
#      against those headers, from that linux-source-6.1;
#   4. put them where DKMS puts them (lib/modules/KVER/updates/dkms), run
#      depmod, check that modprobe now resolves fuse to ours, and stage the
#      modules the guest needs (virtio disk, ext4, our fuse) with their load
#      order, plus the stock cuse.ko and virtiofs.ko for a negative check.
#
# Prints the prepared directory on stdout (the only line there):
#   DIR/vmlinuz             the stock kernel, as the package ships it
#   DIR/guest/              the initramfs payload: lib/modules/KVER/...,
#                           lib/modules/load-order (insmod in this order)
#   DIR/kmod/BUILD-INFO     version, kernel, hashes of the module build
#
# Cache: $CRYPTFS_VMTEST_CACHE (default /var/cache/cryptfs-vmtest)/debian-KVER/
# holds the .debs, the unpacked packages and one module build per key (the
# sha256 of the lock, build.sh, fs-fuse.sha256 and the patches). A warm
# re-run takes a few seconds.
#
# Usage: vmtest/debian-kernel.sh [--lock FILE] [--no-deps] [--clean]
#        vmtest/debian-kernel.sh --update-lock   (pin the archive's current
#                                                 linux-image-amd64)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
kmod=$repo/bpf/kernel/kmod

lock=$here/debian.lock
install_deps=1
clean=0
update=0
cache=${CRYPTFS_VMTEST_CACHE:-/var/cache/cryptfs-vmtest}

usage() {
	sed -n '/^# Usage:/,/^set /{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}
log() { echo "debian-kernel: $*" >&2; }
die() { echo "debian-kernel: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
	case $1 in
	--lock) lock=$2; shift 2 ;;
	--no-deps) install_deps=0; shift ;;
	--clean) clean=1; shift ;;
	--update-lock) update=1; shift ;;
	-h|--help) usage ;;
	*) echo "debian-kernel: unknown argument $1" >&2; usage ;;
	esac
done

# Host tools, by the command or file that proves each is there.
ensure_deps() {
	local need=() pkg probe
	while read -r pkg probe; do
		[ -e "$probe" ] || command -v "$probe" >/dev/null 2>&1 || need+=("$pkg")
	done <<-EOF
		build-essential gcc-12
		build-essential make
		binutils objcopy
		patch patch
		xz-utils xz
		libelf1 /usr/lib/x86_64-linux-gnu/libelf.so.1
		kmod depmod
		cpio cpio
		bc bc
		e2fsprogs mkfs.ext4
		qemu-system-x86 qemu-system-x86_64
		busybox-static /bin/busybox
	EOF
	[ ${#need[@]} -eq 0 ] && return
	[ "$install_deps" = 1 ] || die "missing packages: ${need[*]} (run without --no-deps or apt-get install them)"
	[ "$(id -u)" = 0 ] || die "missing packages: ${need[*]}; run as root or install them"
	log "installing ${need[*]}"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2 ||
		{ apt-get update -q >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2; }
}

# index_sha256 PKG VERSION: the SHA256 the archive's Packages index gives.
index_sha256() {
	apt-cache show "$1=$2" 2>/dev/null | sed -n 's/^SHA256: //p' | head -n 1
}

if [ "$update" = 1 ]; then
	apt-get update -q >&2
	img=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-6\.1\.0-[0-9]*-amd64\)$/\1/p' | head -n 1)
	[ -n "$img" ] || die "cannot find the kernel linux-image-amd64 depends on"
	kver=${img#linux-image-}
	abi=${kver%-amd64}
	ver=$(apt-cache policy "$img" | sed -n 's/^ *Candidate: //p')
	tmp=$(mktemp)
	sed -n '/^#/p' "$lock" >"$tmp"
	echo "kver $kver" >>"$tmp"
	for p in "$img" "linux-headers-$kver" "linux-headers-$abi-common" linux-kbuild-6.1 linux-source-6.1; do
		sha=$(index_sha256 "$p" "$ver")
		[ -n "$sha" ] || die "$p=$ver is not in the archive"
		echo "$p $ver $sha" >>"$tmp"
	done
	mv "$tmp" "$lock"
	log "pinned $kver ($ver) in $lock; bpf/kernel/kmod/build.sh checks that its fs/fuse is the patch's"
	cat "$lock" >&2
	exit 0
fi

ensure_deps

[ -f "$lock" ] || die "$lock not found"
kver=$(awk '$1 == "kver" {print $2}' "$lock")
[ -n "$kver" ] || die "$lock names no kver"
mapfile -t pins < <(grep -v '^#' "$lock" | awk 'NF == 3')
[ ${#pins[@]} -gt 0 ] || die "$lock pins no package"
srcver=
for pin in "${pins[@]}"; do
	read -r p v _ <<<"$pin"
	[ "$p" = linux-source-6.1 ] && srcver=$v
done
[ -n "$srcver" ] || die "$lock must pin linux-source-6.1"

dir=$cache/debian-$kver
[ "$clean" = 1 ] && rm -rf "$dir"
mkdir -p "$dir/debs"
exec 9>"$cache/debian.lock"
flock 9

# 1. Download and check.
for pin in "${pins[@]}"; do
	read -r p v sha <<<"$pin"
	deb=$(find "$dir/debs" -maxdepth 1 -name "${p}_*.deb" -print -quit)
	if [ -n "$deb" ] && [ "$(sha256sum "$deb" | cut -c1-64)" = "$sha" ]; then
		continue
	fi
	rm -f "$dir/debs/${p}_"*.deb
	idx=$(index_sha256 "$p" "$v")
	if [ -z "$idx" ]; then
		log "apt-get update (the package index does not list $p=$v)"
		apt-get update -q >&2 || true
		idx=$(index_sha256 "$p" "$v")
	fi
	[ -n "$idx" ] || die "$p=$v is not in the archive any more: pin a newer kernel (vmtest/debian-kernel.sh --update-lock)"
	[ "$idx" = "$sha" ] || die "the archive's index gives $p=$v sha256 $idx, $lock pins $sha"
	log "downloading $p=$v"
	tmpd=$(mktemp -d "$dir/debs/.dl.XXXXXX")
	chown _apt "$tmpd" 2>/dev/null || true
	(cd "$tmpd" && apt-get download -q "$p=$v" >&2) || { rm -rf "$tmpd"; die "apt-get download $p=$v failed"; }
	deb=$(find "$tmpd" -maxdepth 1 -name '*.deb' -print -quit)
	got=$(sha256sum "$deb" | cut -c1-64)
	[ "$got" = "$sha" ] || { rm -rf "$tmpd"; die "$p=$v: downloaded sha256 $got, want $sha"; }
	mv "$deb" "$dir/debs/"
	rm -rf "$tmpd"
done
log "packages verified against $(basename "$lock") and the archive index"

# 2. Unpack (once per lock content).
lock_sum=$(sha256sum "$lock" | cut -c1-16)
root=$dir/root
if [ ! -f "$root/.unpacked-$lock_sum" ]; then
	log "unpacking the packages"
	rm -rf "$root" "$root.tmp"
	mkdir -p "$root.tmp"
	for deb in "$dir"/debs/*.deb; do
		dpkg-deb -x "$deb" "$root.tmp"
	done
	# The arch headers include the common ones by absolute path.
	sed -i "s|^include /usr/src/|include $root/usr/src/|" "$root.tmp/usr/src/linux-headers-$kver/Makefile"
	mv "$root.tmp" "$root"
	touch "$root/.unpacked-$lock_sum"
fi
vmlinuz=$root/boot/vmlinuz-$kver
[ -f "$vmlinuz" ] || die "the image package has no /boot/vmlinuz-$kver"
sed -n 's|^include \(.*\)$|\1|p' "$root/usr/src/linux-headers-$kver/Makefile" | grep -q "^$root/" ||
	die "headers Makefile of $kver does not point into $root"

# 3. The module.
key=$(
	{
		cat "$lock" "$kmod/build.sh" "$kmod/fs-fuse.sha256" "${BASH_SOURCE[0]}"
		cat "$repo"/bpf/kernel/*.patch
	} | sha256sum | cut -c1-16
)
out=$dir/kmod-$key
if [ ! -f "$out/BUILD-INFO" ]; then
	log "building the module (bpf/kernel/kmod/build.sh)"
	rm -rf "$out" "$out.tmp"
	nice "$kmod/build.sh" --kver "$kver" \
		--headers "$root/usr/src/linux-headers-$kver" \
		--headers-version "$(awk -v p="linux-headers-$kver" '$1 == p {print $2}' "$lock")" \
		--source "$root/usr/src/linux-source-6.1.tar.xz" --source-version "$srcver" \
		--out "$out.tmp" --patches "$repo/bpf/kernel" >&2
	mv "$out.tmp" "$out"
fi
version=$(sed -n 's/^version=//p' "$out/BUILD-INFO")

# 4. Installed as DKMS installs it; modprobe must now pick ours.
mods=$root/lib/modules/$kver
if ! cmp -s "$out/BUILD-INFO" "$mods/updates/dkms/BUILD-INFO"; then
	rm -rf "$mods/updates"
	mkdir -p "$mods/updates/dkms"
	cp "$out"/*.ko "$out/BUILD-INFO" "$mods/updates/dkms/"
	depmod -b "$root" "$kver"
fi
resolved=$(modprobe -d "$root" -S "$kver" --show-depends fuse | awk '$1 == "insmod" {print $2}' | tail -n 1)
[ "$resolved" = "$mods/updates/dkms/fuse.ko" ] ||
	die "modprobe resolves fuse to $resolved, not the module in updates/dkms"
log "modprobe resolves fuse to updates/dkms/fuse.ko ($version)"

# The guest's modules: what the scratch disk needs (virtio PCI and block,
# ext4, crc32c for its checksums), then fuse, in modprobe's order.
guest=$dir/guest-$key
if [ ! -f "$guest/lib/modules/load-order" ]; then
	rm -rf "$guest" "$guest.tmp"
	mkdir -p "$guest.tmp/lib/modules/$kver" "$guest.tmp/lib/modules/stock"
	: >"$guest.tmp/lib/modules/load-order"
	for m in virtio_pci virtio_blk crc32c_generic ext4 fuse; do
		modprobe -d "$root" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
	done | awk '!seen[$0]++' | while read -r path; do
		rel=${path#"$root"}
		mkdir -p "$guest.tmp$(dirname "$rel")"
		cp "$path" "$guest.tmp$rel"
		echo "$rel" >>"$guest.tmp/lib/modules/load-order"
	done
	# Ours for cuse and virtiofs, and the stock ones, which must not load
	# against our fuse.ko.
	cp "$mods/updates/dkms/cuse.ko" "$mods/updates/dkms/virtiofs.ko" "$guest.tmp/lib/modules/$kver/updates/dkms/"
	cp "$mods/kernel/fs/fuse/cuse.ko" "$mods/kernel/fs/fuse/virtiofs.ko" "$mods/kernel/fs/fuse/fuse.ko" \
		"$guest.tmp/lib/modules/stock/"
	# What `cryptfs kmod status` reads to tell which fuse.ko modprobe loads.
	cp "$mods"/modules.dep "$mods"/modules.builtin "$mods"/modules.order "$guest.tmp/lib/modules/$kver/"
	mv "$guest.tmp" "$guest"
fi
ln -sfn "$(basename "$guest")" "$dir/guest"
ln -sfn "$(basename "$out")" "$dir/kmod"
ln -sfn "root/boot/vmlinuz-$kver" "$dir/vmlinuz"
log "ready: $kver with fuse.ko $version"
echo "$dir"
