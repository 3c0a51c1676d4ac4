//! `rooms`: `--rooms` rooms of `--members`, one sender per room at `--rate` messages/s, for
//! `--duration` seconds after a warm-up.

use std::sync::Arc;

use serde_json::json;

use super::load::{Load, LoadSpec};
use super::{Bench, Outcome};
use crate::cli::{LoadArgs, RoomsArgs};
use crate::report::Facts;

pub async fn run(bench: &Arc<Bench>, args: &RoomsArgs) -> anyhow::Result<Outcome> {
    let mut load = open(bench, &args.load, 0, None).await;
    let mut phases = Vec::new();
    if args.load.warmup > 0.0 {
        // Warm-up fills caches and lets the allocator settle; its figures are not reported.
        load.run_phase("warm-up", args.load.rate, args.load.warmup)
            .await;
    }
    phases.push(
        load.run_phase("rooms", args.load.rate, args.load.duration)
            .await,
    );
    load.close().await;
    let mut facts = Facts::default();
    facts.add(
        "offered deliveries/s",
        args.load.rate * (args.load.rooms * args.load.members) as f64,
    );
    Ok(("rooms", params(&args.load), phases, facts, Vec::new()))
}

/// Opens the standard multi-room load: one sender per room, `slow_per_room` slow members.
pub async fn open(
    bench: &Arc<Bench>,
    args: &LoadArgs,
    slow_per_room: usize,
    slow_rcvbuf: Option<u32>,
) -> Load {
    Load::open(
        bench,
        LoadSpec {
            rooms: args.rooms,
            members: args.members,
            senders_per_room: 1,
            slow_per_room,
            slow_rcvbuf,
        },
    )
    .await
}

pub fn params(args: &LoadArgs) -> serde_json::Value {
    json!({
        "rooms": args.rooms, "members": args.members, "rate": args.rate,
        "duration": args.duration, "warmup": args.warmup,
    })
}
