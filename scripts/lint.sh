#!/usr/bin/env bash
# uringrace lint: kernel style for kmod/ and the UAPI header, clang-format for
# the C++ driver, shellcheck for shell. Exit 1 on any finding.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
CACHE=${URINGRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uringrace}
rc=0

cp=$(find "$CACHE/src" -maxdepth 3 -path '*linux-source-6.12*/scripts/checkpatch.pl' \
	2>/dev/null | sort | tail -n 1)
[ -n "$cp" ] || cp=$(find "$CACHE/src" -maxdepth 3 -path '*/scripts/checkpatch.pl' \
	2>/dev/null | sort | tail -n 1)
if [ -z "$cp" ]; then
	echo "lint: no kernel tree in $CACHE/src for checkpatch.pl (run make kernel)" >&2
	rc=1
else
	for f in $(git ls-files 'kmod/*.c' 'kmod/*.h' 'include/uapi/linux/*.h'); do
		[ -e "$f" ] || continue
		if ! out=$(perl "$cp" --no-tree --quiet --show-types -f "$f" 2>&1); then
			echo "$out"
			rc=1
		fi
	done
fi

mapfile -t cxx < <(git ls-files 'user/*.cpp' 'user/*.hpp' 'user/*.h' 'user/**/*.cpp' \
	'user/**/*.hpp' 2>/dev/null)
if [ ${#cxx[@]} -gt 0 ] && ! clang-format --dry-run --Werror "${cxx[@]}"; then
	rc=1
fi

mapfile -t sh < <(git ls-files '*.sh' .ci/run guest/init)
if ! shellcheck -x "${sh[@]}"; then
	rc=1
fi
[ $rc -eq 0 ] && echo "lint: clean"
exit $rc
