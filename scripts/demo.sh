#!/usr/bin/env bash
# The cryptfs demo: create an encrypted directory, mount it, use it, show
# what a backup of the cipher tree sees and the fast-path statistics, read
# everything back, unmount and verify the cipher tree offline.
# Usage: scripts/demo.sh [path/to/cryptfs]   (make demo builds it first)
set -euo pipefail
BIN=$(realpath "${1:-bin/cryptfs}")
WORK=$(mktemp -d /tmp/cryptfs-demo.XXXXXX)
CIPHER=$WORK/cipher MNT=$WORK/plain PASS=$WORK/password
cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then "$BIN" unmount "$MNT" || umount -l "$MNT"; fi
	rm -rf "$WORK"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

echo 'demo password, never use it for real' > "$PASS"

step "1. init: a new encrypted directory (Argon2id, prints the recovery key once)"
run "$BIN" init --passfile "$PASS" "$CIPHER"

step "2. mount it (the daemon goes to the background once the mount answers)"
mkdir -p "$MNT"
run "$BIN" mount --passfile "$PASS" "$CIPHER" "$MNT"
run "$BIN" status "$MNT"

step "3. use it like any directory"
mkdir -p "$MNT/Documents/taxes" "$MNT/Photos"
echo "Dear diary, the secret is 42." > "$MNT/Documents/diary.txt"
seq 1 100000 > "$MNT/Documents/taxes/2026.csv"
head -c 3000000 /dev/urandom > "$MNT/Photos/holiday.jpg"
ln -s ../Documents/diary.txt "$MNT/Photos/note"
python3 -c "import os; os.setxattr('$MNT/Documents/diary.txt', 'user.tag', b'private')" 2>/dev/null || true
run ls -lR "$MNT"

step "4. what a backup or sync tool sees: the cipher tree (names, sizes, no plaintext)"
run find "$CIPHER" -printf '%M %8s  %P\n'
if grep -rq "Dear diary" "$CIPHER"; then echo "PLAINTEXT FOUND IN THE CIPHER TREE" >&2; exit 1; fi
echo "(grep for the diary's text in the cipher tree: not found)"

step "5. metadata fast path: stat every file twice; the second pass is served from the kernel cache"
for pass in 1 2; do find "$MNT" -exec stat -c %s {} + >/dev/null; done
run "$BIN" stats "$MNT"

step "6. read everything back"
run cat "$MNT/Documents/diary.txt" "$MNT/Photos/note"
run md5sum "$MNT/Documents/taxes/2026.csv"
seq 1 100000 | md5sum

step "7. unmount (keys wiped) and verify every block, name and xattr offline"
run "$BIN" unmount "$MNT"
run "$BIN" fsck --passfile "$PASS" "$CIPHER"
step "done"
