//! `fanout`: one room of `--members`, `--senders` of them sending at an open-loop rate that
//! rises step by step until a step's p99 passes the limit or anything is lost; the figure
//! that matters is the best clean step's deliveries/s.

use std::sync::Arc;

use serde_json::json;

use super::load::{Load, LoadSpec};
use super::{Bench, Outcome};
use crate::cli::FanoutArgs;
use crate::report::Facts;

pub async fn run(bench: &Arc<Bench>, args: &FanoutArgs) -> anyhow::Result<Outcome> {
    let params = json!({
        "members": args.members, "senders": args.senders, "start_rate": args.start_rate,
        "step_factor": args.step_factor, "step_secs": args.step_secs,
        "max_steps": args.max_steps, "p99_limit_ms": args.p99_limit_ms, "warmup": args.warmup,
    });
    anyhow::ensure!(
        args.senders >= 1 && args.senders <= args.members,
        "need 1 ≤ --senders ≤ --members"
    );
    let mut load = Load::open(
        bench,
        LoadSpec {
            rooms: 1,
            members: args.members,
            senders_per_room: args.senders,
            slow_per_room: 0,
            slow_rcvbuf: None,
        },
    )
    .await;
    if args.warmup > 0.0 {
        load.run_phase("warm-up", args.start_rate, args.warmup)
            .await;
    }
    let mut phases = Vec::new();
    let mut stop_reason = format!("reached --max-steps {}", args.max_steps);
    let mut rate = args.start_rate;
    for step in 1..=args.max_steps {
        let phase = load
            .run_phase(&format!("step {step}"), rate, args.step_secs)
            .await;
        let p99_ms = phase.latency.p99_us as f64 / 1000.0;
        let broke = if !phase.clean() {
            Some(format!(
                "step {step} at {rate:.0} msgs/s was not clean: {} lost, {} duplicated, {} out of order",
                phase.lost, phase.duplicated, phase.out_of_order
            ))
        } else if p99_ms > args.p99_limit_ms {
            Some(format!(
                "step {step} at {rate:.0} msgs/s had p99 {p99_ms:.1} ms > {} ms",
                args.p99_limit_ms
            ))
        } else {
            None
        };
        phases.push(phase);
        if let Some(reason) = broke {
            stop_reason = reason;
            break;
        }
        rate *= args.step_factor;
    }
    load.close().await;

    let mut facts = Facts::default();
    let limit_us = (args.p99_limit_ms * 1000.0) as u64;
    let best = phases
        .iter()
        .filter(|p| p.clean() && p.latency.p99_us <= limit_us)
        .max_by(|a, b| a.deliveries_per_sec.total_cmp(&b.deliveries_per_sec));
    match best {
        Some(best) => {
            facts.add("best step", best.label.clone());
            facts.add("best deliveries/s", best.deliveries_per_sec);
            facts.add("best step p99 ms", best.latency.p99_us as f64 / 1000.0);
            if let Some(per_cpu) = best.deliveries_per_server_cpu_sec {
                facts.add("best step deliveries/server CPU-s", per_cpu);
            }
        }
        None => facts.add(
            "best deliveries/s",
            "none: no step was clean and under the p99 limit",
        ),
    }
    // The throughput ceiling regardless of latency: the fastest step that still lost nothing.
    if let Some(top) = phases
        .iter()
        .filter(|p| p.clean())
        .max_by(|a, b| a.deliveries_per_sec.total_cmp(&b.deliveries_per_sec))
    {
        facts.add("fastest clean step", top.label.clone());
        facts.add("fastest clean deliveries/s", top.deliveries_per_sec);
        facts.add(
            "fastest clean step p99 ms",
            top.latency.p99_us as f64 / 1000.0,
        );
    }
    facts.add("stopped because", stop_reason);
    Ok(("fanout", params, phases, facts, Vec::new()))
}
