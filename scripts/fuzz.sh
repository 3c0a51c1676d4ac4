#!/usr/bin/env bash
# Fuzzes confab's parsers (the targets in fuzz/fuzz_targets): installs cargo-fuzz if missing,
# then runs every target for FUZZ_SECONDS (default 60) with the nightly toolchain and fails on
# any crash. What libFuzzer finds is kept, minimised, in fuzz/corpus/<target>, which is
# committed, so each run starts where the last one stopped. Crashing inputs land in
# fuzz/artifacts/<target> (not committed); reproduce with `cargo +nightly fuzz run TARGET FILE`.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${FUZZ_SECONDS:-60}"
# `--fuzz-dir` goes right after the subcommand: anything after `--` is libFuzzer's. No
# sanitizer: the targets are safe Rust, where AddressSanitizer finds little, and building the
# whole server with it on the nightly toolchain costs minutes of CI time (panics and failed
# assertions are still crashes).
fuzz() {
    local command="$1"
    shift
    cargo +nightly fuzz "$command" --fuzz-dir fuzz --sanitizer none "$@"
}

if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzzing needs the nightly toolchain (rustup toolchain install nightly)" >&2
    exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

fuzz build
for target in $(cargo +nightly fuzz list --fuzz-dir fuzz); do
    mkdir -p "fuzz/corpus/$target"
    echo "==> fuzzing $target for ${seconds}s"
    # A crash or a panic makes libFuzzer exit non-zero, and this script with it.
    fuzz run "$target" "fuzz/corpus/$target" -- -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
    fuzz cmin "$target" "fuzz/corpus/$target"
done
echo "fuzzing: every target ran ${seconds}s without a crash"
