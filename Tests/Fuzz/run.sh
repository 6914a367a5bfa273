#!/usr/bin/env bash
# Builds the libFuzzer targets (Sources/FoneAIFuzz) with AddressSanitizer and runs each for a set
# time, starting from the committed seed corpus in Tests/Fuzz/corpus/<target>/.
#
#   Tests/Fuzz/run.sh [--seconds N] [--jobs N] [--no-build] [TARGET...]
#   Tests/Fuzz/run.sh --build-only
#   Tests/Fuzz/run.sh --reproduce TARGET FILE      run one input (a crash file) and show the stack
#
# TARGET: rtp ari ai control config (default: all). Environment: FUZZ_SECONDS (per target, default
# 60), FUZZ_JOBS (targets run at once, default 1), FUZZ_SCRATCH (default .build-fuzz), SWIFT.
#
# Prints, per target, the executions done and the crashes found. Exits 1 if any target crashed
# (or timed out, ran out of memory, or failed to start). Everything a run leaves is under out/fuzz/
# (git-ignored): crashes/<target>/ (crash-*, timeout-*, oom-*, leak-* inputs), corpus/<target>/
# (inputs found, reused by the next run), logs/<target>.log.
set -euo pipefail
cd "$(dirname "$0")/../.."

SWIFT=${SWIFT:-swift}
SECONDS_PER_TARGET=${FUZZ_SECONDS:-60}
JOBS=${FUZZ_JOBS:-1}
SCRATCH=${FUZZ_SCRATCH:-.build-fuzz}
OUT=out/fuzz
ALL_TARGETS=(rtp ari ai control config)
BUILD=1
BUILD_ONLY=0
REPRODUCE=()
TARGETS=()

usage() { sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_PER_TARGET=$2; shift 2 ;;
    --seconds=*) SECONDS_PER_TARGET=${1#*=}; shift ;;
    --jobs) JOBS=$2; shift 2 ;;
    --jobs=*) JOBS=${1#*=}; shift ;;
    --no-build) BUILD=0; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;
    --reproduce) [ $# -ge 3 ] || usage 2; REPRODUCE=("$2" "$3"); shift 3 ;;
    -h|--help) usage ;;
    -*) echo "run.sh: unknown option $1" >&2; usage 2 ;;
    *) TARGETS+=("$1"); shift ;;
  esac
done
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=("${ALL_TARGETS[@]}")
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "run.sh: unknown target $t (one of: ${ALL_TARGETS[*]})" >&2; exit 2; }
done
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || { echo "run.sh: --seconds needs a whole number" >&2; exit 2; }
[[ "$JOBS" =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: --jobs needs a positive number" >&2; exit 2; }

BIN=$SCRATCH/debug/FoneAIFuzz
if [ "$BUILD" = 1 ]; then
  echo "fuzz: building FoneAIFuzz with -sanitize=fuzzer,address in $SCRATCH"
  start=$(date +%s)
  # Only this product: the daemon's own executables have a main, which libFuzzer provides here.
  # swiftc keeps only the LAST -sanitize= flag, and SwiftPM passes --sanitize values as separate
  # flags in no fixed order (so a build got either coverage or ASan, never both): the combined
  # -Xswiftc flag comes after them, in every compile and in the link.
  "$SWIFT" build --scratch-path "$SCRATCH" --sanitize=fuzzer --sanitize=address \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DFONEAI_LIBFUZZER --product FoneAIFuzz
  echo "fuzz: build took $(( $(date +%s) - start )) s"
  # Both instrumentations must be in the harness and in the library code it calls.
  for module in FoneAIFuzz FoneAIBridge FoneAIControl; do
    objs=("$SCRATCH"/debug/$module.build/*.swift.o)
    obj=${objs[0]}
    sections=$(objdump -h "$obj") symbols=$(nm "$obj")
    if ! grep -q sancov <<<"$sections" || ! grep -q __asan_ <<<"$symbols"; then
      echo "run.sh: $obj lacks coverage (sancov) or ASan instrumentation: the fuzz build is broken" >&2
      exit 1
    fi
  done
fi
[ "$BUILD_ONLY" = 1 ] && exit 0
[ -x "$BIN" ] || { echo "run.sh: $BIN not built (run without --no-build)" >&2; exit 1; }

# ASan stops at the first error; leaks are checked by libFuzzer after inputs that allocated more
# than they freed. The Swift runtime's own backtracer is off: under ASan it can hang after a crash
# (holding the log open); libFuzzer's handler prints the stack (demangled in the summary below).
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export SWIFT_BACKTRACE=${SWIFT_BACKTRACE:-enable=no}
if [ -z "${ASAN_SYMBOLIZER_PATH:-}" ] && command -v llvm-symbolizer >/dev/null; then
  ASAN_SYMBOLIZER_PATH=$(command -v llvm-symbolizer)
  export ASAN_SYMBOLIZER_PATH
fi

if [ ${#REPRODUCE[@]} -gt 0 ]; then
  # Runs the input once; a crash shows the Swift stack and exits non-zero.
  exec "$BIN" --target="${REPRODUCE[0]}" -runs=1 "${REPRODUCE[1]}"
fi

# Longest input per target: a datagram, a control line burst, JSON documents.
max_len() {
  case "$1" in
    rtp) echo 1500 ;;
    control) echo 600 ;;
    *) echo 8192 ;;
  esac
}

demangle() {
  if "$SWIFT" demangle --help >/dev/null 2>&1; then "$SWIFT" demangle --simplified; else cat; fi
}

run_target() {
  local t=$1 log=$OUT/logs/$1.log
  mkdir -p "$OUT/corpus/$t" "$OUT/crashes/$t" "$OUT/logs"
  # New inputs go to the first corpus directory only: the committed seeds stay untouched.
  "$BIN" --target="$t" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=4096 -max_len="$(max_len "$t")" \
    -dict="Tests/Fuzz/dict/$t.dict" -artifact_prefix="$OUT/crashes/$t/" \
    -print_final_stats=1 -print_pcs=0 \
    "$OUT/corpus/$t" "Tests/Fuzz/corpus/$t" >"$log" 2>&1
}

summarize() {
  local t=$1 rc=$2 before=$3 log=$OUT/logs/$1.log
  local execs crashes found
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  [ -n "$execs" ] || execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
  [ -n "$execs" ] || execs=0
  found=$(ls "$OUT/crashes/$t" 2>/dev/null | grep -E '^(crash|timeout|oom|leak)-' | sort || true)
  crashes=$(comm -13 <(echo "$before") <(echo "$found") | grep -c . || true)
  if [ "$rc" != 0 ] && [ "$crashes" = 0 ]; then crashes=1; fi  # failed without writing an input
  printf 'fuzz %-8s executions: %-9s crashes: %s   (%s s, log %s)\n' "$t" "$execs" "$crashes" "$SECONDS_PER_TARGET" "$log"
  if [ "$crashes" != 0 ]; then
    echo "---- $t: end of $log ----"
    grep -E 'Fatal error|fuzz invariant|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|Test unit written|^SUMMARY' "$log" | head -20 || true
    # The first frames in the project's code (the harness's own frames included).
    grep -E '^ *#[0-9]+ 0x[0-9a-f]+ in ' "$log" | grep -E '/Sources/' | head -12 | demangle || true
    [ "$rc" != 0 ] && ! comm -13 <(echo "$before") <(echo "$found") | grep -q . && tail -20 "$log"
    comm -13 <(echo "$before") <(echo "$found") | while read -r f; do
      [ -n "$f" ] && echo "reproduce: Tests/Fuzz/run.sh --no-build --reproduce $t $OUT/crashes/$t/$f"
    done
    echo "----"
    return 1
  fi
  return 0
}

echo "fuzz: ${TARGETS[*]}, $SECONDS_PER_TARGET s each, $JOBS at a time"
declare -A RC BEFORE
failed=0
running=0
for t in "${TARGETS[@]}"; do
  BEFORE[$t]=$(ls "$OUT/crashes/$t" 2>/dev/null | grep -E '^(crash|timeout|oom|leak)-' | sort || true)
done
pids=()
names=()
for t in "${TARGETS[@]}"; do
  run_target "$t" & pids+=($!); names+=("$t")
  running=$((running + 1))
  if [ "$running" -ge "$JOBS" ]; then
    # Wait for the oldest: keeps the summary in target order.
    i=$(( ${#pids[@]} - running ))
    if wait "${pids[$i]}"; then RC[${names[$i]}]=0; else RC[${names[$i]}]=$?; fi
    summarize "${names[$i]}" "${RC[${names[$i]}]}" "${BEFORE[${names[$i]}]}" || failed=1
    running=$((running - 1))
  fi
done
for (( i = ${#pids[@]} - running; i < ${#pids[@]}; i++ )); do
  if wait "${pids[$i]}"; then RC[${names[$i]}]=0; else RC[${names[$i]}]=$?; fi
  summarize "${names[$i]}" "${RC[${names[$i]}]}" "${BEFORE[${names[$i]}]}" || failed=1
done

if [ "$failed" != 0 ]; then
  echo "fuzz: FAILED: crash inputs are in $OUT/crashes/ (git-ignored)"
  exit 1
fi
echo "fuzz: no crashes"
