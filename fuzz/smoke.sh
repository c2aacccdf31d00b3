#!/usr/bin/env bash
# Bounded fuzz run of every cargo-fuzz target, for CI and for long runs.
#
#   fuzz/smoke.sh                          # every target, 25 s each
#   FUZZ_SECONDS=570 FUZZ_RUNS=12000000 fuzz/smoke.sh    # the long run
#   FUZZ_TARGETS="hello regcred" fuzz/smoke.sh
#
# Environment:
#   FUZZ_SECONDS    time limit per target (default 25)
#   FUZZ_RUNS       also stop a target after this many executions (default: none)
#   FUZZ_TARGETS    space-separated targets (default: all of fuzz/fuzz_targets)
#   FUZZ_SANITIZER  cargo-fuzz sanitizer (default none: debug assertions and
#                   overflow checks stay on; the code under test is safe Rust)
#   FUZZ_WORK       folder for the corpus the fuzzer grows (default: a temp
#                   folder; the committed seeds in fuzz/corpus are only read)
#   FUZZ_ARGS       more libFuzzer options, e.g. "-use_value_profile=1"
#
# Uses the machine's stable toolchain: cargo-fuzz needs -Z flags, which
# RUSTC_BOOTSTRAP=1 allows. Installs cargo-fuzz if it is missing. Exits
# non-zero if any target crashes (the input is kept in fuzz/artifacts/<target>/
# and its path printed); prints one summary line per target.
set -euo pipefail
cd "$(dirname "$0")"

secs=${FUZZ_SECONDS:-25}
runs=${FUZZ_RUNS:-}
san=${FUZZ_SANITIZER:-none}
targets=${FUZZ_TARGETS:-$(cd fuzz_targets && ls -- *.rs | sed 's/\.rs$//' | tr '\n' ' ')}
export RUSTC_BOOTSTRAP=1
export CARGO_TERM_COLOR=never

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [ -n "${FUZZ_WORK:-}" ]; then
    work=$FUZZ_WORK
    mkdir -p "$work"
else
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
fi

start=$(date +%s)
echo "== cargo fuzz build (sanitizer: $san)"
cargo fuzz build -s "$san"
echo "== built in $(($(date +%s) - start)) s"
# Run the binaries just built (not `cargo fuzz run`, which would rebuild
# whenever the tree changes while the targets run).
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"

failed=()
summary=()
for t in $targets; do
    mkdir -p "$work/$t"
    log="$work/$t.log"
    args=(-max_total_time="$secs" -print_final_stats=1 -timeout=10)
    [ -n "$runs" ] && args+=(-runs="$runs")
    # shellcheck disable=SC2206  # FUZZ_ARGS is a list of options
    args+=(${FUZZ_ARGS:-})
    echo "== $t: ${secs} s${runs:+ or $runs runs}"
    t0=$(date +%s)
    mkdir -p "artifacts/$t"
    if "$bin/$t" -artifact_prefix="artifacts/$t/" "${args[@]}" "$work/$t" "corpus/$t" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
        grep -E 'panicked|ERROR|SUMMARY|Test unit written|assertion' "$log" | head -20 || true
        tail -n 40 "$log"
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
    line=$(printf '%-15s %-6s execs=%-10s exec/s=%-8s cov=%-6s wall=%ss' \
        "$t" "$status" "${execs:-?}" "${rate:-?}" "${cov:-?}" "$(($(date +%s) - t0))")
    summary+=("$line")
    echo "$line"
done

rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || rev="$rev+changes"
echo "== summary ($(date -u +%Y-%m-%dT%H:%M:%SZ), commit $rev, total $(($(date +%s) - start)) s)"
printf '%s\n' "${summary[@]}"
if ((${#failed[@]})); then
    echo "FAIL: fuzz targets crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz smoke: ${#summary[@]} targets, 0 crashes"
