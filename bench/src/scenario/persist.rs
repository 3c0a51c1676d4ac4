//! `persist`: what the store sustains when traffic is many small rooms. `--rooms` rooms of one
//! member who is also the room's sender, each at `--rate` messages/s (open loop) with texts
//! padded to `--text-bytes`: every delivery is one stored message seen by its sender, so the
//! deliveries/s are the stored messages/s, and the latency is send → commit → broadcast.
//! With `--nodes 2` (and a shared PostgreSQL and Redis) the same load is spread over a cluster.

use std::sync::Arc;

use serde_json::json;

use super::{Bench, Outcome, rooms};
use crate::cli::{LoadArgs, PersistArgs, RoomsArgs};

/// The load `persist` runs: `rooms` with one member per room.
pub fn load_args(args: &PersistArgs) -> LoadArgs {
    LoadArgs {
        rooms: args.rooms,
        members: 1,
        rate: args.rate,
        duration: args.duration,
        warmup: args.warmup,
    }
}

pub async fn run(bench: &Arc<Bench>, args: &PersistArgs) -> anyhow::Result<Outcome> {
    crate::stamp::pad_texts_to(args.text_bytes);
    if args.random_client_ids {
        crate::client_ids::use_random();
    }
    let rooms_args = RoomsArgs {
        load: load_args(args),
    };
    let (_, _, phases, mut facts, notes) = rooms::run(bench, &rooms_args).await?;
    if let Some(phase) = phases.last() {
        facts.add("stored msgs/s", phase.deliveries_per_sec);
        facts.add(
            "refused (error frames, e.g. overloaded)",
            phase.error_frames,
        );
    }
    facts.add("nodes", bench.connector.nodes() as u64);
    let params = json!({
        "rooms": args.rooms, "rate": args.rate, "text_bytes": args.text_bytes,
        "random_client_ids": args.random_client_ids,
        "duration": args.duration, "warmup": args.warmup, "nodes": args.nodes,
    });
    Ok(("persist", params, phases, facts, notes))
}
