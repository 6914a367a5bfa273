#!/bin/bash
# The system test, inside the container (test-runner.service): installs /pkg/v1/*.deb on a
# freshly booted Debian 12, points it at foneai-sim on loopback and checks the service under
# real systemd. Writes one line per check to /out/results.tsv: STATUS<TAB>name<TAB>detail.
set -uo pipefail
export DEBIAN_FRONTEND=noninteractive LC_ALL=C.UTF-8 SYSTEMD_PAGER= SYSTEMD_COLORS=0

UNIT=foneai-bridge.service
CONFIG=/etc/foneai/config.json
SIM=/pkg/foneai-sim
OUT=/out
RESULTS=$OUT/results.tsv
ARI_PORT=8088
AI_PORT=9000
: > "$RESULTS"

say() { echo "INFO $*"; }
record() { # STATUS NAME DETAIL
  printf '%s\t%s\t%s\n' "$1" "$2" "${3:-}" >> "$RESULTS"
  echo "$1 $2${3:+  ($3)}"
}
pass() { record PASS "$1" "${2:-}"; }
fail() { record FAIL "$1" "${2:-}"; }
# check NAME DETAIL COMMAND...: PASS if the command succeeds.
check() {
  local name=$1 detail=$2
  shift 2
  if "$@"; then pass "$name" "$detail"; else fail "$name" "$detail"; fi
}
prop() { systemctl show -P "$1" "$UNIT" 2>/dev/null; }
# wait_for SECONDS COMMAND...: polls every 0.2 s.
wait_for() {
  local deadline=$(( $(date +%s%N) + $1 * 1000000000 ))
  shift
  while ! "$@"; do
    [ "$(date +%s%N)" -lt "$deadline" ] || return 1
    sleep 0.2
  done
}
is_active() { [ "$(systemctl is-active "$UNIT" 2>/dev/null)" = active ]; }
is_not_active() { ! systemctl is-active --quiet "$UNIT"; }
cursor() { journalctl -n 0 --show-cursor --no-pager 2>/dev/null | sed -n 's/^-- cursor: //p'; }
# The unit's journal since a cursor (all of it without one).
unit_log() { if [ -n "${1:-}" ]; then journalctl -u "$UNIT" --after-cursor="$1" --no-pager -o cat; else journalctl -u "$UNIT" --no-pager -o cat; fi; }
unit_log_has() { unit_log "$1" | grep -qF -- "$2"; }

write_config() { # LOG_LEVEL [EXTRA_JSON_SECTIONS]
  local level=$1
  cat > "$CONFIG.new" <<EOF
{
  // Written by the foneai-bridge system test: foneai-sim on loopback.
  "ari": {
    "url": "http://127.0.0.1:$ARI_PORT",
    "username": "systest",
    "password": "systest-pw-7f3a",
    "appName": "foneai",
    "reconnectMaxSeconds": 1
  },
  "rtpServer": { "port": "7777", "format": "slin16", "host": "127.0.0.1", "swap16": true, "socketType": "udp4" },
  "asterisk": { "packetTimestampIncrement": 160, "rtpPayloadType": 11 },
  "ai": { "serverUrl": "ws://127.0.0.1:$AI_PORT/stream", "connectTimeoutMs": 2000 },
  "log": { "logLevel": "$level" },
  "calls": { "drainTimeoutSeconds": 3 }
}
EOF
  install_config "$CONFIG.new"
}
install_config() { install -m 0640 -o root -g foneai "$1" "$CONFIG" && rm -f "$1"; }

# Simulators run as transient units; their output goes to /out/sim-*.log, line-buffered (stdbuf)
# so that it can be read while they run.
start_ai() {
  systemd-run --quiet --unit=sim-ai -p StandardOutput=file:$OUT/sim-ai.log -p StandardError=file:$OUT/sim-ai.log \
    stdbuf -oL -eL "$SIM" ai --port "$AI_PORT" --mode echo
}
SIM_UNIT=""
start_asterisk() { # NAME SIM_ARGS...: a fresh simulated Asterisk (stops the previous one)
  local name=$1
  shift
  [ -n "$SIM_UNIT" ] && systemctl stop "$SIM_UNIT" 2>/dev/null
  SIM_UNIT=sim-asterisk-$name.service
  systemd-run --quiet --unit="$SIM_UNIT" -p StandardOutput=file:$OUT/sim-asterisk-$name.log \
    -p StandardError=file:$OUT/sim-asterisk-$name.log \
    stdbuf -oL -eL "$SIM" asterisk --ari-port "$ARI_PORT" --username systest --password systest-pw-7f3a --app foneai "$@"
}
# The simulator prints each call's outcome when it leaves Stasis, then "all calls ended".
calls_ended() { grep -q '^all calls ended' "$OUT/sim-asterisk-$1.log" 2>/dev/null; }
ari_connects() { unit_log "$1" | grep -cF 'Successfully connected to the ARI websocket'; }
connected_since() { [ "$(ari_connects "$1")" -ge 1 ]; }

finish() {
  touch "$OUT/finished"
  local failed
  failed=$(grep -c '^FAIL' "$RESULTS")
  say "runner done: $(grep -c '^PASS' "$RESULTS") passed, $failed failed"
  [ "$failed" = 0 ]
  exit $?
}

# ---------------------------------------------------------------------------------------------
say "waiting for the boot to finish"
state=$(systemctl is-system-running --wait 2>/dev/null)
check "container boots with systemd as PID 1" "is-system-running=$state, $(systemctl --version | head -n1)" \
  test "$state" = running -o "$state" = degraded
[ "$state" = degraded ] && systemctl --failed --no-legend --no-pager > "$OUT/failed-units.txt"

read -r V1 V2 < <(tr '\n' ' ' < /pkg/versions)

# ---- install --------------------------------------------------------------------------------
say "dpkg -i foneai-bridge $V1"
if dpkg -i /pkg/v1/foneai-bridge_*.deb > "$OUT/dpkg-install.log" 2>&1; then
  pass "dpkg -i installs the package" "$V1"
else
  fail "dpkg -i installs the package" "see dpkg-install.log"
  finish
fi
uid=$(id -u foneai 2>/dev/null)
check "postinst creates system user and group foneai" "$(getent passwd foneai)" \
  test -n "$uid" -a "${uid:-1000}" -lt 1000 -a "$(id -gn foneai 2>/dev/null)" = foneai
perm=$(stat -c '%a %U:%G' "$CONFIG" 2>/dev/null)
check "config is a conffile, 0640 root:foneai" "$perm" \
  sh -c "test '$perm' = '640 root:foneai' && dpkg-query -W -f '\${Conffiles}\n' foneai-bridge | grep -q '$CONFIG'"
check "binaries run without a Swift toolchain" "$(foneai-bridge --version 2>&1 | head -n1)" \
  sh -c 'foneai-bridge --version >/dev/null && foneaictl --help >/dev/null && ! ldd /usr/bin/foneai-bridge | grep -q "not found"'
check "man pages and bash completion installed" "" \
  test -f /usr/share/man/man8/foneai-bridge.8.gz -a -f /usr/share/man/man1/foneaictl.1.gz \
       -a -f /usr/share/bash-completion/completions/foneaictl
systemd-analyze verify "$UNIT" > "$OUT/verify.txt" 2>&1
check "systemd-analyze verify $UNIT" "$(grep -v 'man\|Command' "$OUT/verify.txt" | head -n2 | tr '\n' ' ')" \
  sh -c "! grep -v -e 'man ' -e 'Command .*man' '$OUT/verify.txt' | grep -q ."
wait_for 15 is_active
check "unit enabled and started on install (vendor sample config)" \
  "$(systemctl is-enabled $UNIT), $(systemctl is-active $UNIT): $(prop StatusText)" \
  sh -c "systemctl is-enabled --quiet $UNIT && systemctl is-active --quiet $UNIT"

# ---- placeholders: no crash loop --------------------------------------------------------------
say "a config with placeholders"
cp -p "$CONFIG" "$OUT/vendor-config.json"
sed -e 's/"password": "[^"]*"/"password": "ARI_PASSWORD"/' "$CONFIG" > "$CONFIG.new" && install_config "$CONFIG.new"
c=$(cursor)
systemctl restart "$UNIT" > /dev/null 2>&1
sleep 5   # more than twice RestartSec=2s: a crash loop would show restarts
status_text=$(systemctl status "$UNIT" --no-pager -n 20 2>&1)
echo "$status_text" > "$OUT/status-placeholder.txt"
check "placeholder config: unit failed with status 78, not restarted" \
  "ActiveState=$(prop ActiveState) ExecMainStatus=$(prop ExecMainStatus) NRestarts=$(prop NRestarts)" \
  test "$(prop ActiveState)" = failed -a "$(prop ExecMainStatus)" = 78 -a "$(prop NRestarts)" = 0
check "placeholder config: systemctl status and the journal say what to fix" \
  "$(unit_log "$c" | grep -m1 -i placeholder | cut -c1-120)" \
  sh -c "echo \"\$0\" | grep -q 'ari.password' && echo \"\$0\" | grep -qi placeholder" "$status_text"
systemctl reset-failed "$UNIT"

# ---- configured: start, status --------------------------------------------------------------
say "configuring it for foneai-sim on loopback"
start_ai
write_config info
start_asterisk idle
c=$(cursor)
systemctl restart "$UNIT"
wait_for 15 is_active
check "systemctl start -> active" "$(systemctl is-active $UNIT), MainPID=$(prop MainPID)" is_active
wait_for 15 connected_since "$c"
check "journal: Successfully connected to the ARI websocket" "$(ari_connects "$c") connect(s)" connected_since "$c"
wait_for 5 sh -c "systemctl show -P StatusText $UNIT | grep -q 'ARI connected'"
st=$(prop StatusText)
check "StatusText is meaningful" "$st" sh -c "echo '$st' | grep -q 'ARI connected' && echo '$st' | grep -q 'live call'"
foneaictl status > "$OUT/foneaictl-status.txt" 2>&1
rc=$?
check "foneaictl status works for root" "exit $rc: $(head -n3 "$OUT/foneaictl-status.txt" | tr '\n' ' ')" test "$rc" = 0
setpriv --reuid=nobody --regid=nogroup --clear-groups foneaictl status > "$OUT/foneaictl-nobody.txt" 2>&1
rc=$?
check "foneaictl status is denied to users outside group foneai" "exit $rc: $(head -n1 "$OUT/foneaictl-nobody.txt")" test "$rc" = 4
sock=$(stat -c '%a %U:%G' /run/foneai/control.sock 2>/dev/null)
check "control socket /run/foneai/control.sock is 0660, group foneai" "$sock" sh -c "echo '$sock' | grep -q '^660 foneai:foneai$'"

# ---- watchdog ---------------------------------------------------------------------------------
say "watchdog: SIGSTOP the daemon"
mkdir -p /run/systemd/system/$UNIT.d
printf '[Service]\nWatchdogSec=3s\nRestartSec=1s\n' > /run/systemd/system/$UNIT.d/50-systest-watchdog.conf
systemctl daemon-reload
systemctl restart "$UNIT"
wait_for 15 is_active
wd=$(prop WatchdogUSec)
restarts=$(prop NRestarts)
pid=$(prop MainPID)
c=$(cursor)
kill -STOP "$pid"
restarted() { [ "$(prop NRestarts)" -gt "$restarts" ] && is_active && [ "$(prop MainPID)" != "$pid" ]; }
wait_for 40 restarted
check "a stopped daemon is killed by the watchdog and restarted" \
  "WatchdogUSec=$wd, NRestarts $restarts -> $(prop NRestarts), MainPID $pid -> $(prop MainPID)" restarted
check "journal: watchdog timeout, Result=watchdog" "$(journalctl --after-cursor="$c" --no-pager -o cat | grep -m1 -i 'watchdog' | cut -c1-100)" \
  sh -c "journalctl --after-cursor='$c' --no-pager -o cat | grep -q \"Failed with result 'watchdog'\""
kill -CONT "$pid" 2>/dev/null
rm -f /run/systemd/system/$UNIT.d/50-systest-watchdog.conf
systemctl daemon-reload
systemctl restart "$UNIT"
wait_for 15 is_active

# ---- a call -----------------------------------------------------------------------------------
say "a simulated call"
c=$(cursor)
start_asterisk call --calls 1 --call-seconds 4 --tone 440
wait_for 15 connected_since "$c"
wait_for 40 calls_ended call
# The simulator keeps running: let the bridge finish the call (delete its bridge and channel).
wait_for 10 unit_log_has "$c" "Call ended"
call_id=$(journalctl -u "$UNIT" --after-cursor="$c" -o json --no-pager | jq -r 'select(.CALL_ID != null) | .CALL_ID' | head -n1)
outcome=$(grep -m1 -E '^call 1 [^ ]+: (hungUp|continued)' "$OUT/sim-asterisk-call.log")
# Echo mode: the caller hears its own 440 Hz tone back through the bridge and the AI server.
heard_tone() { echo "$outcome" | grep -qE 'heard [1-9][0-9.]* s at 4[34][0-9] Hz'; }
check "a simulated call flows through the bridge" "${outcome:-no outcome}" heard_tone
check "journal has the call's CALL_ID field" "CALL_ID=$call_id: $(journalctl -u $UNIT CALL_ID="$call_id" --no-pager -o cat 2>/dev/null | wc -l) entries, AI saw callId=$call_id" \
  sh -c "test -n '$call_id' && journalctl -u $UNIT CALL_ID='$call_id' --no-pager -o cat | grep -q . && grep -q 'callId=$call_id' '$OUT/sim-ai.log'"
debug_at_info=$(journalctl -u "$UNIT" --after-cursor="$c" -p debug..debug -o cat --no-pager | wc -l)

# ---- reload -----------------------------------------------------------------------------------
say "systemctl reload with a broken config"
pid=$(prop MainPID)
echo '{ "ari": { "url": "http://127.0.0.1:8088", ' > "$CONFIG.new" && install_config "$CONFIG.new"
c=$(cursor)
systemctl reload "$UNIT"
rc=$?
sleep 0.5
st=$(prop StatusText)
check "a broken config on reload leaves the service active" "reload exit $rc; $(systemctl is-active $UNIT), MainPID $pid -> $(prop MainPID); StatusText: $st" \
  test "$(systemctl is-active $UNIT)" = active -a "$pid" = "$(prop MainPID)"
check "journal says the broken reload was rejected" "$(unit_log "$c" | grep -m1 'rejected' | cut -c1-120)" \
  unit_log_has "$c" "rejected"

say "systemctl reload with log level debug"
write_config debug
c=$(cursor)
systemctl reload "$UNIT"
rc=$?
check "systemctl reload keeps the MainPID" "exit $rc, MainPID $pid -> $(prop MainPID); $(unit_log "$c" | grep -m1 'Configuration reloaded' | cut -c1-80)" \
  test "$rc" = 0 -a "$pid" = "$(prop MainPID)" -a "$(systemctl is-active $UNIT)" = active

# ---- stop during a live call ---------------------------------------------------------------------
say "systemctl stop during a live call"
c=$(cursor)
start_asterisk stop --calls 1 --call-seconds 60 --tone 440
wait_for 15 connected_since "$c"
live() { foneaictl calls --quiet 2>/dev/null | grep -q .; }
wait_for 20 live
check "call is live before stop" "$(foneaictl calls --quiet 2>/dev/null | head -n1)" live
sleep 1
debug_at_debug=$(journalctl -u "$UNIT" --after-cursor="$c" -p debug..debug -o cat --no-pager | wc -l)
check "reload applies the new log level" \
  "debug lines during a call at info: $debug_at_info, after reload to debug: $debug_at_debug, same MainPID: $([ "$pid" = "$(prop MainPID)" ] && echo yes || echo no)" \
  test "$debug_at_info" = 0 -a "$debug_at_debug" -gt 0 -a "$pid" = "$(prop MainPID)"
t0=$(date +%s%N)
systemctl stop "$UNIT"
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
wait_for 15 calls_ended stop
check "systemctl stop continues the caller in the dialplan" \
  "stop took ${stop_ms} ms; sim: $(grep -m1 -E '^call 1 [^ ]+: (continued|hungUp)' "$OUT/sim-asterisk-stop.log" | grep -oE 'continued\([^)]*\)|hungUp\([^)]*\)|FONEAI_STATUS=[a-z_]*' | tr '\n' ' ')" \
  sh -c "grep -E '^call 1 [^ ]+: continued' '$OUT/sim-asterisk-stop.log' | grep -q 'FONEAI_STATUS=unavailable'"
cleanup_failures=$(unit_log "$c" | grep -c 'Clean-up step failed')
check "stop exits cleanly after the drain timeout, bridge and channel deleted" \
  "Result=$(prop Result) ExecMainStatus=$(prop ExecMainStatus), ${stop_ms} ms (drain 3 s), failed clean-up steps: $cleanup_failures" \
  test "$(prop Result)" = success -a "$stop_ms" -lt 10000 -a "$cleanup_failures" = 0
write_config info
start_asterisk idle2
systemctl start "$UNIT"
wait_for 15 is_active

# ---- security ---------------------------------------------------------------------------------
systemd-analyze security --no-pager "$UNIT" > "$OUT/security.txt" 2>&1
exposure=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$OUT/security.txt")
check "systemd-analyze security exposure <= 2.0" "exposure $exposure" \
  sh -c "test -n '$exposure' && awk 'BEGIN { exit !($exposure <= 2.0) }'"

# ---- upgrade, remove, purge -------------------------------------------------------------------
say "upgrade to $V2"
pid=$(prop MainPID)
dpkg -L foneai-bridge > "$OUT/package-files.txt"
if dpkg -i --force-confold /pkg/v2/foneai-bridge_*.deb > "$OUT/dpkg-upgrade.log" 2>&1; then
  wait_for 15 is_active
  check "upgrade restarts the service" "$(dpkg-query -W -f '${Version}' foneai-bridge), MainPID $pid -> $(prop MainPID), $(systemctl is-active $UNIT)" \
    test "$(dpkg-query -W -f '${Version}' foneai-bridge)" = "$V2" -a "$(prop MainPID)" != "$pid" -a "$(prop MainPID)" != 0 -a "$(systemctl is-active $UNIT)" = active
  check "upgrade keeps the modified config" "$(grep -c systest "$CONFIG") lines mention systest" grep -q systest-pw "$CONFIG"
else
  fail "upgrade restarts the service" "dpkg -i failed: see dpkg-upgrade.log"
fi

say "dpkg -r"
pid=$(prop MainPID)
dpkg -r foneai-bridge > "$OUT/dpkg-remove.log" 2>&1
rc=$?
check "remove stops the service" "dpkg -r exit $rc; ActiveState=$(prop ActiveState), process $pid $(kill -0 "$pid" 2>/dev/null && echo alive || echo gone)" \
  sh -c "test $rc = 0 && ! systemctl is-active --quiet $UNIT && ! kill -0 $pid 2>/dev/null && test ! -e /usr/bin/foneai-bridge"

say "dpkg -P"
dpkg -P foneai-bridge > "$OUT/dpkg-purge.log" 2>&1
rc=$?
left=""
while read -r f; do
  case "$f" in /.|/etc|/lib|/lib/systemd|/lib/systemd/system|/usr|/usr/bin|/usr/share|/usr/share/doc|/usr/share/man|/usr/share/man/man1|/usr/share/man/man8|/usr/share/bash-completion|/usr/share/bash-completion/completions|/usr/share/lintian|/usr/share/lintian/overrides) continue ;; esac
  [ -e "$f" ] && left="$left $f"
done < "$OUT/package-files.txt"
for f in /etc/foneai /run/foneai /etc/systemd/system/multi-user.target.wants/$UNIT /var/lib/systemd/deb-systemd-helper-enabled/$UNIT \
         /var/lib/systemd/deb-systemd-helper-enabled/multi-user.target.wants/$UNIT /var/lib/systemd/deb-systemd-helper-masked/$UNIT; do
  [ -e "$f" ] && left="$left $f"
done
orphans=$(find / -xdev \( -nouser -o -nogroup \) -not -path '/proc/*' 2>/dev/null | head -n5 | tr '\n' ' ')
check "purge leaves no user, config or files" \
  "dpkg -P exit $rc; user: $(getent passwd foneai || echo none); group: $(getent group foneai || echo none); left:${left:- none}; orphaned: ${orphans:-none}" \
  test "$rc" = 0 -a -z "$(getent passwd foneai)" -a -z "$(getent group foneai)" -a -z "$left" -a -z "$orphans" \
       -a "$(systemctl show -P LoadState $UNIT)" = not-found

systemctl stop "$SIM_UNIT" sim-ai.service 2>/dev/null
finish
