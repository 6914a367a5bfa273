#!/usr/bin/env bash
# `make bench`: the load benchmark sweep (issue 7). Runs `foneai-sim load` once per call count
# against the release daemon, then looks for the largest call count that still meets the
# load-dependent targets, and writes docs/benchmarks.md and docs/benchmarks.json.
#
#   BENCH_CALLS="50 100 200 500"  call counts of the sweep
#   BENCH_SECONDS=60              seconds all calls are up, per run
#   BENCH_RATE=20                 new calls (and hangups) per second
#   BENCH_SEARCH=1                then bisect for the largest passing count (0: no search)
#   BENCH_STEP=50                 resolution of that search
#   BENCH_REPEAT=1                runs per call count (seeds 1, 2, ...); a count passes only if
#                                 every one of its runs meets every target. On a VM whose speed
#                                 drifts, one run per count can pass or fail by luck
#   BENCH_BIN=.build/release      where foneai-bridge and foneai-sim are
#   BENCH_OUT=out/bench           per-run JSON and text output
#   BENCH_DOCS=docs               where benchmarks.md and benchmarks.json go
#   BENCH_NICE=-20                nice value for the simulator (negative needs root): other work on
#                                 its CPU (kernel threads, network softirqs) gets short slices only
#   BENCH_PIN=1                   daemon on the last CPU alone, simulator on the others (0: both
#                                 anywhere); the target allows the daemon one core
#   BENCH_REALTIME=0              SCHED_FIFO priority of the simulator's event loop (0: normal
#                                 scheduling; needs root). Off by default: a real-time loop that
#                                 cannot keep up is throttled by the kernel for 50 ms of every
#                                 second (sched_rt_runtime_us), which the run then measures
#   BENCH_DAEMON_RTPRIO=0         the daemon's media.realtimePriority: its threads under
#                                 SCHED_RR, so kernel threads on its CPU wait for it (0: normal
#                                 scheduling)
set -euo pipefail
cd "$(dirname "$0")/../.."

CALLS="${BENCH_CALLS:-50 100 200 500}"
SECS="${BENCH_SECONDS:-60}"
RATE="${BENCH_RATE:-20}"
SEARCH="${BENCH_SEARCH:-1}"
STEP="${BENCH_STEP:-50}"
REPEAT="${BENCH_REPEAT:-1}"
BIN="${BENCH_BIN:-.build/release}"
OUT="${BENCH_OUT:-out/bench}"
DOCS="${BENCH_DOCS:-docs}"
SIM="$BIN/foneai-sim"
NICE="${BENCH_NICE:--20}"
PIN="${BENCH_PIN:-1}"
PIN_CMD=()
PIN_ARGS=()
if [ "$PIN" = 1 ] && [ "$(nproc)" -ge 2 ] && command -v taskset >/dev/null; then
    last=$(( $(nproc) - 1 ))
    PIN_CMD=(taskset -c "0-$(( last - 1 ))")
    PIN_ARGS=(--daemon-cpu "$last")
fi
REALTIME="${BENCH_REALTIME:-0}"
RT_ARGS=()
if [ "$REALTIME" != 0 ] && command -v chrt >/dev/null && chrt -f "$REALTIME" true 2>/dev/null; then
    RT_ARGS=(--realtime "$REALTIME")
fi
DAEMON_RTPRIO="${BENCH_DAEMON_RTPRIO:-0}"
NICE_CMD=()
if [ "$NICE" != 0 ] && nice -n "$NICE" true 2>/dev/null && [ "$(nice -n "$NICE" nice)" = "$NICE" ]; then
    NICE_CMD=(nice -n "$NICE")
fi

command -v jq >/dev/null || { echo "run.sh needs jq (apt-get install jq)"; exit 2; }
[ -x "$SIM" ] && [ -x "$BIN/foneai-bridge" ] || { echo "no release binaries in $BIN: run 'make bench' (it builds them)"; exit 2; }
mkdir -p "$OUT"
rm -f "$OUT"/load-*.json "$OUT"/load-*.txt "$OUT"/stalled-*

echo "nice: ${NICE_CMD[*]:-none}; pinning: ${PIN_CMD[*]:-none} ${PIN_ARGS[*]:-}; simulator: ${RT_ARGS[*]:-normal scheduling}; daemon: real-time priority $DAEMON_RTPRIO"
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# A run whose simulator stalled (its own RTP sends paused; see LoadBenchmark.simulatorStallMs)
# measured the instrument, not the bridge: such a row is kept as stalled-N.* and run again once.
once() {  # once NAME N SEED: one load run, results in $OUT/load-NAME.json
    local name="$1" n="$2" seed="$3"
    echo "=== $n calls, ${SECS} s, ${RATE}/s, seed $seed (load average $(cut -d' ' -f1 /proc/loadavg))"
    if "${PIN_CMD[@]}" "${NICE_CMD[@]}" "$SIM" load --calls "$n" --duration "$SECS" --rate "$RATE" --seed "$seed" --bridge "$BIN/foneai-bridge" \
        "${PIN_ARGS[@]}" "${RT_ARGS[@]}" --daemon-realtime-priority "$DAEMON_RTPRIO" --json "$OUT/load-$name.json" | tee "$OUT/load-$name.txt"; then
        :
    else
        echo "run with $n calls failed (see above)"
        return 1
    fi
    sleep 5  # let the previous run's sockets close
}

stalled() { jq -e '.simulatorStalled == true' "$OUT/load-$1.json" >/dev/null; }

run_name() { if [ "$2" = 1 ]; then echo "$1"; else echo "$1-$2"; fi; }  # run_name N I: load-N.json, load-N-2.json, ...

run() {  # run N: BENCH_REPEAT runs with seeds 1, 2, ...; each once more if the simulator stalled
    local n="$1" i name
    for i in $(seq 1 "$REPEAT"); do
        name=$(run_name "$n" "$i")
        once "$name" "$n" "$i" || return 1
        if stalled "$name"; then
            mv "$OUT/load-$name.json" "$OUT/stalled-$name.json"
            mv "$OUT/load-$name.txt" "$OUT/stalled-$name.txt"
            echo "the simulator stalled in the run with $n calls (its own RTP sends paused): running it again"
            once "$name" "$n" "$i"
        fi
    done
}

passes() {  # passes N: every run with N calls met every target
    local i f
    for i in $(seq 1 "$REPEAT"); do
        f="$OUT/load-$(run_name "$1" "$i").json"
        [ -f "$f" ] && [ "$(jq -r .allTargetsMet "$f")" = true ] || return 1
    done
}

for n in $CALLS; do run "$n" || true; done

if [ "$SEARCH" = 1 ]; then
    lo=0; hi=0
    for n in $CALLS; do
        if passes "$n"; then [ "$n" -gt "$lo" ] && lo=$n; fi
    done
    for n in $CALLS; do
        if ! passes "$n" && [ "$n" -gt "$lo" ] && { [ "$hi" = 0 ] || [ "$n" -lt "$hi" ]; }; then hi=$n; fi
    done
    if [ "$hi" = 0 ] && [ "$lo" -gt 0 ]; then
        # Every run passed: go up until one fails (at most 4 steps of doubling).
        n=$lo
        for _ in 1 2 3 4; do
            n=$((n * 2)); run "$n" || true
            if passes "$n"; then lo=$n; else hi=$n; break; fi
        done
    fi
    if [ "$hi" -gt 0 ]; then
        while [ $((hi - lo)) -gt "$STEP" ]; do
            mid=$(( (lo + hi) / 2 / STEP * STEP ))
            [ "$mid" -le "$lo" ] && mid=$((lo + STEP))
            run "$mid" || true
            if passes "$mid"; then lo=$mid; else hi=$mid; fi
        done
    fi
    echo "largest call count meeting every target: $lo (first failing: $hi)"
fi

"$SIM" load report --markdown "$DOCS/benchmarks.md" --json "$DOCS/benchmarks.json" \
    --command "make bench (BENCH_CALLS=\"$CALLS\" BENCH_SECONDS=$SECS BENCH_RATE=$RATE BENCH_REPEAT=$REPEAT BENCH_PIN=$PIN BENCH_NICE=$NICE BENCH_REALTIME=$REALTIME BENCH_DAEMON_RTPRIO=$DAEMON_RTPRIO)" "$OUT"/load-*.json

stalls=$(shopt -s nullglob; for f in "$OUT"/stalled-*.json; do jq -r '"\(.parameters.calls) calls (\(.pacing.simulatorSendIntervalMs.max | floor) ms)"' "$f"; done | paste -sd, - | sed 's/,/, /g')
if [ -n "$stalls" ]; then
    # Into the generated part (above the marker), so the next report replaces it.
    note=$(printf 'Run again because the simulator stalled (its own RTP sends paused, which the bridge cannot cause, and the calls then up carry the pause to their end): %s. The stalled runs are in `%s/stalled-N.*`, not in the tables.' "$stalls" "$OUT")
    awk -v note="$note" '/^<!-- end of the generated part/ { print note; print "" } { print }' "$DOCS/benchmarks.md" >"$DOCS/benchmarks.md.new"
    mv "$DOCS/benchmarks.md.new" "$DOCS/benchmarks.md"
fi
