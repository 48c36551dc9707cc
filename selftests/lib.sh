#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# Sourced by real_uring.sh and expectations.sh: sets EXPECT to the expectation
# file for the running kernel (URINGRACE_EXPECT, then /etc/uringrace/expect,
# then expect/<major.minor>.txt next to the tests or one level up), or to ""
# when there is none; exits 1 with a KTAP failure when the file named cannot
# be read. Needs HERE (the tests' directory).

VER=$(uname -r | sed -n 's/^\([0-9]*\.[0-9]*\).*/\1/p')
EXPECT=${URINGRACE_EXPECT:-}
for f in /etc/uringrace/expect "$HERE/expect/$VER.txt" "$HERE/../expect/$VER.txt"; do
	[ -n "$EXPECT" ] && break
	[ -r "$f" ] && EXPECT=$f
done
if [ -n "$EXPECT" ] && [ ! -r "$EXPECT" ]; then
	printf 'TAP version 13\n1..1\nnot ok 1 cannot read expectations %s\n' "$EXPECT"
	exit 1
fi
