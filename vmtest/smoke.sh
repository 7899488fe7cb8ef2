#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# The `make vmtest` entry point: build (or reuse) the patched guest kernel,
# build the hook smoke test as a static binary, and run it in the guest.
# Extra arguments go to vmtest/run.sh (for example --timeout 900).
# Exit status: the smoke test's (0 = every check passed), see run.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

start=$(date +%s.%N)
kernel=$("$here/build-kernel.sh")
echo "vmtest: kernel ready after $(echo "$(date +%s.%N) - $start" | bc)s" >&2

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
(cd "$repo" && CGO_ENABLED=0 go build -o "$bin/hooktest" ./vmtest/hooktest)

status=0
"$here/run.sh" --kernel "$kernel" --bin "$bin/hooktest" "$@" -- hooktest || status=$?
exit "$status"
