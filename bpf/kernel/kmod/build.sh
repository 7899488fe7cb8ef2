#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Build Debian 12's FUSE modules (fuse.ko, cuse.ko, virtiofs.ko) out of
# tree from linux-source-6.1's fs/fuse with the cryptfs fast-path patch,
# against the headers of one installed (or unpacked) Debian kernel.
#
# It refuses (exit 2, with what to do) to build anything that would not be
# the stock module plus the patch:
#   - the source's fs/fuse (and include/uapi/linux/fuse.h) must be exactly
#     the tree the patch was made for (sha256 in fs-fuse.sha256);
#   - the kernel's headers must be of the same Debian version as the
#     source (same package version, same upstream version, same fuse.h),
#     so the module is the kernel's own fs/fuse, patched.
#
# Usage: build.sh [--kver KVER] [--headers DIR] [--headers-version V]
#                 [--source TARBALL] [--source-version V] [--patches DIR]
#                 [--out DIR] [--work DIR] [--jobs N]
#        build.sh --print-source-hash [--source TARBALL]
#        build.sh --print-version [--patches DIR]
#
#   --kver KVER          kernel release to build for (default: uname -r)
#   --headers DIR        its kbuild tree (default /lib/modules/KVER/build)
#   --headers-version V  Debian version of linux-headers-KVER (default:
#                        asked from dpkg)
#   --source TARBALL     default /usr/src/linux-source-6.1.tar.xz
#   --source-version V   Debian version of that tarball (default: the
#                        installed linux-source-6.1, asked from dpkg)
#   --patches DIR        the patch series (default: ./patches next to this
#                        script if present, else bpf/kernel)
#   --out DIR            where the .ko files go (default ./out/KVER)
#   --work DIR           scratch tree (default: a temporary directory)
#
# Exit status: 0 built; 1 the build failed; 2 refused (see the message).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

kver=
headers=
headers_version=
source=/usr/src/linux-source-6.1.tar.xz
source_version=
patchdir=
out=
work=
jobs=$(nproc)
mode=build

usage() {
	sed -n '/^# Usage:/,/^# Exit status/{s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
	exit 2
}
log() { echo "kmod: $*" >&2; }
die() { echo "kmod: error: $*" >&2; exit 1; }
refuse() {
	echo "kmod: refusing to build: $1" >&2
	shift
	for line in "$@"; do echo "kmod:   $line" >&2; done
	exit 2
}

while [ $# -gt 0 ]; do
	case $1 in
	--kver) kver=$2; shift 2 ;;
	--headers) headers=$2; shift 2 ;;
	--headers-version) headers_version=$2; shift 2 ;;
	--source) source=$2; shift 2 ;;
	--source-version) source_version=$2; shift 2 ;;
	--patches) patchdir=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--work) work=$2; shift 2 ;;
	--jobs) jobs=$2; shift 2 ;;
	--print-source-hash) mode=hash; shift ;;
	--print-version) mode=version; shift ;;
	-h|--help) usage ;;
	*) echo "kmod: unknown argument $1" >&2; usage ;;
	esac
done

if [ -z "$patchdir" ]; then
	if [ -d "$here/patches" ]; then patchdir=$here/patches; else patchdir=$here/..; fi
fi
patchdir=$(cd "$patchdir" && pwd)
shopt -s nullglob
patches=("$patchdir"/*.patch)
shopt -u nullglob
[ ${#patches[@]} -gt 0 ] || die "no *.patch in $patchdir"

# The module's version: which patch series it carries.
patch_sha=$(cat "${patches[@]}" | sha256sum | cut -c1-64)
version=cryptfs-${patch_sha:0:12}
if [ "$mode" = version ]; then
	echo "$version"
	exit 0
fi

[ -f "$source" ] || refuse "$source not found" \
	"install the kernel source: apt-get install linux-source-6.1${headers_version:+=$headers_version}"

own_work=0
if [ -z "$work" ]; then
	work=$(mktemp -d)
	own_work=1
fi
cleanup() { [ "$own_work" = 1 ] && rm -rf "$work"; return 0; }
trap cleanup EXIT
mkdir -p "$work"
rm -rf "$work/pristine" "$work/tree"
mkdir -p "$work/pristine"

# fs/fuse, fuse.h, and what the patch touches besides (MAINTAINERS);
# Makefile for the upstream version.
top=$(tar -tJf "$source" 2>/dev/null | head -n 1 | cut -d/ -f1) || true
[ -n "$top" ] || die "cannot read $source"
log "unpacking fs/fuse from $source"
tar -xJf "$source" -C "$work/pristine" --strip-components=1 \
	"$top/fs/fuse" "$top/include/uapi/linux/fuse.h" "$top/MAINTAINERS" "$top/Makefile" ||
	die "cannot unpack fs/fuse from $source"

tree_hash() {
	(cd "$1" && find fs/fuse include/uapi/linux/fuse.h -type f -print0 | LC_ALL=C sort -z |
		xargs -0 sha256sum) | sha256sum | cut -c1-64
}
have_hash=$(tree_hash "$work/pristine")
if [ "$mode" = hash ]; then
	echo "$have_hash"
	exit 0
fi

# The pristine sources the patch was made for.
record=$here/fs-fuse.sha256
[ -f "$record" ] || die "$record missing"
want_hash=$(grep -v '^#' "$record" | awk 'NF {print $1; exit}')
want_from=$(grep -v '^#' "$record" | awk 'NF {$1 = ""; sub(/^ /, ""); print; exit}')

makefile_version() {
	awk -F' *= *' '$1 == "VERSION" {v = $2} $1 == "PATCHLEVEL" {p = $2}
		$1 == "SUBLEVEL" {s = $2} END {if (v != "") print v "." p "." s}' "$1"
}
source_upstream=$(makefile_version "$work/pristine/Makefile")
if [ -z "$source_version" ] && [ "$source" = /usr/src/linux-source-6.1.tar.xz ]; then
	source_version=$(dpkg-query -W -f '${Version}' linux-source-6.1 2>/dev/null) || source_version=
fi

if [ "$have_hash" != "$want_hash" ]; then
	refuse "fs/fuse in $source (${source_version:-version unknown}, upstream $source_upstream) is not the tree the cryptfs patch was made for ($want_from)." \
		"sha256 of fs/fuse + include/uapi/linux/fuse.h: $have_hash, the patch needs $want_hash." \
		"Either build against a kernel of that version (apt-get install linux-source-6.1=VERSION" \
		"linux-headers-...; the security archive keeps older versions), or port the patch to this" \
		"tree (bpf/kernel/README.md, 'Changing the patch'), check it, and record the new hash" \
		"in $record (build.sh --print-source-hash)."
fi
log "fs/fuse matches the tree the patch was made for ($want_from)"

# The kernel.
[ -n "$kver" ] || kver=$(uname -r)
[ -n "$headers" ] || headers=/lib/modules/$kver/build
if [ ! -f "$headers/Makefile" ]; then
	refuse "no kernel headers for $kver in $headers" \
		"install them: apt-get install linux-headers-$kver"
fi
headers=$(cd "$headers" && pwd)
# Debian splits the headers: the arch tree includes the common one.
common=$(sed -n 's|^include \(.*\)/Makefile$|\1|p' "$headers/Makefile" | head -n 1)
[ -n "$common" ] || common=$headers
[ -f "$common/Makefile" ] || refuse "$headers/Makefile includes $common/Makefile, which does not exist" \
	"install linux-headers-$kver completely (it depends on linux-headers-*-common)"
headers_release=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"$/\1/p' "$headers/include/generated/utsrelease.h" 2>/dev/null)
[ "$headers_release" = "$kver" ] ||
	refuse "$headers is for kernel '${headers_release:-unknown}', not $kver" \
		"pass --headers for the right kernel or apt-get install linux-headers-$kver"
headers_upstream=$(makefile_version "$common/Makefile")
if [ -z "$headers_version" ]; then
	headers_version=$(dpkg-query -W -f '${Version}' "linux-headers-$kver" 2>/dev/null) || headers_version=
fi

[ -n "$source_version" ] || refuse "the Debian version of $source is unknown" \
	"install it as the linux-source-6.1 package or pass --source-version"
[ -n "$headers_version" ] || refuse "the Debian version of the headers for $kver is unknown" \
	"install them as the linux-headers-$kver package or pass --headers-version"
if [ "$headers_version" != "$source_version" ] || [ "$headers_upstream" != "$source_upstream" ]; then
	refuse "kernel $kver is Debian $headers_version (upstream $headers_upstream), but the source is linux-source-6.1 $source_version (upstream $source_upstream):" \
		"a module built from other sources than the kernel's own would not be the stock module plus the patch." \
		"Install the source of this kernel: apt-get install linux-source-6.1=$headers_version" \
		"(or upgrade the kernel to $source_version and build for that one)."
fi
if ! cmp -s "$common/include/uapi/linux/fuse.h" "$work/pristine/include/uapi/linux/fuse.h"; then
	refuse "include/uapi/linux/fuse.h of the headers for $kver differs from the source's" \
		"the headers and the source are not of the same kernel; reinstall linux-headers-$kver and linux-source-6.1=$headers_version"
fi
log "kernel $kver: Debian $headers_version, upstream $headers_upstream, same as the source"

# Patch a copy.
cp -a "$work/pristine" "$work/tree"
for p in "${patches[@]}"; do
	log "applying $(basename "$p")"
	(cd "$work/tree" && patch -p1 -s -f --fuzz=0 --no-backup-if-mismatch <"$p" >&2) ||
		refuse "$(basename "$p") does not apply to fs/fuse of $source_version" \
			"the recorded hash matched, so the patch itself changed: regenerate it (bpf/kernel/README.md)"
done

# The build: the kernel's own fs/fuse Makefile (fuse, cuse and virtiofs as
# the kernel's config has them), plus the fast path and a version tag.
# The headers' config has no CONFIG_FUSE_FASTPATH: set it for Kbuild and
# the preprocessor. <linux/fuse_fastpath.h> comes from the patched tree.
fuse=$work/tree/fs/fuse
cat >"$fuse/cryptfs_kmod.c" <<-EOF
	// SPDX-License-Identifier: GPL-2.0
	/* Generated by cryptfs bpf/kernel/kmod/build.sh. */
	#include <linux/module.h>

	MODULE_VERSION("$version");
	MODULE_INFO(cryptfs_patch, "$patch_sha");
	MODULE_INFO(cryptfs_source, "linux-source-6.1 $source_version");
EOF
cat >"$fuse/Kbuild" <<-'EOF'
	include $(src)/Makefile
	fuse-y += cryptfs_kmod.o
	ccflags-y += -DCONFIG_FUSE_FASTPATH=1 -I$(src)/../../include/uapi
EOF

log "make -C $headers M=fs/fuse modules"
start=$(date +%s)
if ! make -C "$headers" M="$fuse" CONFIG_FUSE_FASTPATH=y -j"$jobs" modules >"$work/build.log" 2>&1; then
	grep -E 'error|Error|undefined' "$work/build.log" | head -40 >&2 || true
	cp "$work/build.log" "${out:-.}/build.log" 2>/dev/null || true
	die "module build failed (log: $work/build.log)"
fi
log "built in $(($(date +%s) - start)) s"

# What came out must be for this kernel, carry the hook and the version.
modinfo_field() { # FILE FIELD: without the kmod tools, read .modinfo
	if command -v modinfo >/dev/null; then
		modinfo -F "$2" "$1"
	else
		objcopy -O binary --only-section=.modinfo "$1" /dev/stdout | tr '\0' '\n' | sed -n "s/^$2=//p"
	fi
}
built=()
for m in fuse cuse virtiofs; do
	[ -f "$fuse/$m.ko" ] && built+=("$m")
done
[ -f "$fuse/fuse.ko" ] || die "the build made no fuse.ko (is CONFIG_FUSE_FS=m in the kernel's config?)"
for m in "${built[@]}"; do
	vm=$(modinfo_field "$fuse/$m.ko" vermagic | awk '{print $1}')
	[ "$vm" = "$kver" ] || die "$m.ko has vermagic '$vm', want $kver"
done
[ "$(modinfo_field "$fuse/fuse.ko" version)" = "$version" ] || die "fuse.ko lacks version $version"
grep -q fuse_fastpath_serve "$fuse/fastpath.o" 2>/dev/null || nm "$fuse/fastpath.o" | grep -q fuse_fastpath_serve ||
	die "the fast path was not compiled in"

[ -n "$out" ] || out=$PWD/out/$kver
mkdir -p "$out"
# Stripped of debug information, as Debian's own modules are
# (modules_install INSTALL_MOD_STRIP=1; DKMS strips too).
for m in "${built[@]}"; do
	strip --strip-debug -o "$out/$m.ko" "$fuse/$m.ko"
done
cat >"$out/BUILD-INFO" <<-EOF
	version=$version
	kernel=$kver
	debian_version=$headers_version
	upstream=$headers_upstream
	source_hash=$have_hash
	patch_sha256=$patch_sha
	modules=${built[*]}
EOF
log "$version for $kver: ${built[*]} in $out"
