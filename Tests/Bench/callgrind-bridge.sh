#!/bin/sh
# Runs foneai-bridge under valgrind's callgrind; pass it to `foneai-sim load --bridge`.
# Valgrind 3.19 cannot read the toolchain's DWARF 5, so this runs a copy without debug info
# (function names come from the symbol table). CALLGRIND_OUT: output file (default
# out/bench/callgrind.out); BRIDGE: the real binary (default .build/release/foneai-bridge).
set -e
bin="${BRIDGE:-.build/release/foneai-bridge}"
out="${CALLGRIND_OUT:-out/bench/callgrind.out}"
copy="$(dirname "$out")/foneai-bridge.nodebug"
strip --strip-debug -o "$copy" "$bin"
exec valgrind --tool=callgrind --callgrind-out-file="$out" ${CALLGRIND_OPTS:-} "$copy" "$@"
