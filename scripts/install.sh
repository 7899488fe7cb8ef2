#!/usr/bin/env bash
# make install / make uninstall: see the Makefile for the variables
# (PREFIX, DESTDIR, BINDIR, MANDIR, ...), which arrive in the environment.
#
# install puts the binary, the mount helper links, the manual pages and
# shell completions (generated from the binary's command tree), the
# systemd units and, when they exist, the PAM module and snippets under
# $DESTDIR, and writes a manifest of every file and link it installed and
# every directory it created ($MANIFEST, installed beside them). uninstall
# removes exactly those: files only if unchanged since install, then the
# directories it created if they are empty. Installing over an earlier
# install first removes that install's files, so nothing stale stays.
#
# Usage: scripts/install.sh install|uninstall
set -euo pipefail
umask 022

: "${PREFIX:?}" "${BINDIR:?}" "${MANDIR:?}" "${MOUNTHELPERDIR:?}" "${SYSCONFDIR:?}"
: "${SYSTEMDUNITDIR:?}" "${SYSTEMDUSERUNITDIR:?}" "${BASHCOMPDIR:?}" "${ZSHCOMPDIR:?}" "${FISHCOMPDIR:?}"
: "${PAMMODDIR:?}" "${PAMDOCDIR:?}" "${MANIFEST:?}" "${BIN:?}"
DESTDIR=${DESTDIR:-}
D=$DESTDIR
SRC=$(cd "$(dirname "$0")/.." && pwd)

die() { echo "install.sh: $*" >&2; exit 1; }

for v in PREFIX BINDIR MANDIR MOUNTHELPERDIR SYSCONFDIR SYSTEMDUNITDIR SYSTEMDUSERUNITDIR BASHCOMPDIR ZSHCOMPDIR FISHCOMPDIR PAMMODDIR PAMDOCDIR MANIFEST; do
	case ${!v} in
	/*) ;;
	*) die "$v=${!v} must be an absolute path" ;;
	esac
	case ${!v} in
	*/../* | */.. | */./* | */. | *//* | *[[:space:]]*) die "$v=${!v} must be a clean path without spaces" ;;
	esac
done

# The manifest: one entry per line, paths as on the target system
# (without DESTDIR):
#   d PATH          a directory install created
#   f SHA256 PATH   a file
#   l TARGET PATH   a symbolic link
entries=()

# mkdirs DIR: create DIR (under $D) and its missing parents, recording
# each one created.
mkdirs() {
	local dir=$1 missing=()
	[ -z "$D" ] || mkdir -p "$D"
	while [ ! -d "$D$dir" ]; do
		missing=("$dir" "${missing[@]}")
		dir=$(dirname "$dir")
	done
	for dir in "${missing[@]}"; do
		mkdir -m 0755 "$D$dir"
		entries+=("d $dir")
	done
}

# put MODE SRC DEST: install a file.
put() {
	local mode=$1 src=$2 dest=$3
	mkdirs "$(dirname "$dest")"
	install -m "$mode" "$src" "$D$dest"
	entries+=("f $(sha256sum <"$D$dest" | cut -d' ' -f1) $dest")
}

# link TARGET DEST: install a symbolic link.
link() {
	local target=$1 dest=$2
	mkdirs "$(dirname "$dest")"
	if [ -e "$D$dest" ] || [ -L "$D$dest" ]; then
		[ -L "$D$dest" ] || die "$D$dest exists and is not a link: not replacing it"
		rm -f "$D$dest"
	fi
	ln -s "$target" "$D$dest"
	entries+=("l $target $dest")
}

# subst SRC DEST: install a template with @BINDIR@ and @SYSCONFDIR@ filled in.
subst() {
	local tmp
	tmp=$(mktemp)
	sed -e "s|@BINDIR@|$BINDIR|g" -e "s|@SYSCONFDIR@|$SYSCONFDIR|g" "$1" >"$tmp"
	put 0644 "$tmp" "$2"
	rm -f "$tmp"
}

# check_manifest MANIFEST: refuse a manifest with a line that is not ours
# or a path that is not absolute and clean, before anything is removed.
check_manifest() {
	local kind a b path
	while read -r kind a b; do
		case $kind in
		f | l) path=$b ;;
		d) path=$a ;;
		*) die "$1: bad line: $kind $a $b" ;;
		esac
		case $path in
		/*) ;;
		*) die "$1: not an absolute path: $path" ;;
		esac
		case $path in
		*/../* | */.. | */./* | */.) die "$1: not a clean path: $path" ;;
		esac
	done <"$1"
}

# remove_files MANIFEST: remove the files and links of a manifest that are
# as install left them, and set manifest_dirs to the directories it lists,
# deepest first.
manifest_dirs=()
remove_files() {
	check_manifest "$1"
	local kind a b dirs=()
	while read -r kind a b; do
		case $kind in
		f)
			if [ -f "$D$b" ] && [ ! -L "$D$b" ]; then
				if [ "$(sha256sum <"$D$b" | cut -d' ' -f1)" = "$a" ]; then
					rm -f "$D$b"
				else
					echo "install.sh: keeping $D$b: changed since it was installed" >&2
				fi
			fi
			;;
		l)
			if [ -L "$D$b" ] && [ "$(readlink "$D$b")" = "$a" ]; then
				rm -f "$D$b"
			fi
			;;
		d) dirs+=("$a") ;;
		esac
	done <"$1"
	manifest_dirs=()
	if [ ${#dirs[@]} -gt 0 ]; then
		mapfile -t manifest_dirs < <(printf '%s\n' "${dirs[@]}" | sort -r)
	fi
}

do_install() {
	[ -x "$BIN" ] || die "$BIN not built (make build)"
	if [ -f "$D$MANIFEST" ]; then
		# An earlier install: remove its files; the directories it created
		# (those still there) stay on the list.
		remove_files "$D$MANIFEST"
		rm -f "$D$MANIFEST"
		local dir
		for dir in "${manifest_dirs[@]}"; do
			if [ -d "$D$dir" ] && [ ! -L "$D$dir" ]; then
				entries=("d $dir" "${entries[@]}")
			fi
		done
	fi
	stage=$(mktemp -d)
	trap 'rm -rf "$stage"' EXIT

	put 0755 "$BIN" "$BINDIR/cryptfs"
	# mount(8) runs /sbin/mount.fuse.cryptfs for type fuse.cryptfs (and
	# mount.cryptfs for type cryptfs); the binary is the helper by that name.
	link "$BINDIR/cryptfs" "$MOUNTHELPERDIR/mount.fuse.cryptfs"
	link "$BINDIR/cryptfs" "$MOUNTHELPERDIR/mount.cryptfs"

	"$BIN" gendoc --man "$stage/man" --bash "$stage/cryptfs.bash" --zsh "$stage/_cryptfs" \
		--fish "$stage/cryptfs.fish" ${MANDATE:+--date "$MANDATE"} >/dev/null
	local page
	for page in "$stage"/man/man*/*; do
		local sec
		sec=$(basename "$(dirname "$page")")
		if [ -L "$page" ]; then
			link "$(readlink "$page")" "$MANDIR/$sec/$(basename "$page")"
		else
			put 0644 "$page" "$MANDIR/$sec/$(basename "$page")"
		fi
	done
	put 0644 "$stage/cryptfs.bash" "$BASHCOMPDIR/cryptfs"
	put 0644 "$stage/_cryptfs" "$ZSHCOMPDIR/_cryptfs"
	put 0644 "$stage/cryptfs.fish" "$FISHCOMPDIR/cryptfs.fish"

	subst "$SRC/dist/systemd/cryptfs@.service.in" "$SYSTEMDUNITDIR/cryptfs@.service"
	subst "$SRC/dist/systemd/user/cryptfs@.service.in" "$SYSTEMDUSERUNITDIR/cryptfs@.service"

	# PAM (encrypted homes), when this tree has it: the module once built,
	# and the configuration snippets.
	if [ -f "$SRC/internal/pam/module/pam_cryptfs.so" ]; then
		put 0644 "$SRC/internal/pam/module/pam_cryptfs.so" "$PAMMODDIR/pam_cryptfs.so"
	elif [ -d "$SRC/internal/pam/module" ]; then
		echo "install.sh: internal/pam/module/pam_cryptfs.so is not built: the PAM module is not installed" >&2
	fi
	if [ -d "$SRC/dist/pam" ]; then
		local f
		while IFS= read -r -d '' f; do
			put 0644 "$f" "$PAMDOCDIR/${f#"$SRC/dist/pam/"}"
		done < <(find "$SRC/dist/pam" -type f -print0 | sort -z)
	fi

	# The manifest (not listed in itself; uninstall removes it last).
	mkdirs "$(dirname "$MANIFEST")"
	printf '%s\n' "${entries[@]}" >"$D$MANIFEST"
	chmod 0644 "$D$MANIFEST"
	echo "installed under ${D:-/} (manifest $D$MANIFEST)"
}

do_uninstall() {
	[ -f "$D$MANIFEST" ] || die "no manifest $D$MANIFEST: nothing installed with this PREFIX and DESTDIR"
	remove_files "$D$MANIFEST"
	rm -f "$D$MANIFEST"
	local dir
	for dir in "${manifest_dirs[@]}"; do
		rmdir "$D$dir" 2>/dev/null || echo "install.sh: keeping $D$dir: not empty" >&2
	done
	echo "uninstalled from ${D:-/}"
}

case ${1:-} in
install) do_install ;;
uninstall) do_uninstall ;;
*) die "usage: $0 install|uninstall" ;;
esac
