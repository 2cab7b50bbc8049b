#!/usr/bin/env bash
# Runs every fuzz target of the module, one at a time, for FUZZTIME each
# (default 10s; anything `go test -fuzztime` takes: 30s, 1m, 5000x), and
# prints the executions of each target and their total. Fails when a target
# fails (the failing input is written to the package's
# testdata/fuzz/<Target>/ by go test) or when no target is found.
#
# Targets are discovered with `go test -list '^Fuzz' ./...`; go test -fuzz
# takes one target of one package per invocation.
#
#   scripts/fuzz.sh                 # every target, 10 s each
#   FUZZTIME=1m scripts/fuzz.sh     # longer
#   scripts/fuzz.sh ./image/        # only the targets of these packages
set -euo pipefail

cd "$(dirname "$0")/.."
GO=${GO:-go}
FUZZTIME=${FUZZTIME:-10s}
pkgs=("$@")
[[ ${#pkgs[@]} -gt 0 ]] || pkgs=(./...)

logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# `go test -list` prints each package's matching names, then "ok <pkg> ...".
if ! "$GO" test -run '^$' -list '^Fuzz' "${pkgs[@]}" >"$logs/list" 2>&1; then
	cat "$logs/list" >&2
	echo "fuzz.sh: listing the fuzz targets failed" >&2
	exit 1
fi
targets=() # "package target"
pending=()
while IFS= read -r line; do
	if [[ $line =~ ^Fuzz[A-Za-z0-9_]*$ ]]; then
		pending+=("$line")
	elif [[ $line =~ ^ok[[:space:]]+([^[:space:]]+) ]]; then
		for name in "${pending[@]}"; do
			targets+=("${BASH_REMATCH[1]} $name")
		done
		pending=()
	fi
done <"$logs/list"
if [[ ${#targets[@]} -eq 0 ]]; then
	echo "fuzz.sh: no fuzz targets found in ${pkgs[*]}" >&2
	exit 1
fi

echo "fuzz.sh: ${#targets[@]} targets, $FUZZTIME each"
total=0
failed=0
summary=()
for t in "${targets[@]}"; do
	read -r pkg name <<<"$t"
	log="$logs/$name.log"
	start=$SECONDS
	status=ok
	if ! "$GO" test -run '^$' -fuzz "^${name}\$" -fuzztime "$FUZZTIME" "$pkg" >"$log" 2>&1; then
		status=FAIL
		# go test -fuzz sometimes reports "context deadline exceeded" when
		# -fuzztime ends while a worker is busy, with no failing input: that
		# is the fuzzer's own timeout (golang/go#48591, #56238), not a bug
		# found in our code. Anything else, or any failing input, fails.
		if grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written\|panic:\|--- FAIL: .*\n.*_test.go' "$log" && ! grep -q '_test.go:[0-9]*:' "$log"; then
			status=ok
			echo "fuzz.sh: $name: the fuzzer's own deadline expired (no failing input); counted as passed" >&2
		else
			failed=$((failed + 1))
		fi
	fi
	# The last progress line holds the final count:
	# "fuzz: elapsed: 10s, execs: 123456 (12345/sec), new interesting: ..."
	execs=$(sed -n 's/^fuzz: elapsed: .*, execs: \([0-9]*\) .*/\1/p' "$log" | tail -n 1)
	execs=${execs:-0}
	total=$((total + execs))
	line=$(printf '%-4s %-24s %-45s %12s execs  %4ss' "$status" "$name" "$pkg" "$execs" $((SECONDS - start)))
	summary+=("$line")
	echo "$line"
	if [[ $status == FAIL ]]; then
		echo "---- $name ($pkg) ----"
		tail -n 40 "$log"
		echo "----"
	fi
done

echo
echo "fuzz.sh: summary ($FUZZTIME per target)"
printf '%s\n' "${summary[@]}"
printf '%-4s %-24s %-45s %12s execs\n' "" "total" "" "$total"
if [[ $failed -gt 0 ]]; then
	echo "fuzz.sh: $failed of ${#targets[@]} targets failed" >&2
	exit 1
fi
