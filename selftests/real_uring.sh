#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Description: the driver's real io_uring storms on the running kernel, raw
# path and liburing: NOP, read, IOSQE_ASYNC (io-wq), SQPOLL with the fence,
# and one CQ reaped by three threads.
# Each must complete work with no bad completion, no error and, for SQPOLL
# with the fence, no stalled submission; and no KCSAN report of a race that
# the tree's expectation file (expect/<major.minor>.txt) lists as forbidden.
# KTAP on stdout; 0 pass, 1 fail, 4 skip.
#
# URINGRACE_EXPECT=file: expectations to use instead of the version's file.
# URINGRACE_STORMS="args;args": driver runs instead of the default storms.

SECS=${URINGRACE_STORM_SECONDS:-3}
HERE=$(dirname "$0")
# shellcheck source=selftests/lib.sh
. "$HERE/lib.sh"
find_expect

# KCSAN titles in the kernel log after the line containing $1, one per line,
# without offsets and [module] tags: "data-race in A / B" -> "A B"
titles_since() {
	dmesg | awk -v m="$1" '
		index($0, m) { on = 1; next }
		on && /BUG: KCSAN: / {
			sub(/.*BUG: KCSAN: [^:]*( race)? in /, "")
			gsub(/\+0x[0-9a-f]+\/0x[0-9a-f]+/, "")
			gsub(/ \[[A-Za-z0-9_-]+\]/, "")
			sub(/ \/ /, " ")
			print
		}'
}

# "verdict id functions..." for each title on stdin, by the expectation file
classify() {
	awk '
		FNR == NR {
			sub(/#.*/, "")
			if (NF < 3)
				next
			n++
			verdict[n] = $1
			id[n] = $2
			for (i = 3; i <= NF; i++)
				has[n, $i] = 1
			next
		}
		{
			v = "unlisted"
			r = "-"
			for (e = 1; e <= n; e++) {
				all = 1
				for (i = 1; i <= NF; i++)
					if (!((e, $i) in has))
						all = 0
				if (all) {
					v = verdict[e]
					r = id[e]
					break
				}
			}
			print v, r, $0
		}' "$1" -
}

echo "TAP version 13"
if [ ! -x "$DRV" ]; then
	echo "1..0 # SKIP no driver at $DRV"
	exit 4
fi
if [ -n "$URINGRACE_STORMS" ]; then
	IFS=';'
	# shellcheck disable=SC2086 # split on ';' is wanted
	set -- $URINGRACE_STORMS
	unset IFS
else
	set -- "nop --via raw" "nop --via liburing" "read --via raw" "read --via liburing" \
		"iowq --via raw --threads 4" "iowq --via liburing --threads 4" \
		"sqpoll --via raw --fence on" "sqpoll --via liburing" "cq --threads 3 --via raw" \
		"cq --threads 3 --via liburing"
fi
if [ -n "$EXPECT" ]; then
	echo "# expectations: $EXPECT"
else
	echo "# expectations: none for linux $(uname -r): KCSAN reports are not checked"
fi
echo "1..$#"
n=0
rc=0
for args in "$@"; do
	n=$((n + 1))
	name=$(echo "$args" | tr -d '-' | tr ' ' '_')
	mark="uringrace: subtest-start $name #$$.$n"
	echo "$mark" > /dev/kmsg
	# shellcheck disable=SC2086 # word splitting of args is wanted
	out=$("$DRV" $args --duration "$SECS" --json)
	drc=$?
	echo "# $out"
	ops=$(echo "$out" | sed -n 's/.*"ops":\([0-9]*\).*/\1/p')
	bad=$(echo "$out" | sed -n 's/.*"counts":{\(.*\)}}.*/\1/p' | tr ',' '\n' |
		grep -e bad_cqe -e short_reads -e stalls -e errors -e duplicate_cqe -e lost_cqe | sed 's/.*://' |
		awk '{ s += $1 } END { print s + 0 }')
	forbidden=
	if [ -n "$EXPECT" ]; then
		rep=$(titles_since "$mark" | classify "$EXPECT" | sort | uniq -c)
		[ -z "$rep" ] || echo "$rep" | sed 's/^ */# KCSAN: /'
		forbidden=$(echo "$rep" | awk '$2 == "forbidden" { print $3 }' | sort -u | tr '\n' ' ')
	fi
	if [ -n "$forbidden" ]; then
		echo "not ok $n $name # forbidden race reported: $forbidden"
		rc=1
	elif [ $drc -eq 4 ]; then
		echo "ok $n $name # SKIP $(echo "$out" | sed -n 's/.*"skipped":"\([^"]*\)".*/\1/p')"
	elif [ $drc -ne 0 ] || [ "${ops:-0}" -eq 0 ]; then
		echo "not ok $n $name # exit $drc, ops ${ops:-none}"
		rc=1
	elif [ "$bad" -ne 0 ]; then
		echo "not ok $n $name # $bad bad completions/stalls/errors in $ops ops"
		rc=1
	else
		echo "ok $n $name"
	fi
done
exit $rc
