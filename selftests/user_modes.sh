#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Description: the module's scenarios with user space as the application
# (the C++ driver on the mmap'ed ring; cq_tail also posted from a kthread in
# our mm), and the store-buffering protocols' litmus forms on the guest's
# CPUs. Fixed variants with the fence: zero anomalies while doing work.
# Buggy variants without it: what verdicts.txt expects here, with the rate.
# KTAP on stdout; exit 0 pass, 1 fail, 4 skip.

HERE=$(dirname "$0")
VERDICTS=${URINGRACE_VERDICTS:-$HERE/verdicts.txt}
# shellcheck source=selftests/lib.sh
. "$HERE/lib.sh"

arch=$(uname -m)
[ "$arch" = aarch64 ] && arch=arm64
accel=$(sed -n 's/.*uringrace\.accel=\([a-z0-9]*\).*/\1/p' /proc/cmdline)
[ -n "$accel" ] || accel="?"

# verdict SCENARIO VARIANT MODE -> "expect seconds", first matching line
verdict() {
	awk -v s="$1" -v v="$2" -v m="$3" -v a="$arch" -v c="$accel" '
		/^#/ || NF < 8 { next }
		$1 == s && $2 == v && $3 == m && ($4 == "*" || $4 == a) &&
		($5 == "*" || $5 == c) { print $6, $8; exit }' "$VERDICTS"
}

# sum of the anomaly counters in the driver's JSON line
anomalies() {
	sed -n 's/.*"counts":{\(.*\)}}.*/\1/p' | tr ',' '\n' |
		grep -v -e '"module_ops"' -e '"module_kcsan_matched"' -e '"wakeups"' |
		sed 's/.*://' | awk '{ s += $1 } END { print s + 0 }'
}

field() {
	sed -n "s/.*\"$1\":\([0-9]*\).*/\1/p"
}

echo "TAP version 13"
if [ ! -x "$DRV" ]; then
	echo "1..0 # SKIP no driver at $DRV"
	exit 4
fi
if [ ! -e /dev/uringrace ] && ! insmod "$KO"; then
	echo "1..0 # SKIP cannot load $KO"
	exit 4
fi

CASES="sq_head:user cq_tail:user cq_tail:user_mm sqpoll_wakeup:user ringbuf_notify:user
	sqpoll_wakeup:litmus ringbuf_notify:litmus"
echo "1..14"
n=0
rc=0
for c in $CASES; do
	sc=${c%%:*}
	mode=${c#*:}
	for var in buggy fixed; do
		n=$((n + 1))
		name="$sc.$mode.$var"
		fence=on
		[ $var = buggy ] && fence=off
		vd=$(verdict "$sc" $var "$mode")
		expect=${vd% *}
		secs=${vd#* }
		if [ -z "$expect" ]; then
			echo "not ok $n $name # no verdict for $arch/$accel"
			rc=1
			continue
		fi
		echo "uringrace: subtest-start $name" > /dev/kmsg
		if [ "$mode" = litmus ]; then
			# the store-buffering form on the guest's CPUs, no module
			# buggy: until the first witness; fixed: all of it
			bound="--ops 8000000"
			[ $var = buggy ] && bound=--until-witness
			# shellcheck disable=SC2086 # bound is one or two words
			out=$("$DRV" litmus --protocol "$sc" --fence $fence $bound \
				--duration "$secs" --json)
			drc=$?
			mops=1
		else
			out=$("$DRV" "$sc" --variant $var --fence $fence --mode "$mode" \
				--duration "$secs" --entries 8 --json)
			drc=$?
			mops=$(echo "$out" | field module_ops)
		fi
		echo "# $out"
		ops=$(echo "$out" | field ops)
		an=$(echo "$out" | anomalies)
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
			echo "ok $n $name # SKIP not observable on $arch/$accel: $an anomalies in $ops ops"
		else
			echo "ok $n $name"
		fi
	done
done
exit $rc
