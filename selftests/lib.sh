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
