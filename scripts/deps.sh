#!/usr/bin/env bash
# Installs, on Debian, the system packages the tests need and that are
# missing: FUSE userspace tools; restic, rsync and gocryptfs (backup,
# reverse-mode and path-length tests); pamtester, the PAM headers and a C
# compiler (pam_cryptfs.so and the PAM tests). Tests that still lack a tool
# skip and name it.
set -u
need=()
have() { command -v "$1" >/dev/null; }
have fusermount3 || need+=(fuse3)
for t in restic rsync gocryptfs pamtester; do have "$t" || need+=("$t"); done
have cc || need+=(gcc)
[ -e /usr/include/security/pam_modules.h ] || need+=(libpam0g-dev)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! have apt-get; then
	echo "missing ${need[*]} (install them as root; the tests that need them skip)" >&2
	exit 0
fi
echo "installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q "${need[@]}" >/dev/null 2>&1 ||
	{ apt-get update -q >/dev/null && apt-get install -y -q "${need[@]}" >/dev/null; } ||
	echo "could not install ${need[*]}: the tests that need them skip" >&2
exit 0
