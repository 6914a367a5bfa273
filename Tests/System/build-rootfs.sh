#!/usr/bin/env bash
# Builds (once) and caches the Debian 12 rootfs the system test boots with systemd-nspawn.
#
#   Tests/System/build-rootfs.sh [DIR]      (default /var/cache/foneai-systest/bookworm)
#
# The rootfs is rebuilt only when the package list or the setup below changes (a stamp file
# records its hash). Everything the test needs inside must be here: the container has no network.
set -euo pipefail

dir="${1:-/var/cache/foneai-systest/bookworm}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
# What the package needs (adduser, procps; libc6, libstdc++6, libgcc-s1, zlib1g are in minbase)
# plus systemd itself and the tools the checks use.
packages="systemd,systemd-sysv,dbus,procps,init-system-helpers,util-linux,iproute2,adduser,libsystemd0,jq"
setup_version=3
stamp_value="$setup_version $packages $mirror"
stamp="$dir/.foneai-systest-stamp"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_value" ]; then
  echo "build-rootfs: cached $dir"
  exit 0
fi

mkdir -p "$(dirname "$dir")"
exec 9>"$dir.lock"
flock 9
# Someone else may have built it while we waited for the lock.
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_value" ]; then
  echo "build-rootfs: cached $dir"
  exit 0
fi

tmp="$dir.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
echo "build-rootfs: debootstrap bookworm into $dir (about a minute)"
start=$(date +%s)
if ! debootstrap --variant=minbase --include="$packages" bookworm "$tmp" "$mirror" >"$tmp.log" 2>&1; then
  tail -30 "$tmp.log" >&2
  echo "build-rootfs: debootstrap failed (log: $tmp.log)" >&2
  exit 1
fi
rm -f "$tmp.log"

# A quiet boot: no gettys on the console, no timers.
for unit in console-getty.service getty@.service serial-getty@.service \
            systemd-networkd-wait-online.service; do
  ln -sf /dev/null "$tmp/etc/systemd/system/$unit"
done
for timer in "$tmp"/lib/systemd/system/*.timer; do
  [ -e "$timer" ] || continue
  ln -sf /dev/null "$tmp/etc/systemd/system/$(basename "$timer")"
done
# Every line of the service's log must reach the journal.
mkdir -p "$tmp/etc/systemd/journald.conf.d"
cat > "$tmp/etc/systemd/journald.conf.d/foneai-systest.conf" <<'CONF'
[Journal]
Storage=volatile
RateLimitIntervalSec=0
RateLimitBurst=0
CONF
echo foneai-systest > "$tmp/etc/hostname"
# An empty machine-id: systemd makes a transient one at each boot.
: > "$tmp/etc/machine-id"
apt-get -o Dir="$tmp" clean >/dev/null 2>&1 || true
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*

echo "$stamp_value" > "$tmp/.foneai-systest-stamp"
rm -rf "$dir"
mv "$tmp" "$dir"
trap - EXIT
echo "build-rootfs: built $dir in $(( $(date +%s) - start )) s"
