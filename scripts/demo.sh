#!/usr/bin/env bash
# The cryptfs demo: create an encrypted directory, mount it, use it, show
# what a backup of the cipher tree sees and the request statistics, read
# everything back, unmount and verify the cipher tree offline.
# Every command is printed before it runs, quoted so that it can be copied
# and run as it is (DEMO_KEEP=1 keeps the demo's directory to try them
# afterwards).
# Usage: scripts/demo.sh [path/to/cryptfs]   (make demo builds it first)
set -euo pipefail
BIN=$(realpath "${1:-bin/cryptfs}")
WORK=$(mktemp -d /tmp/cryptfs-demo.XXXXXX)
CIPHER=$WORK/cipher MNT=$WORK/plain PASS=$WORK/password
cleanup() {
	if mountpoint -q "$MNT" 2>/dev/null; then "$BIN" unmount "$MNT" || "$BIN" unmount --force "$MNT"; fi
	if [ "${DEMO_KEEP:-}" = 1 ]; then
		echo "kept $WORK (password in $PASS)"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
# quote prints one word for the shell: as it is when that is safe, else in
# single quotes.
quote() {
	if [[ $1 =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then printf '%s' "$1"
	else printf "'%s'" "${1//\'/\'\\\'\'}"; fi
}
# run prints a command, quoted so that it can be copied, and runs it.
run() { printf '$'; for a in "$@"; do printf ' '; quote "$a"; done; printf '\n'; "$@"; }
# sh_run prints a shell command line as it is and runs it with bash.
sh_run() { printf '$ %s\n' "$1"; bash -c "$1"; }

echo 'demo password, never use it for real' > "$PASS"

step "1. init: a new encrypted directory (Argon2id, prints the recovery key once)"
run "$BIN" init --passfile "$PASS" "$CIPHER"

step "2. mount it (the daemon goes to the background once the mount answers)"
run mkdir -p "$MNT"
run "$BIN" mount --passfile "$PASS" "$CIPHER" "$MNT"
run "$BIN" status "$MNT"

step "3. use it like any directory"
sh_run "mkdir -p '$MNT/Documents/taxes' '$MNT/Photos'"
sh_run "echo 'Dear diary, the secret is 42.' > '$MNT/Documents/diary.txt'"
sh_run "seq 1 100000 > '$MNT/Documents/taxes/2026.csv'"
sh_run "head -c 3000000 /dev/urandom > '$MNT/Photos/holiday.jpg'"
sh_run "ln -s ../Documents/diary.txt '$MNT/Photos/note'"
sh_run "setfattr -n user.tag -v private '$MNT/Documents/diary.txt' 2>/dev/null || python3 -c 'import os,sys; os.setxattr(sys.argv[1], \"user.tag\", b\"private\")' '$MNT/Documents/diary.txt' 2>/dev/null || echo '(neither setfattr nor python3: no xattr)'"
run ls -lR "$MNT"

step "4. what a backup or sync tool sees: the cipher tree (names, sizes, no plaintext)"
run find "$CIPHER" -printf '%M %8s  %P\n'
if grep -rq "Dear diary" "$CIPHER"; then echo "PLAINTEXT FOUND IN THE CIPHER TREE" >&2; exit 1; fi
sh_run "grep -rl 'Dear diary' '$CIPHER' || echo 'the diary text is nowhere in the cipher tree'"

step "5. requests: stat every file twice, then ask the daemon what reached it"
tier=$("$BIN" status --json "$MNT" | sed -n 's/.*"fast_path": "\(.*\)",/\1/p')
sh_run "find '$MNT' -exec stat -c %s {} + >/dev/null"
run "$BIN" stats "$MNT"
sh_run "find '$MNT' -exec stat -c %s {} + >/dev/null"
run "$BIN" stats "$MNT"
cat <<TEXT

How to read this: each row is a kind of FUSE request. "upcalls" counts the
requests the kernel sent to the daemon (counted by the kernel's fuse
tracepoints when there are any, else by the daemon); "errors" the ones that
failed (ENOENT-like answers are not errors); p50/p99 are the latency
buckets. This mount runs the ${tier} tier.
TEXT
if [ "$tier" = ebpf ]; then
	cat <<'TEXT'
"fast-path hits" counts LOOKUP, GETATTR and GETXATTR requests that the
eBPF program answered inside the kernel: they never reached the daemon.
TEXT
else
	cat <<'TEXT'
"fast-path hits" is 0 here: those count requests answered by the eBPF
program inside the kernel, which needs the cryptfs kernel hook (make
kmod, bpf/kernel/kmod/README.md; docs/fast-path.md) and --fast-path=ebpf.
This stock kernel has no hook, so --fast-path=auto chose kernel-cache:
the daemon lets the kernel cache what it answered and invalidates exactly
what changes. Compare the two tables: the second pass of stat over every
file added (almost) no LOOKUP or GETATTR upcalls, because the kernel's
caches answered it.
TEXT
fi

step "6. read everything back"
run cat "$MNT/Documents/diary.txt" "$MNT/Photos/note"
run md5sum "$MNT/Documents/taxes/2026.csv"
sh_run "seq 1 100000 | md5sum"

step "7. unmount (keys wiped) and verify every block, name and xattr offline"
run "$BIN" unmount "$MNT"
run "$BIN" fsck --passfile "$PASS" "$CIPHER"
step "done"
