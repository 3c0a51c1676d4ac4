#!/usr/bin/env bash
# README command 2: installs and starts what the tests need, then runs every check and test.
# Under CI=true nothing may be skipped: a missing browser is installed or the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

say "browser for the end-to-end tests"
if [ -x scripts/install-browser.sh ]; then
    if ! bash scripts/install-browser.sh; then
        if [ "${CI:-}" = "true" ]; then
            echo "cannot install chromium + chromium-driver, and CI=true forbids skipping" >&2
            exit 1
        fi
        echo "!!! chromium could not be installed: browser tests will skip (run scripts/install-browser.sh)" >&2
    fi
fi

say "Redis and PostgreSQL for the cluster tests"
# Start each service the way the machine does, but only if it is not answering already.
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    command -v redis-server >/dev/null || { sudo_if_needed apt-get install -y redis-server; }
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi
if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start
fi
for _ in $(seq 1 50); do
    redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break
    sleep 0.2
done
export CONFAB_TEST_REDIS_URL="${CONFAB_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export CONFAB_TEST_DATABASE_URL="${CONFAB_TEST_DATABASE_URL:-postgres://root@127.0.0.1:5432/postgres}"

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
