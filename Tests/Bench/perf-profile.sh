#!/usr/bin/env bash
# Profiles the daemon under load with perf's cpu-clock sampling (user and kernel stacks; works
# where hardware counters are not available): one `foneai-sim load` run, perf attached to the
# daemon for PERF_SECONDS in the middle of the hold.
#   Tests/Bench/perf-profile.sh [CALLS] [HOLD_SECONDS]   (defaults 200, 40)
# Output: out/bench/perf-CALLS.data, perf-CALLS.txt (flat, by symbol), perf-CALLS-dso.txt (by binary),
# load-perf-CALLS.json/.txt (the run's results).
set -euo pipefail
cd "$(dirname "$0")/../.."
CALLS="${1:-200}"
HOLD="${2:-40}"
RATE="${BENCH_RATE:-20}"
BIN="${BENCH_BIN:-.build/release}"
OUT="${BENCH_OUT:-out/bench}"
PERF_SECONDS="${PERF_SECONDS:-15}"
mkdir -p "$OUT"
log="$OUT/load-perf-$CALLS.stderr"
nice -n "${BENCH_NICE:--20}" "$BIN/foneai-sim" load --calls "$CALLS" --duration "$HOLD" --rate "$RATE" --bridge "$BIN/foneai-bridge" \
    --json "$OUT/load-perf-$CALLS.json" >"$OUT/load-perf-$CALLS.txt" 2>"$log" &
sim=$!
pid=""
for _ in $(seq 1 200); do
    pid="$(sed -n 's/.* pid \([0-9]*\);.*/\1/p' "$log" | head -1)"
    grep -q "holding" "$log" 2>/dev/null && break
    sleep 0.2
done
[ -n "$pid" ] || { echo "no daemon pid in $log"; kill "$sim"; exit 1; }
sleep $(( HOLD / 2 - PERF_SECONDS / 2 > 0 ? HOLD / 2 - PERF_SECONDS / 2 : 0 ))
perf record -e cpu-clock -F 999 -g -p "$pid" -o "$OUT/perf-$CALLS.data" -- sleep "$PERF_SECONDS" 2>/dev/null
wait "$sim"
perf report -i "$OUT/perf-$CALLS.data" --stdio --no-children --sort symbol 2>/dev/null | grep -E '^ +[0-9]' | head -60 >"$OUT/perf-$CALLS.txt" || true
perf report -i "$OUT/perf-$CALLS.data" --stdio --no-children --sort dso 2>/dev/null | grep -E '^ +[0-9]' >"$OUT/perf-$CALLS-dso.txt" || true
echo "daemon pid $pid profiled for ${PERF_SECONDS} s with $CALLS calls:"
cat "$OUT/perf-$CALLS-dso.txt"
head -40 "$OUT/perf-$CALLS.txt"
