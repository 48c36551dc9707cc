#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Description: the module's scenarios with user space as the application
# (the C++ driver on the mmap'ed ring; cq_tail also posted from a kthread in
# our mm), and the store-buffering protocols' litmus forms on the guest's
# CPUs. Fixed variants with the fence: zero anomalies while doing work.
# Buggy variants without it: what verdicts.txt expects here, with the rate.
# KTAP on stdout; exit 0 pass, 1 fail, 4 skip.

HERE=$(dirname "$0")
# shellcheck source=selftests/lib.sh
. "$HERE/lib.sh"

echo "TAP version 13"
[ -x "$DRV" ] || missing "no driver at $DRV"
[ -e /dev/uringrace ] || [ -r "$KO" ] || missing "no module at $KO"
if [ ! -e /dev/uringrace ] && ! insmod "$KO"; then
	echo "1..1"
	echo "not ok 1 cannot load $KO"
	exit 1
fi

# every scenario, mode and variant verdicts.txt has rows for, user space
# playing the application or the litmus form (variant_parts: which side's
# barrier each variant has)
CASES=$(verdict_cases user user_mm litmus)
echo "1..$(echo "$CASES" | wc -w)"
n=0
rc=0
for c in $CASES; do
	sc=${c%%:*}
	rest=${c#*:}
	mode=${rest%%:*}
	var=${rest#*:}
	n=$((n + 1))
	name="$sc.$mode.$var"
	parts=$(variant_parts "$var")
	kvar=${parts% *}
	fence=${parts#* }
	if [ -z "$parts" ]; then
		echo "not ok $n $name # unknown variant $var"
		rc=1
		continue
	fi
	vd=$(verdict "$sc" "$var" "$mode")
	expect=${vd% *}
	secs=${vd#* }
	if [ -z "$expect" ]; then
		echo "not ok $n $name # no verdict for $ARCH/$ACCEL"
		rc=1
		continue
	fi
	kmsg_mark "$name"
	if [ "$mode" = litmus ]; then
		# the store-buffering form on the guest's CPUs, no module
		# buggy: until the first witness; fixed: all of it
		bound="--ops 8000000"
		[ "$fence" = off ] && bound=--until-witness
		# shellcheck disable=SC2086 # bound is one or two words
		out=$("$DRV" litmus --protocol "$sc" --fence $fence $bound \
			--duration "$secs" --json --label "$name")
		drc=$?
		mops=1
	else
		out=$("$DRV" "$sc" --variant "$kvar" --fence "$fence" --mode "$mode" \
			--duration "$secs" --entries 8 --json --label "$name")
		drc=$?
		mops=$(echo "$out" | sed -n 's/.*"module_ops":\([0-9]*\).*/\1/p')
	fi
	echo "$out" | sed 's/^/# /'
	ops=$(echo "$out" | result_num ops)
	an=$(echo "$out" | result_num anomaly_total)
	if [ $drc -ne 0 ] || [ -z "$ops" ]; then
		echo "not ok $n $name # driver exit $drc"
		rc=1
	elif [ "${ops:-0}" -eq 0 ] || [ "${mops:-0}" -eq 0 ]; then
		echo "not ok $n $name # no work done (ops $ops, module ops $mops)"
		rc=1
	elif [ "$expect" = clean ] && [ "$an" -ne 0 ]; then
		echo "not ok $n $name # $an anomalies in $ops ops, expected none"
		rc=1
	elif [ "$expect" = detected ] && [ "$an" -eq 0 ]; then
		echo "not ok $n $name # not detected in $ops ops"
		rc=1
	elif [ "$expect" = not-observable ]; then
		echo "ok $n $name # SKIP not observable on $ARCH/$ACCEL: $an anomalies in $ops ops"
	else
		echo "ok $n $name"
	fi
done
exit $rc
