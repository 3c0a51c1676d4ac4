#!/usr/bin/env bash
# Runs every confab-bench scenario at the sizes of issue 4 against a fresh release server,
# saves each JSON report under docs/bench/, and redraws the plots. Takes about 15 minutes and
# both cores: not for CI (CI runs the short fanout smoke run instead).
#
#   bench/run-full.sh            # everything
#   bench/run-full.sh rooms30k   # only the named runs (see the case below)
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/bench
mkdir -p "$out"
cargo build --release -p confab --bin confab
cargo build --release -p confab-bench --bin confab-bench
cargo build --release -p confab-bench --features plot --bin confab-bench-plot
bench=target/release/confab-bench
server=target/release/confab
{
    echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "server built from: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src || echo ' + uncommitted changes in src/')"
    echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "runs: ${*:-all}"
} >"$out/run-info.txt"

run() { # name, then confab-bench arguments; the report goes to $out/name.json
    local name=$1
    shift
    echo "== $name: confab-bench $* --spawn $server --json" >&2
    # Exit status 1 means loss/duplicates were seen: keep the report and go on.
    "$bench" "$@" --spawn "$server" --json >"$out/$name.json" || [ $? -eq 1 ]
}

want() { [ $# -eq 0 ] || [[ " $* " == *" $name "* ]]; }

for name in fanout rooms30k rooms100k idle joins churn slow sweep; do
    want "$@" || continue
    case $name in
    fanout) run fanout fanout --members 1000 --senders 4 --start-rate 200 --step-factor 1.5 --step-secs 5 ;;
    rooms30k) run rooms30k rooms --rooms 100 --members 100 --rate 3 --duration 30 ;;
    rooms100k) run rooms100k rooms --rooms 100 --members 100 --rate 10 --duration 30 ;;
    idle) run idle idle --connections 19900 --rooms 1000 --step 1000 ;;
    joins) run joins joins --clients 10000 --rooms 100 ;;
    churn) run churn joins --churn --rooms 100 --members 100 --rate 3 --duration 30 --churn-rate 500 ;;
    # 1,500 messages per room in the slow phase, at 50k deliveries/s. A stalled member's kernel
    # send buffer (up to tcp_wmem's 4 MiB) holds thousands of frames before the server's
    # 1,024-frame queue even starts to fill, so expect no 4001 at this length: what this run
    # shows is the others' p99 and the server's RSS.
    slow) run slow slow --rooms 20 --members 100 --rate 25 --duration 60 --slow-percent 1 ;;
    sweep)
        # Room size sweep for the plot: the same climb, starting near 200k deliveries/s.
        for members in 10 100 1000 3000 10000; do
            start=$((200000 / members))
            run "fanout-$members" fanout --members "$members" --senders 4 --start-rate "$start" \
                --step-factor 1.5 --step-secs 3 --max-steps 12
        done
        ;;
    esac
done

cat "$out"/fanout-{10,100,1000,3000,10000}.json >"$out/fanout-sweep.jsonl" 2>/dev/null || true
target/release/confab-bench-plot --fanout "$out/fanout-sweep.jsonl" --idle "$out/idle.json" --out "$out" ||
    echo "plots skipped (missing reports?)" >&2
