#!/usr/bin/env bash
# Checks what git tracks: no file over 1 MiB and no build output (an
# executable binary, an object or archive). Part of `make test`; prints
# each offender with its size and type and fails if there is one.
set -euo pipefail
cd "$(dirname "$0")/.."

limit=$((1 << 20))
bad=0
while IFS= read -r -d '' f; do
	[[ -f $f ]] || continue # deleted in the work tree, not yet committed
	size=$(stat -c %s -- "$f")
	if ((size > limit)); then
		echo "repocheck: $f is $size bytes, over the 1 MiB limit (build it from code instead)" >&2
		bad=1
	fi
	case $(head -c 4 -- "$f" | od -An -tx1 | tr -d ' \n') in
	7f454c46 | 213c6172 | cffaedfe | 4d5a*) # ELF, ar archive, Mach-O, PE
		echo "repocheck: $f is build output ($(file -b -- "$f" 2>/dev/null || echo binary)); delete it and ignore it" >&2
		bad=1
		;;
	esac
done < <(git ls-files -z)
if ((bad)); then
	exit 1
fi
echo "repocheck: $(git ls-files | wc -l) tracked files, none over 1 MiB, no build output"
