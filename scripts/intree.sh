#!/usr/bin/env bash
# uringrace: put the kselftests into a kernel tree, as labs build them:
#   scripts/intree.sh KSRC
# copies selftests/ (with the UAPI headers and expect/) to
# KSRC/tools/testing/selftests/uringrace; then
#   make -C KSRC/tools/testing/selftests TARGETS=uringrace install INSTALL_PATH=dir
# builds and installs it with that tree's lib.mk. Prints the directory.
set -euo pipefail
ksrc=${1:?usage: intree.sh KSRC}
top=$(cd "$(dirname "$0")/.." && pwd)
sel=$ksrc/tools/testing/selftests
if [ ! -f "$sel/lib.mk" ] || [ ! -f "$sel/kselftest_harness.h" ]; then
	echo "intree: $ksrc is not a kernel tree with kselftests ($sel/lib.mk)" >&2
	exit 2
fi
dst=$sel/uringrace
rm -rf "$dst"
mkdir -p "$dst/include/linux" "$dst/expect"
cp "$top"/selftests/Makefile "$top"/selftests/settings "$top"/selftests/*.c \
	"$top"/selftests/*.h "$top"/selftests/*.sh "$top"/selftests/*.txt "$dst/"
cp "$top"/include/uapi/linux/uringrace*.h "$dst/include/linux/"
cp "$top"/expect/*.txt "$dst/expect/"
echo "$dst"
