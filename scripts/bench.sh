#!/usr/bin/env bash
# make bench: measures osimagefs against curl and local-disk baselines
# (test/bench) and writes the results into BENCHMARKS.md.
#
# Usage: scripts/bench.sh [test/bench flags]   e.g. -size 256MiB -runs 1
#        make bench BENCH_FLAGS="-size 256MiB -runs 1"
#        scripts/bench.sh -only boot -boot-runs 1 -out -   (one scenario alone)
# The boot scenario (issue 11) also needs qemu-system-x86_64, qemu-block-extra,
# nbdkit and the guest kernel in .cache/kernel (scripts/provision.sh).
# Needs root (FUSE mounts, drop_caches) and bin/osimagefs (make build).
# Everything it starts (registry, proxies, mounts) is torn down on exit,
# error or Ctrl-C.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
cd "$REPO"

[ "$(id -u)" = 0 ] || { echo "bench: needs root (FUSE mounts, /proc/sys/vm/drop_caches)" >&2; exit 1; }
[ -x bin/osimagefs ] || { echo "bench: bin/osimagefs missing; run make bench (or make build)" >&2; exit 1; }

# The command shown in BENCHMARKS.md.
if [ -z "${BENCH_COMMAND:-}" ]; then
	if [ -n "${MAKELEVEL:-}" ]; then
		BENCH_COMMAND="make bench${BENCH_FLAGS:+ BENCH_FLAGS=\"$BENCH_FLAGS\"}"
	else
		BENCH_COMMAND="scripts/bench.sh${BENCH_FLAGS:+ $BENCH_FLAGS}${*:+ $*}"
	fi
fi
export BENCH_COMMAND

TMP="$(mktemp -d /tmp/osimagefs-benchbin.XXXXXX)"
trap 'rm -rf "$TMP"' EXIT
go build -o "$TMP/bench" ./test/bench
# shellcheck disable=SC2086 # BENCH_FLAGS is a list of flags.
"$TMP/bench" -bin "$REPO/bin/osimagefs" -out "$REPO/BENCHMARKS.md" ${BENCH_FLAGS:-} "$@"
