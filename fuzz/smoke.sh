#!/usr/bin/env bash
# Smoke-run every fuzz target for a few seconds: ./fuzz/smoke.sh [SECONDS]  (default 10).
#
# Exits non-zero if a target crashes; the crashing input is left in
# fuzz/artifacts/<target>/. Reproduce with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run <target> fuzz/artifacts/<target>/<file>
#
# Only stable Rust is installed: RUSTC_BOOTSTRAP=1 lets it accept the -Z
# flags (sanitizer, coverage instrumentation) that cargo-fuzz passes.
set -euo pipefail

secs="${1:-10}"
cd "$(dirname "$0")"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1

targets=$(cargo fuzz list)
cargo fuzz build

for t in $targets; do
    # New inputs go to the first corpus dir (scratch); the checked-in seeds
    # in corpus/<target> are only read, so they stay a small, reviewed set.
    scratch="scratch/$t"
    rm -rf "$scratch"
    mkdir -p "$scratch"
    echo "== $t: ${secs}s"
    if ! cargo fuzz run "$t" "$scratch" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1; then
        echo "!! $t crashed; input saved under fuzz/artifacts/$t/" >&2
        exit 1
    fi
done
echo "all targets ran ${secs}s without a crash"
