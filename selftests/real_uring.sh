#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Description: the driver's real io_uring storms on the running kernel, raw
# path and liburing: NOP, read, IOSQE_ASYNC (io-wq), SQPOLL with the fence,
# and one CQ reaped by three threads.
# Each must complete work with no bad completion, no error and, for SQPOLL
# with the fence, no stalled submission (a storm expecting "anomaly", an
# EMULATED reordering on the real code or a bug the tree's expectation file
# says it has, must count at least one instead);
# and no KCSAN report of a race that the tree's expectation file
# (expect/<major.minor>.txt) lists as forbidden.
# KTAP on stdout; 0 pass, 1 fail, 4 skip.
#
# The storms are storms.txt's "check" set.
# URINGRACE_EXPECT=file: expectations to use instead of the version's file.
# URINGRACE_STORMS="name expect args;...": driver runs instead of that set.

SECS=${URINGRACE_STORM_SECONDS:-3}
HERE=$(dirname "$0")
# shellcheck source=selftests/lib.sh
. "$HERE/lib.sh"
find_expect

SCAN=$HERE/kcsan_scan
[ -x "$SCAN" ] || SCAN=$(dirname "$DRV")/kcsan_scan

echo "TAP version 13"
[ -x "$DRV" ] || missing "no driver at $DRV"
if [ -n "$EXPECT" ] && [ ! -x "$SCAN" ]; then
	echo "1..0 # no kcsan_scan beside the tests or the driver: reports cannot be checked"
	exit 1
fi
if [ -n "$URINGRACE_STORMS" ]; then
	list=$(echo "$URINGRACE_STORMS" | tr ';' '\n')
else
	list=$(storms check)
fi
if [ -z "$list" ]; then
	echo "1..0 # no storm to run: $STORMS_FILE"
	exit 1
fi
IFS='
'
# shellcheck disable=SC2086 # one storm per line is wanted
set -- $list
unset IFS
if [ -n "$EXPECT" ]; then
	echo "# expectations: $EXPECT"
else
	echo "# expectations: none for linux $(uname -r): KCSAN reports are not checked"
fi
echo "1..$#"
n=0
rc=0
for storm in "$@"; do
	n=$((n + 1))
	name=${storm%% *}
	rest=${storm#* }
	expect=${rest%% *}
	args=${rest#* }
	dur="--duration $SECS"
	case " $args " in *" --duration "*) dur= ;; esac
	mark="$name #$$.$n"
	kmsg_mark "$mark"
	# shellcheck disable=SC2086 # word splitting of args and dur is wanted
	out=$("$DRV" $args $dur --json --label "$name")
	drc=$?
	echo "$out" | sed 's/^/# /'
	ops=$(echo "$out" | result_num ops)
	bad=$(echo "$out" | result_num anomaly_total)
	forbidden=
	scan=
	if [ -n "$EXPECT" ]; then
		# the reports since our marker, matched on their accesses
		rep=$("$SCAN" --expect "$EXPECT" --since "subtest-start $mark")
		src=$?
		case $src in
		0 | 1) ;;
		3) scan=$(echo "$rep" | sed -n 's/^# //p') ;;
		*) scan="kcsan_scan failed (exit $src)" ;;
		esac
		rep=$(echo "$rep" | grep -v '^#' | sort | uniq -c)
		[ -z "$rep" ] || echo "$rep" | sed 's/^ */# KCSAN: /'
		forbidden=$(echo "$rep" | awk '$2 == "forbidden" { print $3 }' | sort -u | tr '\n' ' ')
	fi
	if [ -n "$scan" ]; then
		echo "not ok $n $name # kernel log: $scan"
		rc=1
	elif [ -n "$forbidden" ]; then
		echo "not ok $n $name # forbidden race reported: $forbidden"
		rc=1
	elif [ $drc -eq 4 ] && [ "${URINGRACE_MUST_RUN:-0}" != 0 ]; then
		echo "not ok $n $name # skipped where it must run: $(echo "$out" | result_str skipped)"
		rc=1
	elif [ $drc -eq 4 ]; then
		echo "ok $n $name # SKIP $(echo "$out" | result_str skipped)"
	elif [ $drc -ne 0 ] || [ "${ops:-0}" -eq 0 ]; then
		echo "not ok $n $name # exit $drc, ops ${ops:-none}"
		rc=1
	elif [ "$expect" = anomaly ] && [ "$bad" -eq 0 ]; then
		echo "not ok $n $name # expected anomalies (an emulated reordering or this tree's known bug), none in $ops ops"
		rc=1
	elif [ "$expect" = anomaly ]; then
		echo "ok $n $name # anomalies as expected: $bad in $ops ops"
	elif [ "$expect" != clean ]; then
		echo "not ok $n $name # unknown expectation '$expect'"
		rc=1
	elif [ "$bad" -ne 0 ]; then
		echo "not ok $n $name # $bad anomalies in $ops ops: $(echo "$out" |
			sed -n 's/.*"anomalies":{\([^}]*\)}.*/\1/p')"
		rc=1
	else
		echo "ok $n $name"
	fi
done
exit $rc
