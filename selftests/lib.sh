#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Sourced by the shell selftests; needs HERE (the tests' directory).
#
# DRV, KO: the driver and the module. URINGRACE_DRIVER / URINGRACE_KO when
# set; else the copies an installed collection carries (make -C selftests
# install DRIVER=... KO=...) in HERE; else where the uringrace guest has them.
DRV=${URINGRACE_DRIVER:-}
if [ -z "$DRV" ]; then
	DRV=$HERE/uringrace
	[ -x "$DRV" ] || DRV=/usr/bin/uringrace
fi
KO=${URINGRACE_KO:-}
if [ -z "$KO" ]; then
	KO=$HERE/uringrace.ko
	[ -r "$KO" ] || KO=/lib/modules/uringrace.ko
fi

# missing REASON: a prerequisite is absent. A SKIP with its reason in a lab's
# collection; a failure in uringrace's own runs (URINGRACE_MUST_RUN=1), where
# the module and the driver are always there. Ends the test.
missing() {
	if [ "${URINGRACE_MUST_RUN:-0}" != 0 ]; then
		printf '1..1\nnot ok 1 %s (must run here)\n' "$1"
		exit 1
	fi
	echo "1..0 # SKIP $1"
	exit 4
}

# find_expect: set EXPECT to the expectation file for the running kernel
# (URINGRACE_EXPECT, then /etc/uringrace/expect, then expect/<major.minor>.txt
# in HERE or one level up), or to "" when there is none; exit 1 with a KTAP
# failure when the file named cannot be read.
find_expect() {
	ver=$(uname -r | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')
	EXPECT=${URINGRACE_EXPECT:-}
	for f in /etc/uringrace/expect "$HERE/expect/$ver.txt" "$HERE/../expect/$ver.txt"; do
		[ -n "$EXPECT" ] && break
		[ -r "$f" ] && EXPECT=$f
	done
	if [ -n "$EXPECT" ] && [ ! -r "$EXPECT" ]; then
		printf 'TAP version 13\n1..1\nnot ok 1 cannot read expectations %s\n' "$EXPECT"
		exit 1
	fi
}

# The guest's arch (arm64, x86_64) and the accelerator the host booted it
# with (uringrace.accel= on the kernel command line, else "?").
ARCH=$(uname -m)
[ "$ARCH" = aarch64 ] && ARCH=arm64
ACCEL=$(sed -n 's/.*uringrace\.accel=\([a-z0-9]*\).*/\1/p' /proc/cmdline 2>/dev/null)
[ -n "$ACCEL" ] || ACCEL="?"
VERDICTS=${URINGRACE_VERDICTS:-$HERE/verdicts.txt}
STORMS_FILE=${URINGRACE_STORMS_FILE:-$HERE/storms.txt}

# verdict SCENARIO VARIANT MODE -> "expect seconds": the first row of
# verdicts.txt that fits this arch and accelerator (the shell's one reader)
verdict() {
	awk -v s="$1" -v v="$2" -v m="$3" -v a="$ARCH" -v c="$ACCEL" '
		{ sub(/#.*/, "") }
		NF < 8 { next }
		$1 == s && $2 == v && $3 == m && ($4 == "*" || $4 == a) &&
		($5 == "*" || $5 == c) { print $6, $8; exit }' "$VERDICTS"
}

# verdict_cases MODE...: "scenario:mode:variant" for every row verdicts.txt
# has in those modes, in the file's order, once each
verdict_cases() {
	awk -v modes=" $* " '
		{ sub(/#.*/, "") }
		NF >= 8 && index(modes, " " $3 " ") && !seen[$1 ":" $3 ":" $2]++ {
			print $1 ":" $3 ":" $2
		}' "$VERDICTS"
}

# variant_parts VARIANT: "module-variant fence" of a verdicts.txt variant
# where user space plays the application: buggy (neither side's barrier),
# fixed (both), app-unfenced (the kernel's barrier only), kernel-unfenced
# (the application's fence only), emulated (the kernel's barrier, and the
# application's load done before its store: the EMULATED reordering); empty
# for a name it does not know
variant_parts() {
	case $1 in
	buggy) echo "buggy off" ;;
	fixed) echo "fixed on" ;;
	app-unfenced) echo "fixed off" ;;
	kernel-unfenced) echo "buggy on" ;;
	emulated) echo "fixed reorder" ;;
	esac
}

# storms SET: "name expect driver-arguments" for each storm of storms.txt
# in SET; expect is the tree's own ("storm NAME VERDICT" in $EXPECT) where
# its expectation file gives one, else storms.txt's column
storms() {
	awk -v set="$1" '
		{ sub(/#.*/, "") }
		FILENAME != storms { if ($1 == "storm") own[$2] = $3; next }
		NF >= 4 && index("," $2 ",", "," set ",") {
			line = $1 " " ($1 in own ? own[$1] : $3)
			for (i = 4; i <= NF; i++)
				line = line " " $i
			print line
		}' storms="$STORMS_FILE" ${EXPECT:+"$EXPECT"} "$STORMS_FILE"
}

# result_num KEY < driver output: a top-level number of its result line
# ("uringrace-result {json}"); empty when there is no such line
result_num() {
	sed -n "s/^uringrace-result .*\"$1\":\([0-9][0-9]*\).*/\1/p" | head -n 1
}

# result_str KEY < driver output: a top-level string of its result line
result_str() {
	sed -n "s/^uringrace-result .*\"$1\":\"\([^\"]*\)\".*/\1/p" | head -n 1
}

# kmsg_mark TEXT: "uringrace: subtest-start TEXT" in the kernel log, so that
# the reports after it are charged to TEXT (host and kcsan_scan --since)
kmsg_mark() {
	echo "uringrace: subtest-start $1" > /dev/kmsg
}
