#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Description: the driver's real io_uring storms on the running kernel, raw
# path and liburing: NOP, read, IOSQE_ASYNC (io-wq), SQPOLL with the fence,
# and one CQ reaped by three threads.
# Each must complete work with no bad completion, no error and, for SQPOLL
# with the fence, no stalled submission. KTAP on stdout; 0 pass, 1 fail, 4 skip.

DRV=${URINGRACE_DRIVER:-/usr/bin/uringrace}
SECS=${URINGRACE_STORM_SECONDS:-3}

echo "TAP version 13"
if [ ! -x "$DRV" ]; then
	echo "1..0 # SKIP no driver at $DRV"
	exit 4
fi
set -- "nop --via raw" "nop --via liburing" "read --via raw" "read --via liburing" \
	"iowq --via raw --threads 4" "iowq --via liburing --threads 4" \
	"sqpoll --via raw --fence on" "sqpoll --via liburing" "cq --threads 3 --via raw" \
	"cq --threads 3 --via liburing"
echo "1..$#"
n=0
rc=0
for args in "$@"; do
	n=$((n + 1))
	name=$(echo "$args" | tr -d '-' | tr ' ' '_')
	echo "uringrace: subtest-start $name" > /dev/kmsg
	# shellcheck disable=SC2086 # word splitting of args is wanted
	out=$("$DRV" $args --duration "$SECS" --json)
	drc=$?
	echo "# $out"
	ops=$(echo "$out" | sed -n 's/.*"ops":\([0-9]*\).*/\1/p')
	bad=$(echo "$out" | sed -n 's/.*"counts":{\(.*\)}}.*/\1/p' | tr ',' '\n' |
		grep -e bad_cqe -e short_reads -e stalls -e errors -e duplicate_cqe -e lost_cqe | sed 's/.*://' |
		awk '{ s += $1 } END { print s + 0 }')
	if [ $drc -eq 4 ]; then
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
