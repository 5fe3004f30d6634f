#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (seconds, default 60), one
# libFuzzer process each (-j1 spirit: the machine is shared), prints each
# target's execution count, and exits non-zero if any target found a crash.
#
#   bash fuzz/run.sh [SECONDS] [TARGET...]     (from the repo root or fuzz/)
#
# Env: FUZZ_SEED / FUZZ_RUNS (CI uses a fixed seed and run count, so a run is
# reproducible: same seeds + same seed + same count = same inputs tried; the
# default is a random seed until the time limit), FUZZ_BUILD_FLAGS (default "-O -a -s none": optimised, debug assertions on,
# no sanitizer for speed on shared cores), FUZZ_MAX_LEN (default 4096).
# New corpus entries go to fuzz/target/corpus-work/<target>, not to the
# committed seeds; crashes land in fuzz/artifacts/<target>/.
set -uo pipefail

secs="${1:-60}"
shift || true
cd "$(dirname "$0")"

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz..." >&2
    cargo install cargo-fuzz --locked || cargo install cargo-fuzz || exit 2
fi

read -r -a build_flags <<<"${FUZZ_BUILD_FLAGS:--O -a -s none}"
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo +nightly fuzz list)
fi

CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}" cargo +nightly fuzz build "${build_flags[@]}" || exit 2

failed=0
mkdir -p target/fuzz-logs
for t in "${targets[@]}"; do
    work="target/corpus-work/$t"
    log="target/fuzz-logs/$t.log"
    mkdir -p "$work" "corpus/$t"
    cargo +nightly fuzz run "${build_flags[@]}" "$t" "$work" "corpus/$t" -- \
        -max_total_time="$secs" -runs="${FUZZ_RUNS:--1}" -seed="${FUZZ_SEED:-0}" \
        -print_final_stats=1 -timeout=10 -dict=http.dict \
        -max_len="${FUZZ_MAX_LEN:-4096}" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
    if [ "$rc" -ne 0 ]; then
        failed=1
        echo "$t: FAILED (exit $rc) after ${execs:-?} execs, $cov; log: fuzz/$log"
        grep -E 'panicked|Test unit written|SUMMARY' "$log" | head -5
    else
        echo "$t: ok, ${execs:-?} execs (limit ${secs}s), $cov"
    fi
done
exit "$failed"
