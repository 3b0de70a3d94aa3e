#!/usr/bin/env bash
# Fuzzes every codec target for N seconds each: bash fuzz/run.sh [SECONDS]
# (default 20). Exits non-zero if a target finds a crash; the input that
# crashed is left in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs a nightly toolchain: libFuzzer's coverage instrumentation
# and the sanitizers are enabled with -Z flags. Without nightly (a fresh
# machine of this project has only stable, and no toolchain can be fetched),
# this script only checks that the targets compile with stable and says so;
# the same "never panics" and round-trip properties then still run on stable
# as proptest tests in `cargo test -p eio-core` (src/protocol/prop_tests.rs).
set -euo pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]]; then
    echo "usage: $0 [SECONDS]" >&2
    exit 2
fi
cd "$(dirname "$0")"

targets=(v4_packet v4_payload v3_string_payload v3_binary_payload v3_ws_packet jsonp_body ws_frames ws_extensions query stream_packets)

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz/run.sh: no nightly toolchain, so libFuzzer cannot run here." >&2
    echo "fuzz/run.sh: checking that the fuzz targets compile with stable instead (nothing is fuzzed)." >&2
    cargo check --bins
    echo "fuzz/run.sh: targets compile; fuzzing skipped for want of nightly."
    exit 0
fi

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: installing cargo-fuzz from crates.io" >&2
    cargo +nightly install cargo-fuzz --locked
fi

# One build for every target, then short runs that reuse it.
cargo +nightly fuzz build
for t in "${targets[@]}"; do
    echo "== fuzzing $t for ${secs}s"
    mkdir -p "corpus/$t"
    # libFuzzer's per-input progress lines are dropped; crashes, the panic
    # message and the final statistics are kept.
    cargo +nightly fuzz run "$t" "corpus/$t" -- \
        -max_total_time="$secs" -dict=eio.dict -max_len=4096 -print_final_stats=1 2>&1 |
        { grep -Ev '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse|RELOAD)' || true; }
done
echo "fuzz/run.sh: all ${#targets[@]} targets ran ${secs}s each without a crash."
