//! `confab-bench`: the load generator for confab, and the reference Rust client of protocol v1.
//!
//! Module map:
//! - [`cli`]: the command line (every flag has an env fallback).
//! - [`target`]: the server under test, attached to by URL or spawned and owned by the run.
//! - [`client`]: a small protocol v1 client over one real WebSocket.
//! - [`protocol`]: the frames the bench sends and the fields it reads back.
//! - [`stamp`]: the payload each bench message carries (sender, number, due time).
//! - [`metrics`]: shared counters, the latency histogram and per-receiver seq checks.
//! - [`procstat`]: RSS and CPU time from `/proc`, for the server and for the bench itself.
//! - [`limits`]: raising the open-files limit.
//! - [`scenario`]: the scenarios, built on a shared load engine.
//! - [`report`]: the result of a run, as a table or as JSON, and the progress line.
//! - [`compare`]: a side-by-side run against the reference server, and the ratios.

mod cli;
mod client;
mod client_ids;
mod compare;
mod limits;
mod metrics;
mod procstat;
mod protocol;
mod report;
mod scenario;
mod stamp;
mod target;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match run(cli) {
        // Exit 1 when the run saw loss, duplicates or reordering, so scripts can gate on it.
        Ok(ok) if ok => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("confab-bench: error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the chosen scenario and prints its report; returns whether the run was clean.
fn run(cli: cli::Cli) -> anyhow::Result<bool> {
    let nofile = limits::raise_nofile()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    if cli.target.reference.is_some() && matches!(cli.scenario, cli::Scenario::Cluster(_)) {
        anyhow::bail!("--reference: the reference server has no cluster mode");
    }
    let report = runtime.block_on(scenario::run(&cli, &cli.target, nofile))?;
    let Some(reference) = &cli.target.reference else {
        report.print(cli.json)?;
        return Ok(report.ok);
    };
    eprintln!(
        "confab-bench: the same load against the reference server {}",
        reference.display()
    );
    let target = cli.target.spawning(reference);
    let reference_report = runtime.block_on(scenario::run(&cli, &target, nofile))?;
    let side = compare::SideBySide::new(report, reference_report);
    side.print(cli.json)?;
    Ok(side.ok)
}
