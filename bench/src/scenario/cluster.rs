//! `cluster`: the `rooms` load spread over several nodes of one cluster. Clients are spread
//! over the nodes by a hash of their number, so every room has members on different nodes; besides the
//! overall figures, latency is reported for cross-node deliveries alone, the ones that went
//! through Redis from one node to another.

use std::sync::Arc;

use anyhow::bail;

use super::{Bench, Outcome, rooms};
use crate::cli::{ClusterArgs, TargetArgs};
use crate::metrics::LatencySummary;
use crate::target::Server;

/// Starts (`--spawn`, `--nodes` times) or attaches to (`--url` plus `--also-url`) the nodes.
pub async fn start_nodes(target: &TargetArgs, args: &ClusterArgs) -> anyhow::Result<Vec<Server>> {
    let mut servers = Vec::new();
    if target.spawn.is_some() {
        let shared = |flag: &str| target.server_arg.iter().any(|a| a.starts_with(flag));
        if !shared("--database-url") || !shared("--redis-url") {
            bail!(
                "cluster --spawn: give the nodes a shared database and Redis, e.g. \
                 --server-arg=--database-url=postgres://... --server-arg=--redis-url=redis://..."
            );
        }
        for _ in 0..args.nodes.max(2) {
            servers.push(Server::start(target).await?);
        }
    } else {
        servers.push(Server::start(target).await?);
        for url in &args.also_url {
            servers.push(Server::attach(url, None).await?);
        }
        if servers.len() < 2 {
            bail!("cluster --url: name the other nodes with --also-url ws://HOST:PORT/ws");
        }
    }
    Ok(servers)
}

pub async fn run(bench: &Arc<Bench>, args: &ClusterArgs) -> anyhow::Result<Outcome> {
    let rooms_args = crate::cli::RoomsArgs {
        load: args.load.clone(),
    };
    let (_, params, phases, mut facts, notes) = rooms::run(bench, &rooms_args).await?;
    let cross = LatencySummary::of(&bench.cross_node.snapshot());
    facts.add("nodes", bench.connector.nodes() as u64);
    facts.add("cross-node deliveries", cross.count);
    facts.add("cross-node latency p50 ms", cross.p50_us as f64 / 1000.0);
    facts.add("cross-node latency p99 ms", cross.p99_us as f64 / 1000.0);
    facts.add("cross-node latency p99.9 ms", cross.p999_us as f64 / 1000.0);
    facts.add("cross-node latency max ms", cross.max_us as f64 / 1000.0);
    Ok(("cluster", params, phases, facts, notes))
}
