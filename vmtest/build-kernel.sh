#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build the cryptfs qemu guest kernel: Debian's linux-source-6.1 with the
# patches from bpf/kernel/*.patch, configured from tinyconfig plus
# vmtest/guest.config.  Prints the path of the built vmlinux on stdout (the
# only line on stdout); progress goes to stderr.
#
# Cache (outside the clone, $CRYPTFS_VMTEST_CACHE, default
# /var/cache/cryptfs-vmtest):
#   out/<key>/vmlinux   one result per key, where key = sha256 of the kernel
#                       source package version, this script, the patch
#                       files and the config fragment.  An existing result
#                       is reused at once (an unchanged re-run takes
#                       milliseconds).
#   tree-<version>/     one persistent source tree per source version,
#                       built in place.  When the patches change, the old
#                       ones are reversed and the new ones applied, so make
#                       rebuilds only what changed (seconds instead of a
#                       cold build of several minutes).  If anything about
#                       the tree looks wrong it is unpacked again.
#
# Usage: vmtest/build-kernel.sh [--patches DIR] [--config FILE] [--no-deps]
#                               [--jobs N] [--clean]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

patchdir=$repo/bpf/kernel
fragment=$here/guest.config
install_deps=1
jobs=$(nproc)
clean=0
cache=${CRYPTFS_VMTEST_CACHE:-/var/cache/cryptfs-vmtest}
srcpkg=linux-source-6.1
tarball=/usr/src/$srcpkg.tar.xz

usage() {
	sed -n '/^# Usage:/,/^set /{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--patches) patchdir=$(cd "$2" && pwd); shift 2 ;;
	--config) fragment=$(cd "$(dirname "$2")" && pwd)/$(basename "$2"); shift 2 ;;
	--no-deps) install_deps=0; shift ;;
	--jobs) jobs=$2; shift 2 ;;
	--clean) clean=1; shift ;;
	-h|--help) usage ;;
	*) echo "build-kernel.sh: unknown argument $1" >&2; usage ;;
	esac
done

log() { echo "build-kernel: $*" >&2; }
die() { echo "build-kernel: error: $*" >&2; exit 1; }

# Debian packages the build (and vmtest/run.sh) needs, by the command or
# file that proves each is there.
ensure_deps() {
	local need=() pkg probe
	while read -r pkg probe; do
		[ -e "$probe" ] || command -v "$probe" >/dev/null 2>&1 || need+=("$pkg")
	done <<-EOF
		$srcpkg $tarball
		build-essential gcc
		build-essential make
		bc bc
		flex flex
		bison bison
		libelf-dev /usr/include/libelf.h
		libssl-dev /usr/include/openssl/ssl.h
		cpio cpio
		xz-utils xz
		perl perl
		python3 python3
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

ensure_deps

srcver=$(dpkg-query -W -f '${Version}' "$srcpkg" 2>/dev/null) || die "$srcpkg is not installed"
[ -f "$fragment" ] || die "config fragment $fragment not found"
shopt -s nullglob
patches=("$patchdir"/*.patch)
shopt -u nullglob

# The key covers everything that decides the result.
key=$(
	{
		echo "src $srcpkg $srcver"
		echo "script"; cat "${BASH_SOURCE[0]}"
		echo "config"; cat "$fragment"
		for p in "${patches[@]}"; do echo "patch $(basename "$p")"; cat "$p"; done
	} | sha256sum | cut -c1-64
)
out=$cache/out/$key
if [ "$clean" = 0 ] && [ -s "$out/vmlinux" ]; then
	log "cached $out/vmlinux"
	echo "$out/vmlinux"
	exit 0
fi

mkdir -p "$cache/out"
exec 9>"$cache/lock"
flock 9

tree=$cache/tree-$srcver
applied=$tree/.cryptfs-applied.patch

unpack() {
	log "unpacking $tarball into $tree"
	rm -rf "$tree" "$tree.tmp"
	mkdir -p "$tree.tmp"
	tar -xJf "$tarball" -C "$tree.tmp" --strip-components=1
	: >"$tree.tmp/.cryptfs-applied.patch"
	mv "$tree.tmp" "$tree"
}

[ "$clean" = 1 ] && rm -rf "$tree"
[ -f "$applied" ] || unpack

# Bring the tree to exactly the wanted patches.
want=$(mktemp)
trap 'rm -f "$want"' EXIT
for p in "${patches[@]}"; do cat "$p"; done >"$want"
if ! cmp -s "$want" "$applied"; then
	if [ -s "$applied" ]; then
		log "reversing the previously applied patches"
		if ! (cd "$tree" && patch -p1 -R -s -f --no-backup-if-mismatch <"$applied" >&2); then
			log "reverse failed; starting from a fresh tree"
			unpack
		fi
		: >"$applied"
	fi
	for p in "${patches[@]}"; do
		log "applying $(basename "$p")"
		(cd "$tree" && patch -p1 -s -f --no-backup-if-mismatch <"$p" >&2) ||
			die "$(basename "$p") does not apply to $srcpkg $srcver"
	done
	cp "$want" "$applied"
fi

# Configure: tinyconfig + fragment, then check every requested value held.
# Kbuild rebuilds only what depends on symbols that changed, so this is
# cheap when nothing did.
log "configuring (tinyconfig + $(basename "$fragment"))"
[ -f "$tree/.config" ] && cp -p "$tree/.config" "$tree/.cryptfs-config.prev"
if ! (
	cd "$tree"
	make -s tinyconfig
	scripts/kconfig/merge_config.sh -m .config "$fragment"
	make -s olddefconfig
) >"$tree/.cryptfs-config.log" 2>&1; then
	cat "$tree/.cryptfs-config.log" >&2
	die "configuration failed"
fi
bad=0
while IFS= read -r line; do
	case $line in
	CONFIG_*=*)
		grep -qxF "$line" "$tree/.config" || { log "config: $line did not survive olddefconfig"; bad=1; }
		;;
	"# CONFIG_"*" is not set")
		sym=${line#\# }; sym=${sym%% *}
		if grep -q "^$sym=" "$tree/.config"; then log "config: $sym should be unset"; bad=1; fi
		;;
	esac
done <"$fragment"
[ "$bad" = 0 ] || die "config fragment $fragment does not hold (missing dependency or patch?)"
# An unchanged .config keeps its old time stamp, so make skips syncconfig.
if cmp -s "$tree/.config" "$tree/.cryptfs-config.prev"; then
	touch -r "$tree/.cryptfs-config.prev" "$tree/.config"
fi
rm -f "$tree/.cryptfs-config.prev"

log "make -j$jobs vmlinux (cold: several minutes; incremental: seconds)"
start=$(date +%s)
mkdir -p "$out.tmp"
if ! (cd "$tree" && make -j"$jobs" vmlinux) >"$out.tmp/build.log" 2>&1; then
	grep -E 'error|Error' "$out.tmp/build.log" | head -40 >&2 || true
	die "kernel build failed; see $out.tmp/build.log"
fi
log "built in $(($(date +%s) - start)) s"
cp "$tree/vmlinux" "$tree/.config" "$out.tmp/"
cp "$tree/System.map" "$out.tmp/" 2>/dev/null || true
rm -rf "$out"
mv "$out.tmp" "$out"
echo "$out/vmlinux"
