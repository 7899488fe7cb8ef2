#!/usr/bin/env bash
# Runs every Go fuzz target of the module for FUZZTIME each (make fuzz).
#
# go1.26's fuzz coordinator can fail a clean run at the end of a
# duration-based -fuzztime with a bare "context deadline exceeded"
# (golang/go#75804, fixed in go1.27). A failing input is always written to
# the package's testdata/fuzz/NAME/ directory, so a failure counts only when
# such a file appeared; the coordinator race is reported and the target run
# once more, and a second race is a failure too.
set -uo pipefail
go=${GO:-go}
fuzztime=${FUZZTIME:-60s}
cd "$(dirname "$0")/.."

# go test -list prints a package's names before its "ok PKG" line.
mapfile -t targets < <("$go" test -list 'Fuzz.*' ./... 2>/dev/null |
	awk '/^Fuzz/{n[++k]=$1} /^ok/{for(i=1;i<=k;i++)print $2":"n[i]; k=0}')
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no fuzz targets found" >&2; exit 1; }

corpus() { ls "$1/testdata/fuzz/$2" 2>/dev/null | sort; }

failed=0
for t in "${targets[@]}"; do
	pkg=${t%%:*} name=${t##*:}
	dir=$("$go" list -f '{{.Dir}}' "$pkg")
	for attempt in 1 2; do
		echo "== $name ($pkg) for $fuzztime"
		before=$(corpus "$dir" "$name")
		log=$(mktemp)
		"$go" test -run '^$' -fuzz "^$name\$" -fuzztime "$fuzztime" -fuzzminimizetime 10s "$pkg" 2>&1 | tee "$log"
		status=${PIPESTATUS[0]}
		new=$(comm -13 <(echo "$before") <(corpus "$dir" "$name"))
		race=0
		if [ "$status" != 0 ] && [ -z "$new" ] && grep -q '^    context deadline exceeded$' "$log"; then
			race=1
		fi
		rm -f "$log"
		if [ "$status" = 0 ]; then
			break
		elif [ "$race" = 1 ] && [ "$attempt" = 1 ]; then
			echo "fuzz: $name: the coordinator's end-of-fuzztime race (golang/go#75804), no failing input written; running it again"
		else
			echo "fuzz: $name FAILED${new:+: failing input testdata/fuzz/$name/$new}" >&2
			failed=1
			break
		fi
	done
done
exit $failed
