#!/usr/bin/env bash
# Run mosdepth with the given arguments.
#
# Debian 12's mosdepth opens htslib as "libhts.so", which only the development
# package libhts-dev provides. When mosdepth cannot start for that reason, point
# it at the runtime library (libhts.so.3, package libhts3) through a private
# symlink instead of asking for libhts-dev.
set -euo pipefail
if mosdepth --version >/dev/null 2>&1; then
    exec mosdepth "$@"
fi
lib=$(ldconfig -p 2>/dev/null | awk '/libhts\.so\.3 / && !found {found = $NF} END {print found}' || true)
if [ -z "$lib" ]; then
    for d in /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu /usr/lib64 /usr/lib; do
        if [ -e "$d/libhts.so.3" ]; then lib="$d/libhts.so.3"; break; fi
    done
fi
if [ -z "$lib" ]; then
    echo "mosdepth cannot load libhts.so: install the Debian package libhts-dev" >&2
    exit 127
fi
shim=$(mktemp -d "${TMPDIR:-/tmp}/mosdepth-htslib.XXXXXX")
trap 'rm -rf "$shim"' EXIT
ln -s "$lib" "$shim/libhts.so"
LD_LIBRARY_PATH="$shim${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" mosdepth "$@"
