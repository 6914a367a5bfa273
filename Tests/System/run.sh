#!/usr/bin/env bash
# The system test, host side (`make system-test`): boots Debian 12 with real systemd 252 under
# systemd-nspawn, installs the .deb and checks the service end to end (runner.sh, inside).
#
#   Tests/System/run.sh --deb FILE --version V --sim FONEAI_SIM --bin-dir DIR --out-dir DIR
#                       [--rootfs DIR] [--timeout SECONDS]
#
# Needs root and the host packages systemd-container and debootstrap. The rootfs is built once
# and cached in /var/cache/foneai-systest (Tests/System/build-rootfs.sh); every run boots it with
# --volatile=overlay, so it stays pristine. Results, the container's journal and the simulator's
# output are left in the out dir.
set -euo pipefail
cd "$(dirname "$0")/../.."

deb="" version="" sim="" bin_dir=".build/release" out_dir="out/system-test"
rootfs="${FONEAI_SYSTEST_ROOTFS:-/var/cache/foneai-systest/bookworm}"
time_limit="${FONEAI_SYSTEST_TIMEOUT:-540}"
while [ $# -gt 0 ]; do
  case "$1" in
    --deb) deb="$2"; shift 2 ;;
    --version) version="$2"; shift 2 ;;
    --sim) sim="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --out-dir) out_dir="$2"; shift 2 ;;
    --rootfs) rootfs="$2"; shift 2 ;;
    --timeout) time_limit="$2"; shift 2 ;;
    *) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

die() { echo "system-test: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (systemd-nspawn, debootstrap)"
command -v systemd-nspawn >/dev/null || die "systemd-nspawn missing: apt-get install --no-install-recommends systemd-container"
command -v debootstrap >/dev/null || die "debootstrap missing: apt-get install --no-install-recommends debootstrap"
[ -f "$deb" ] || die "no package $deb (make deb)"
[ -x "$sim" ] || die "no simulator $sim (swift build -c release --static-swift-stdlib --product foneai-sim)"
[ -n "$version" ] || die "--version is required"

started=$(date +%s)
Tests/System/build-rootfs.sh "$rootfs"

work=$(mktemp -d /tmp/foneai-systest.XXXXXX)
# Processes this script started, as "PID:STARTTIME" so that a PID reused by an unrelated process
# is never signalled.
timeout_proc="" nspawn_proc="" container_proc=""
proc_id() { # PID -> PID:STARTTIME (empty if gone)
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }
  echo "$1:$(echo "$stat" | cut -d' ' -f20)"
}
alive() { [ -n "$1" ] && [ "$(proc_id "${1%%:*}")" = "$1" ]; }
signal_proc() { alive "$2" && kill "-$1" "${2%%:*}" 2>/dev/null; true; }
cleanup() {
  # When interrupted: nspawn first (SIGTERM halts the container cleanly), then what is left.
  if alive "$nspawn_proc"; then
    signal_proc TERM "$nspawn_proc"
    for _ in $(seq 50); do alive "$nspawn_proc" || break; sleep 0.2; done
  fi
  for proc in "$container_proc" "$nspawn_proc" "$timeout_proc"; do
    signal_proc KILL "$proc"
  done
  rm -rf "$work"
}
trap cleanup EXIT

# /pkg in the container: the package, a newer build of it for the upgrade check, the simulator
# and the runner.
mkdir -p "$work/pkg/v1" "$work/pkg/v2"
cp "$deb" "$work/pkg/v1/"
upgrade_version="${version}+systest2"
echo "system-test: building the upgrade package $upgrade_version"
packaging/build-deb.sh --version "$upgrade_version" --bin-dir "$bin_dir" --out-dir "$work/pkg/v2" --no-lintian \
  > "$work/build-v2.log" 2>&1 || { cat "$work/build-v2.log" >&2; die "building the upgrade package failed"; }
install -m 0755 "$sim" "$work/pkg/foneai-sim"
strip "$work/pkg/foneai-sim" 2>/dev/null || true
install -m 0755 Tests/System/runner.sh "$work/pkg/runner.sh"
printf '%s\n%s\n' "$version" "$upgrade_version" > "$work/pkg/versions"

rm -rf "$out_dir"
mkdir -p "$out_dir"
out_abs=$(realpath "$out_dir")

echo "system-test: booting Debian 12 (systemd $(chroot "$rootfs" dpkg-query -W -f '${Version}' systemd 2>/dev/null || echo '?')) under systemd-nspawn, time limit ${time_limit}s"
set +e
SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 timeout --signal=TERM --kill-after=30 "$time_limit" \
  systemd-nspawn --quiet --directory="$rootfs" --boot \
    --register=no --keep-unit --volatile=overlay --link-journal=no --console=read-only \
    --private-network \
    --bind-ro="$work/pkg:/pkg" --bind="$out_abs:/out" \
    --bind-ro="$PWD/Tests/System/test-runner.service:/etc/systemd/system/test-runner.service" \
    -- systemd.wants=test-runner.service systemd.show_status=false \
  > >(tee "$out_dir/console.log" | grep --line-buffered -E '^(PASS|FAIL|INFO|SKIP) ' ) 2>&1 &
timeout_proc=$(proc_id $!)
# systemd-nspawn (child of timeout) and the container's PID 1 (the child of nspawn running
# systemd), so that a container that outlives the time limit can be killed by PID.
for _ in $(seq 100); do
  alive "$timeout_proc" || break
  if [ -z "$nspawn_proc" ]; then
    pid=$(pgrep -P "${timeout_proc%%:*}" -x systemd-nspawn 2>/dev/null | head -n1)
    [ -n "$pid" ] && nspawn_proc=$(proc_id "$pid")
  fi
  if [ -n "$nspawn_proc" ]; then
    pid=$(pgrep -P "${nspawn_proc%%:*}" -x systemd 2>/dev/null | head -n1)
    [ -n "$pid" ] && container_proc=$(proc_id "$pid") && break
  fi
  sleep 0.1
done
wait "${timeout_proc%%:*}"
rc=$?
set -e
for proc in "$container_proc" "$nspawn_proc"; do
  if alive "$proc"; then
    echo "system-test: killing leftover container process ${proc%%:*}" >&2
    signal_proc KILL "$proc"
  fi
done
timeout_proc="" nspawn_proc="" container_proc=""
elapsed=$(( $(date +%s) - started ))

results="$out_dir/results.tsv"
pass=0 fail=0
echo
echo "system-test results ($out_dir):"
if [ -s "$results" ]; then
  while IFS=$'\t' read -r status name detail; do
    printf '%-4s %s%s\n' "$status" "$name" "${detail:+  ($detail)}"
    case "$status" in PASS) pass=$((pass + 1)) ;; FAIL) fail=$((fail + 1)) ;; esac
  done < "$results"
fi
if [ ! -f "$out_dir/finished" ]; then
  case "$rc" in
    124|137) why="timed out after ${time_limit}s" ;;
    *) why="container exited with status $rc" ;;
  esac
  printf 'FAIL %s  (%s)\n' "runner finished" "$why"
  fail=$((fail + 1))
fi
if [ -f "$out_dir/security.txt" ]; then
  echo
  echo "systemd-analyze security foneai-bridge (inside the container; full list in $out_dir/security.txt):"
  grep -E '✗|Overall exposure' "$out_dir/security.txt" | sed -E 's/ {2,}/  /g'
fi
echo
echo "system-test took ${elapsed}s; logs: $out_dir/{console.log,journal.txt,journal.json,sim-*.log}"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
