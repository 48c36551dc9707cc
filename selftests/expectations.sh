#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Description: the expectation check of real_uring.sh can fail. The races the
# tree's expectation file lists as expected (known to be in this tree) are
# turned into forbidden ones, and the io-wq storm must then fail naming one of
# them. A tree whose file lists no expected race skips: there is nothing known
# to be present that the check could be shown to catch. The storm's threads
# share their credentials (--shared-creds), as plain threads do: the race on
# the shared cred's reference (prep-async-work) is one every tree lists.
# KTAP on stdout; 0 pass, 1 fail, 4 skip.

HERE=$(dirname "$0")
# shellcheck source=selftests/lib.sh
. "$HERE/lib.sh"
find_expect

echo "TAP version 13"
[ -x "$DRV" ] || missing "no driver at $DRV"
if [ -z "$EXPECT" ] || ! grep -q '^expected' "$EXPECT"; then
	echo "1..0 # SKIP no expected race listed for linux $(uname -r)"
	exit 4
fi
echo "1..1"
inverted=${TMPDIR:-/tmp}/uringrace-inverted.$$
sed -n 's/^expected/forbidden/p' "$EXPECT" > "$inverted"
ids=$(awk '{ print $2 }' "$inverted" | tr '\n' ' ')
out=$(URINGRACE_EXPECT="$inverted" URINGRACE_STORM_SECONDS=${URINGRACE_STORM_SECONDS:-8} \
	URINGRACE_STORMS="$(storms check | sed -n 's/^iowq-raw .*/& --shared-creds/p')" \
	"$HERE/real_uring.sh")
src=$?
rm -f "$inverted"
echo "$out" | sed 's/^/# /'
got=$(echo "$out" | sed -n 's/.*# forbidden race reported: //p')
if [ $src -eq 1 ] && [ -n "$got" ]; then
	echo "ok 1 inverted expectations caught: $got"
	exit 0
fi
echo "not ok 1 inverted expectations ($ids) not caught: real_uring.sh exit $src"
exit 1
