#!/bin/bash
# SPDX-License-Identifier: GPL-2.0-or-later
#
# make install DESTDIR=... PREFIX=/usr installs exactly the documented files
# (expected-files, docs/agents.md), executables executable, the module the
# one built for KREL; make uninstall removes every one of them.
#
#   userspace-tests/install/run.sh KREL
set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
krel=${1:?usage: run.sh KREL}
dest=$(mktemp -d /tmp/vmc-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
vars=(DESTDIR="$dest" PREFIX=/usr KREL="$krel")

make -s -C "$TOP" install "${vars[@]}" >/dev/null
diff -u <(sed "s/KREL/$krel/" "$TOP/userspace-tests/install/expected-files") \
    <(cd "$dest" && find . -type f | sed 's|^\./||' | sort) ||
    { echo "install: the installed files differ from expected-files"; exit 1; }
for f in usr/bin/vmchanneld usr/bin/vmchannelctl; do
    [ -x "$dest/$f" ] || { echo "install: $f is not executable"; exit 1; }
done
cmp -s "$dest/lib/modules/$krel/updates/vmchannel.ko" "$TOP/build/driver-$krel/vmchannel.ko" ||
    { echo "install: not the module built for $krel"; exit 1; }
"$dest/usr/bin/vmchannelctl" --version >/dev/null

make -s -C "$TOP" uninstall "${vars[@]}"
left=$(cd "$dest" && find . -type f)
[ -z "$left" ] || { echo "uninstall left: $left"; exit 1; }
echo "install: $(wc -l <"$TOP/userspace-tests/install/expected-files") files installed and removed"
