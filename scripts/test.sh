#!/usr/bin/env bash
# README command 2: installs and starts what the tests need, then runs every check and test.
# Under CI=true nothing may be skipped: a missing service is installed or the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

# The browser, Redis and PostgreSQL, installed and started when missing (scripts/services.sh says
# what it does at each step); exports CONFAB_TEST_REDIS_URL and CONFAB_TEST_DATABASE_URL.
# shellcheck source=scripts/services.sh
source scripts/services.sh
ensure_services
# Headings with a blank line before them from here on (services.sh's `say` is more compact).
say() { printf '\n==> %s\n' "$*"; }

say "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings

say "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-fail-fast
    # nextest does not run doctests
    cargo test --workspace --locked --doc
else
    cargo test --workspace --locked --no-fail-fast
fi

# ---- fuzzing (issue 10, point 11) ----------------------------------------------------------
# Every cargo-fuzz target in fuzz/ for 60 s on the nightly toolchain, 0 crashes allowed; the
# corpus it grows is kept in fuzz/corpus. FUZZ_SECONDS changes the time per target.
say "fuzzing: every target in fuzz/ for ${FUZZ_SECONDS:-60}s (scripts/fuzz.sh)"
bash scripts/fuzz.sh

say "benchmark smoke run (small sizes, a few seconds: keeps confab-bench from rotting)"
# Debug builds, already mostly built by the tests: the smoke run checks that the bench and the
# server still speak the same protocol, not how fast they are (BENCHMARKS.md is for that).
cargo build --locked -p confab -p confab-bench --bin confab --bin confab-bench
# Exits non-zero if any delivery was lost or duplicated.
"${CARGO_TARGET_DIR:-target}/debug/confab-bench" fanout --spawn "${CARGO_TARGET_DIR:-target}/debug/confab" \
    --members 50 --senders 2 --max-steps 3 --step-secs 1

say "all green"
