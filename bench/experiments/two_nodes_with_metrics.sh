#!/usr/bin/env bash
# Two confab nodes on one PostgreSQL database and Redis, each with its Prometheus listener, then
# `confab-bench persist` over both; prints the bench's summary and, per node, where a batch's
# time went (store, Redis publish, delivery). `persist --spawn --nodes 2` measures the same load
# but cannot give the nodes metrics addresses of their own.
#
#   bench/experiments/two_nodes_with_metrics.sh [BINARY] [ROOMS] [RATE] [DURATION]
#
# Needs PostgreSQL on 127.0.0.1:5432 (trust auth, role root) and Redis on 127.0.0.1:6379, and a
# release build of confab-bench. Ports 18101-18102 and 19101-19102 must be free.
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=${1:-target/release/confab}
ROOMS=${2:-1000}
RATE=${3:-50}
DURATION=${4:-8}
DB=confab_two_nodes_$$
PG=postgres://root@127.0.0.1:5432
createdb -h 127.0.0.1 -U root "$DB"
DIRS=$(mktemp -d)
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    dropdb -h 127.0.0.1 -U root "$DB" || true
    rm -rf "$DIRS"
}
trap cleanup EXIT
for node in 1 2; do
    mkdir "$DIRS/$node"
    "$BIN" --addr "127.0.0.1:1810$node" --data-dir "$DIRS/$node" \
        --metrics-addr "127.0.0.1:1910$node" --rate-limits off --idle-timeout 600 \
        --database-url "$PG/$DB" --redis-url redis://127.0.0.1:6379 --redis-prefix "two$$" \
        >"$DIRS/$node/log" 2>&1 &
    PIDS+=($!)
    # The first node migrates the schema; the second then finds it ready.
    for _ in $(seq 100); do
        curl -sf "127.0.0.1:1810$node/healthz" >/dev/null && break
        sleep 0.1
    done
done
target/release/confab-bench persist --url ws://127.0.0.1:18101/ws \
    --also-url ws://127.0.0.1:18102/ws --rooms "$ROOMS" --rate "$RATE" \
    --duration "$DURATION" --warmup 2 2>/dev/null | grep -vE '^\[' || true
for node in 1 2; do
    echo "== node $node"
    curl -s "127.0.0.1:1910$node/metrics" |
        grep -E '^confab_(store_batch|broker_publish|delivery)_seconds_(sum|count)' || true
done
