#!/usr/bin/env bash
# uringrace: install (or, when not root, name) every Debian package a run needs,
# and fetch an arm64 busybox-static into the cache without installing it
# (installing it would replace the amd64 one), and LAVA's device-type
# templates from lava-server (the server itself is not needed: lava-run
# dispatches a job alone).
set -euo pipefail

CACHE=${URINGRACE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/uringrace}
PKGS=(make gcc g++ python3 flex bison bc cpio libelf-dev libssl-dev rsync
	linux-source-6.12 linux-source-6.1
	qemu-system-x86 qemu-system-arm
	gcc-aarch64-linux-gnu g++-aarch64-linux-gnu
	busybox-static liburing-dev liburing-dev:arm64
	libbpf-dev libbpf-dev:arm64 libelf-dev:arm64 zlib1g-dev zlib1g-dev:arm64
	libgtest-dev clang-format shellcheck chromium lava-dispatcher)

missing=()
have_arm64=0
if dpkg --print-foreign-architectures 2>/dev/null | grep -qx arm64; then
	have_arm64=1
fi
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
bb="$CACHE/deb/arm64/bin/busybox"

if [ ${#missing[@]} -gt 0 ] || [ $have_arm64 -eq 0 ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "deps: missing packages and not root. As root, run:" >&2
		[ $have_arm64 -eq 1 ] || echo "  dpkg --add-architecture arm64 && apt-get update" >&2
		[ ${#missing[@]} -eq 0 ] ||
			echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
		echo "then run this again as yourself." >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	[ $have_arm64 -eq 1 ] || dpkg --add-architecture arm64
	echo "deps: apt-get update"
	apt-get update -q >/dev/null
	if [ ${#missing[@]} -gt 0 ]; then
		echo "deps: installing ${missing[*]}"
		apt-get install -y -q --no-install-recommends "${missing[@]}"
	fi
fi

# An arm64 busybox for the arm64 guest: downloaded, not installed (it would
# replace the amd64 one). Needs no root.
if [ ! -x "$bb" ]; then
	tmp=$(mktemp -d)
	chmod 755 "$tmp" # apt downloads as _apt when root
	if ! (cd "$tmp" && apt-get download -q busybox-static:arm64); then
		echo "deps: cannot download busybox-static:arm64 (as root: apt-get update)" >&2
		exit 1
	fi
	mkdir -p "$CACHE/deb/arm64"
	dpkg -x "$tmp"/busybox-static_*_arm64.deb "$CACHE/deb/arm64"
	rm -rf "$tmp"
	test -x "$bb"
	echo "deps: arm64 busybox at $bb"
fi
# LAVA's device-type templates (qemu.jinja2 and its base), for rendering the
# project's device dictionary the way a LAVA server would (make check-lava)
lt="$CACHE/deb/lava-server/usr/share/lava-server/device-types/qemu.jinja2"
if [ ! -r "$lt" ]; then
	tmp=$(mktemp -d)
	chmod 755 "$tmp"
	if ! (cd "$tmp" && apt-get download -q lava-server); then
		echo "deps: cannot download lava-server (as root: apt-get update)" >&2
		exit 1
	fi
	mkdir -p "$CACHE/deb/lava-server"
	dpkg -x "$tmp"/lava-server_*_all.deb "$CACHE/deb/lava-server"
	rm -rf "$tmp"
	test -r "$lt"
	echo "deps: LAVA device types at ${lt%/*}"
fi
echo "deps: ready"
