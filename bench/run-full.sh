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
    # 1,500 messages per room in the slow phase: enough to fill a stalled member's 1,024-frame
    # queue plus its kernel buffers, at a load (50k deliveries/s) the server keeps up with.
    slow) run slow slow --rooms 20 --members 100 --rate 25 --duration 60 --slow-percent 1 ;;
    sweep)
        # Room size sweep for the plot: the same climb, starting near 200k deliveries/s.
        : >"$out/fanout-sweep.jsonl"
        for members in 10 100 1000 3000 10000; do
            start=$((200000 / members))
            run "fanout-$members" fanout --members "$members" --senders 4 --start-rate "$start" \
                --step-factor 1.5 --step-secs 3 --max-steps 12
            cat "$out/fanout-$members.json" >>"$out/fanout-sweep.jsonl"
        done
        ;;
    esac
done

target/release/confab-bench-plot --fanout "$out/fanout-sweep.jsonl" --idle "$out/idle.json" --out "$out" ||
    echo "plots skipped (missing reports?)" >&2
