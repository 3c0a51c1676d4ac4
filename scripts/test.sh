#!/usr/bin/env bash
# README command 2: installs and starts what the tests need, then runs every check and test.
# Under CI=true nothing may be skipped: a missing browser is installed or the run fails.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n==> %s\n' "$*"; }

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

say "all green"
