#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Register the cryptfs FUSE modules with DKMS and install them for a kernel,
# or remove them again. Run as root; see README.md.
#
# Usage: dkms.sh install [KVER]   (default: the running kernel)
#        dkms.sh remove
#
# install copies build.sh, dkms.conf, fs-fuse.sha256 and the patch series to
# /usr/src/cryptfs-fuse-VERSION, removes any other registered version, then
# runs `dkms add` and `dkms install -k KVER`. DKMS rebuilds the modules for
# every kernel installed later (AUTOINSTALL). The running fuse module is not
# replaced until it is reloaded (modprobe -r fuse && modprobe fuse, with no
# FUSE file system mounted) or the machine reboots.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
name=cryptfs-fuse

die() { echo "dkms.sh: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "run as root"
command -v dkms >/dev/null || die "dkms is not installed (apt-get install dkms)"

# Registered versions of ours, one per line.
registered() {
	dkms status -m "$name" 2>/dev/null | sed -n "s|^$name/\([^,:]*\).*|\1|p" | sort -u
}

case ${1:-} in
install)
	kver=${2:-$(uname -r)}
	version=$("$here/build.sh" --print-version | sed 's/^cryptfs-//')
	for v in $(registered); do
		[ "$v" = "$version" ] && continue
		echo "dkms.sh: removing $name/$v"
		dkms remove -m "$name" -v "$v" --all
		rm -rf "/usr/src/$name-$v"
	done
	if registered | grep -qxF "$version"; then
		dkms remove -m "$name" -v "$version" --all
	fi
	src=/usr/src/$name-$version
	rm -rf "$src"
	mkdir -p "$src/patches"
	cp "$here/build.sh" "$here/fs-fuse.sha256" "$here/README.md" "$src/"
	if [ -d "$here/patches" ]; then
		cp "$here"/patches/*.patch "$src/patches/"
	else
		cp "$here"/../*.patch "$src/patches/"
	fi
	sed "s/@VERSION@/$version/" "$here/dkms.conf" >"$src/dkms.conf"
	dkms add -m "$name" -v "$version"
	dkms install -m "$name" -v "$version" -k "$kver"
	echo "dkms.sh: installed $name/$version for $kver."
	echo "dkms.sh: modprobe now resolves fuse to: $(modprobe -S "$kver" --show-depends fuse 2>/dev/null | awk '{print $2}' | tail -n 1)"
	;;
remove)
	for v in $(registered); do
		dkms remove -m "$name" -v "$v" --all
		rm -rf "/usr/src/$name-$v"
	done
	;;
*)
	sed -n '/^# Usage:/,/^set /{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
	;;
esac
