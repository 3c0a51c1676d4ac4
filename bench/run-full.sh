#!/usr/bin/env bash
# Runs every confab-bench scenario of issues 8 and 10 side by side: each run spawns a fresh
# release confab, then a fresh reference server (bench/examples/reference_server.rs), puts the
# identical load on each, and saves one JSON report with both and their ratio under
# docs/bench/<name>.json. Then the room-size sweep (confab only) and the plots.
#
# Takes about 2 hours with the 30-minute soak (it runs twice: confab, then the reference) and
# both cores: not for CI (CI runs the short fanout smoke run instead). Run it on a quiet machine.
#
#   bench/run-full.sh                      # everything
#   bench/run-full.sh rooms30k burst       # only the named runs (see the case below)
#   SOAK_MINUTES=5 bench/run-full.sh soak  # a shorter soak
set -euo pipefail
cd "$(dirname "$0")/.."

out=docs/bench
mkdir -p "$out"
cargo build --release -p confab --bin confab
cargo build --release -p confab-bench --bin confab-bench --example reference_server
cargo build --release -p confab-bench --features plot --bin confab-bench-plot
bench=target/release/confab-bench
server=target/release/confab
reference=target/release/examples/reference_server
soak_minutes=${SOAK_MINUTES:-30}
{
    echo "started: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "server built from: $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src bench || echo ' + uncommitted changes')"
    echo "machine: $(nproc) CPUs, $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo), kernel $(uname -r)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "runs: ${*:-all}"
} >"$out/run-info.txt"

# name, then confab-bench arguments; confab and the reference side by side, into $out/name.json.
run() {
    local name=$1
    shift
    echo "== $name: confab-bench $* --spawn $server --reference $reference --json" >&2
    # Exit status 1 means loss/duplicates were seen: keep the report and go on.
    "$bench" "$@" --spawn "$server" --reference "$reference" --json >"$out/$name.json" || [ $? -eq 1 ]
    echo "$name: done $(date -u '+%H:%M:%S'), load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/run-info.txt"
}

# The same, confab only (the room-size sweep behind the plot).
run_solo() {
    local name=$1
    shift
    echo "== $name: confab-bench $* --spawn $server --json" >&2
    "$bench" "$@" --spawn "$server" --json >"$out/$name.json" || [ $? -eq 1 ]
}

want() { [ $# -eq 0 ] || [[ " $* " == *" $name "* ]]; }

for name in fanout rooms30k rooms100k idle joins fill burst burst-paced churn slow soak sweep; do
    want "$@" || continue
    case $name in
    # issue 8: >= 0.7x the reference's deliveries/s in a 1,000-member room, 0 lost
    fanout) run fanout fanout --members 1000 --senders 4 --start-rate 200 --step-factor 1.5 --step-secs 5 ;;
    # issue 8: p99 < 5 ms, p99.9 < 10 ms, 0 lost
    rooms30k) run rooms30k rooms --rooms 100 --members 100 --rate 3 --duration 30 ;;
    # issue 8: 0 lost, p99 <= 2x the reference's, server CPU <= 1.2x its
    rooms100k) run rooms100k rooms --rooms 100 --members 100 --rate 10 --duration 30 ;;
    # issue 8: <= 4 KiB RSS per idle joined connection at 5,000
    idle) run idle idle --connections 5000 --rooms 1000 --step 500 ;;
    # issue 8: >= 20,000 completed joins/s
    joins) run joins joins --clients 10000 --rooms 100 ;;
    # issue 8: one room of 10,000 fills in <= 10 s with <= 300 MiB RSS. A long connect timeout,
    # so a slow fill is measured rather than counted as failed joins.
    fill) run fill joins --clients 10000 --rooms 1 --connect-timeout 120 ;;
    # issue 8, point 1: every reading member gets all 5,000 in order; the stalled one gets
    # them all or a 4001 after the server's --stall-timeout (15 s; the bench stalls 25 s).
    burst) run burst burst --readers 2 --messages 5000 --text-len 3900 ;;
    # issue 8, point 1 too: members reading about 500 messages/s while one client floods
    # short messages.
    burst-paced) run burst-paced burst --readers 2 --reader-rate 500 --messages 5000 --text-len 40 ;;
    churn) run churn joins --churn --rooms 100 --members 100 --rate 3 --duration 30 --churn-rate 500 ;;
    slow) run slow slow --rooms 20 --members 100 --rate 25 --duration 60 --slow-percent 1 ;;
    # issue 10, point 12: RSS flat within 5% after warm-up, no fd growth, nothing lost.
    soak) run soak soak --minutes "$soak_minutes" --rooms 100 --members 100 --rate 3 \
        --churn-rate 50 --churn-life 5 --sample-secs 30 --steady-after 120 ;;
    sweep)
        # Room size sweep for the plot (confab only): the same climb, starting near 200k
        # deliveries/s.
        for members in 10 100 1000 3000 10000; do
            start=$((200000 / members))
            run_solo "fanout-$members" fanout --members "$members" --senders 4 --start-rate "$start" \
                --step-factor 1.5 --step-secs 3 --max-steps 12
        done
        ;;
    esac
done
echo "finished: $(date -u '+%Y-%m-%d %H:%M:%S UTC')" >>"$out/run-info.txt"

cat "$out"/fanout-{10,100,1000,3000,10000}.json >"$out/fanout-sweep.jsonl" 2>/dev/null || true
target/release/confab-bench-plot --fanout "$out/fanout-sweep.jsonl" --idle "$out/idle.json" --out "$out" ||
    echo "plots skipped (missing reports?)" >&2
