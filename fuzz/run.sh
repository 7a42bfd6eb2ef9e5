#!/usr/bin/env bash
# Builds every fuzz target once, then runs each for a bounded time from its checked-in seed
# corpus, and prints per target the inputs executed and the crashes found. Exits non-zero when
# any target crashed (or failed to run). See docs/fuzzing.md.
#
#   fuzz/run.sh [-t SECONDS] [-k] [-j] [TARGET...]
#     -t SECONDS  time per target (default 10)
#     -k          keep going after a crash (libFuzzer's fork mode): counts every crash a target
#                 finds in its time instead of stopping at the first
#     TARGET...   only these targets (default: all of them)
#
# Coverage instrumentation without a sanitizer (--sanitizer none): the code under test is safe
# Rust, so AddressSanitizer would find little that a panic does not, while it doubles the build
# (wasmer and cranelift included) and slows every input. Debug assertions and overflow checks
# are on, so an arithmetic overflow or a broken assertion is a crash.
#
# Inputs found while fuzzing go to fuzz/target/corpus-run/<target> (never into the checked-in
# seeds); crashing inputs to fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=10
keep_going=0
while getopts "t:k" opt; do
    case "$opt" in
        t) seconds="$OPTARG" ;;
        k) keep_going=1 ;;
        *) sed -n '2,12p' "$0"; exit 2 ;;
    esac
done
shift $((OPTIND - 1))

all_targets=(frame messages snapshot snapshot_codec session replay trace checkpoint store script)
if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    targets=("${all_targets[@]}")
fi

# cargo-fuzz passes -Z flags to rustc (and checks for a nightly compiler); this is a stable
# toolchain, so the fuzz build alone is allowed nightly flags.
export RUSTC_BOOTSTRAP=1

# 16 codegen units instead of cargo-fuzz's release default of one: the dependencies (wasmer,
# cranelift, rapier, bevy) dominate the build, and one unit per crate leaves the second core
# idle on the largest of them. The price is less inlining across units, a slower target.
build_args=(--codegen-units 16)

echo "== building fuzz targets"
build_start=$(date +%s)
cargo fuzz build --fuzz-dir fuzz --sanitizer none --debug-assertions "${build_args[@]}"
echo "built in $(($(date +%s) - build_start)) s"

triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir="fuzz/target/$triple/release"
logs="fuzz/target/logs"
mkdir -p "$logs"

failed=0
summary=()
for target in "${targets[@]}"; do
    seeds="fuzz/corpus/$target"
    work="fuzz/target/corpus-run/$target"
    artifacts="fuzz/artifacts/$target"
    mkdir -p "$work" "$artifacts" "$seeds"
    before=$(find "$artifacts" -type f | wc -l)
    log="$logs/$target.log"
    # -timeout: an input running this long counts as a crash (every target bounds per-input
    # cost well below it). -rss_limit_mb: wasmer reserves address space, not memory, so only
    # resident memory is limited. The work directory comes first: libFuzzer adds new inputs
    # to the first corpus directory only.
    args=(
        -max_total_time="$seconds"
        -timeout=30
        -rss_limit_mb=3072
        -print_final_stats=1
        -artifact_prefix="$artifacts/"
    )
    if [ "$keep_going" = 1 ]; then
        args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
    fi
    status=0
    "$bin_dir/$target" "${args[@]}" "$work" "$seeds" >"$log" 2>&1 || status=$?
    after=$(find "$artifacts" -type f | wc -l)
    crashes=$((after - before))
    # Executions: the final stats line, or in fork mode the last progress line's count.
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        execs=$(sed -n 's/^#\([0-9]*\).*/\1/p' "$log" | tail -1)
    fi
    summary+=("$(printf '%-16s %12s %8s' "$target" "${execs:-?}" "$crashes")")
    if [ "$crashes" -gt 0 ] || { [ "$status" -ne 0 ] && [ "$keep_going" = 0 ]; }; then
        failed=1
        echo "!! $target: exit status $status, $crashes crashing input(s) in $artifacts/ (log: $log)"
        grep -m 5 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" || true
    fi
done

echo "== fuzzing summary ($seconds s per target)"
printf '%-16s %12s %8s\n' target executions crashes
printf '%s\n' "${summary[@]}"
exit "$failed"
