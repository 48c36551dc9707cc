#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Description: runs last. Every KCSAN report of the whole run so far that
# has an access in uringrace.ko must be one of the scenarios' own races (as
# the module lists them in debugfs, matched on both accesses by kcsan_scan);
# any other is a race in the module's control code, or one no scenario owns.
# Then that a lost log record is noticed (kcsan_scan --check-reader).
# KTAP on stdout; 0 pass, 1 fail, 4 skip.

HERE=$(dirname "$0")
# shellcheck source=selftests/lib.sh
. "$HERE/lib.sh"

SCAN=$HERE/kcsan_scan
LIST=/sys/kernel/debug/uringrace/scenarios

echo "TAP version 13"
[ -e /sys/kernel/debug/kcsan ] || missing "kernel without KCSAN"
[ -x "$SCAN" ] || missing "no kcsan_scan at $SCAN"
[ -e /dev/uringrace ] || [ -r "$KO" ] || missing "no module at $KO"
echo "1..2"
if [ ! -e /dev/uringrace ] && ! insmod "$KO"; then
	echo "not ok 1 cannot load $KO"
	exit 1
fi
out=$("$SCAN" --module uringrace --scenarios "$LIST")
src=$?
echo "$out" | grep '^control ' | sort | uniq -c | sed 's/^ */# /'
rc=1
case $src in
0)
	echo "ok 1 module reports: only the scenarios' races"
	rc=0
	;;
1)
	echo "not ok 1 KCSAN reports in the module that are no scenario's race"
	;;
*)
	echo "$out" | sed -n 's/^# /# kcsan_scan: /p'
	echo "not ok 1 kcsan_scan exit $src: the log cannot be checked"
	;;
esac
# the log's loss checks, made to fire: this wipes the log, so it comes last
out=$("$SCAN" --check-reader)
src=$?
echo "$out"
case $src in
0) echo "ok 2 a lost kernel log record is noticed" ;;
4) echo "ok 2 a lost kernel log record is noticed # SKIP rate-limited /dev/kmsg" ;;
*)
	echo "not ok 2 a lost kernel log record went unnoticed (kcsan_scan exit $src)"
	rc=1
	;;
esac
exit $rc
