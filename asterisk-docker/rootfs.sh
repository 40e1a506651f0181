#!/usr/bin/env bash
# Build (once) and print the path of the Debian testing root filesystem that
# runs fairline's Asterisk on hosts without a Docker engine.
#
# The root filesystem is cached outside the work tree, keyed by a hash of
# packages.txt, so a fresh clone on the same machine reuses it and a change of
# the package list rebuilds it. Usage: rootfs.sh [--print-only]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" = 0 ]; then default_cache=/var/cache/fairline; else default_cache=${XDG_CACHE_HOME:-$HOME/.cache}/fairline; fi
cache=${FAIRLINE_CACHE:-$default_cache}
packages=$(grep -v '^\s*#' "$here/packages.txt" | grep -v '^\s*$' | paste -sd, -)
key=$(printf '%s' "$packages" | sha256sum | cut -c1-12)
rootfs="$cache/rootfs-$key"

if [ "${1:-}" = "--print-only" ]; then
    echo "$rootfs"
    exit 0
fi

say() { echo "rootfs: $*" >&2; }

if [ -f "$rootfs/.fairline-complete" ]; then
    echo "$rootfs"
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    say "building the Asterisk root filesystem needs root (debootstrap, chroot); run as root or use the Docker compose file"
    exit 2
fi

# The host's own Debian mirror, never an address written into the project.
mirror=$(grep -hoE '^(URIs:|deb)\s+\S+' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
         | awk '{print $2}' | grep -E '/debian/?$' | head -n1 || true)
if [ -z "$mirror" ]; then
    say "no Debian mirror found in /etc/apt/sources.list{,.d}; cannot build the root filesystem"
    exit 2
fi

rm -rf "$rootfs.partial"
mkdir -p "$cache"
say "building Debian testing + Asterisk 22 into $rootfs (one time, about 1-2 minutes, ~550 MB) from $mirror"
# bookworm's debootstrap has no 'forky' script: name the suite 'testing', use sid's script.
if ! debootstrap --variant=minbase --include="$packages" testing "$rootfs.partial" "$mirror" sid \
        > "$cache/debootstrap-$key.log" 2>&1; then
    say "debootstrap failed; last lines of $cache/debootstrap-$key.log:"
    tail -n 20 "$cache/debootstrap-$key.log" >&2
    exit 1
fi
# Without the host's /etc/hosts Asterisk fails to resolve the host name on every call.
cp /etc/hosts "$rootfs.partial/etc/hosts"
touch "$rootfs.partial/.fairline-complete"
mv "$rootfs.partial" "$rootfs"
# Older builds (another package list) are dead weight now.
find "$cache" -maxdepth 1 -name 'rootfs-*' ! -name "rootfs-$key" -exec rm -rf {} + 2>/dev/null || true
say "ready"
echo "$rootfs"
