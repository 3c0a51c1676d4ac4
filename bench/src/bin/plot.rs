//! `confab-bench-plot`: draws BENCHMARKS.md's charts from saved `confab-bench --json` reports.
//!
//! ```text
//! cargo run --release -p confab-bench --features plot --bin confab-bench-plot -- \
//!     --fanout docs/bench/fanout.jsonl --idle docs/bench/idle.json --out docs/bench
//! ```
//!
//! - `fanout.png`: the fastest step without loss (deliveries/s) and that step's p99 against
//!   room size, one point per `fanout` report (one JSON object per line of `--fanout`).
//! - `idle-rss.png`: server RSS against open connections, from an `idle` report's samples.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};
use serde_json::Value;

/// Fonts tried in turn (Debian's fonts-dejavu-core, fonts-liberation); the first that exists
/// is used for every label.
const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

struct Args {
    fanout: Option<PathBuf>,
    idle: Option<PathBuf>,
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    load_font()?;
    std::fs::create_dir_all(&args.out)?;
    if let Some(path) = &args.fanout {
        let points = fanout_points(path)?;
        let png = args.out.join("fanout.png");
        plot_fanout(&points, &png)?;
        println!("wrote {}", png.display());
    }
    if let Some(path) = &args.idle {
        let points = idle_points(path)?;
        let png = args.out.join("idle-rss.png");
        plot_idle(&points, &png)?;
        println!("wrote {}", png.display());
    }
    Ok(())
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        fanout: None,
        idle: None,
        out: PathBuf::from("docs/bench"),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--fanout" => args.fanout = Some(value.into()),
            "--idle" => args.idle = Some(value.into()),
            "--out" => args.out = value.into(),
            _ => bail!("unknown flag {flag}; use --fanout FILE, --idle FILE, --out DIR"),
        }
    }
    Ok(args)
}

fn load_font() -> anyhow::Result<()> {
    let path = FONTS
        .iter()
        .find(|p| Path::new(p).exists())
        .context("no TTF font found; apt-get install fonts-dejavu-core")?;
    // plotters keeps the font for the life of the process, so it wants 'static bytes.
    let bytes: &'static [u8] = Box::leak(std::fs::read(path)?.into_boxed_slice());
    register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{path} is not a usable font"))?;
    Ok(())
}

/// The confab report of a side-by-side run (`--reference`), or the report itself.
fn server_report(mut report: Value) -> Value {
    match report.get_mut("confab") {
        Some(confab) => confab.take(),
        None => report,
    }
}

/// (members, fastest clean deliveries/s, p99 ms of that step) per fanout report, by size.
fn fanout_points(path: &Path) -> anyhow::Result<Vec<(f64, f64, f64)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut points = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let report = server_report(serde_json::from_str(line)?);
        let members = report["params"]["members"]
            .as_f64()
            .context("fanout report without members")?;
        let (Some(rate), Some(p99)) = (
            report["facts"]["fastest clean deliveries/s"].as_f64(),
            report["facts"]["fastest clean step p99 ms"].as_f64(),
        ) else {
            eprintln!("skipping the {members}-member report: it has no clean step");
            continue;
        };
        points.push((members, rate, p99));
    }
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(points)
}

/// (connections, RSS MiB) from an idle report.
fn idle_points(path: &Path) -> anyhow::Result<Vec<(f64, f64)>> {
    let report = server_report(serde_json::from_str(&std::fs::read_to_string(path)?)?);
    let curve = report["facts"]["server RSS KiB by connections"]
        .as_array()
        .context("idle report without RSS samples")?;
    Ok(curve
        .iter()
        .filter_map(|p| Some((p[0].as_f64()?, p[1].as_f64()? / 1024.0)))
        .collect())
}

fn plot_fanout(points: &[(f64, f64, f64)], png: &Path) -> anyhow::Result<()> {
    if points.is_empty() {
        bail!("no fanout points to plot");
    }
    let root = BitMapBackend::new(png, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let x_range = (points[0].0 * 0.8)..(points[points.len() - 1].0 * 1.25);
    let max_rate = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15;
    let max_p99 = points.iter().map(|p| p.2).fold(0.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "confab fan-out: fastest step without loss, by room size",
            ("sans-serif", 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .right_y_label_area_size(60)
        .build_cartesian_2d(x_range.clone().log_scale(), 0.0..max_rate)?
        .set_secondary_coord(x_range.log_scale(), 0.0..max_p99.max(1.0));
    chart
        .configure_mesh()
        .x_desc("members in the room")
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_desc("deliveries/s")
        .y_label_formatter(&|v| format!("{:.0}k", v / 1000.0))
        .draw()?;
    chart
        .configure_secondary_axes()
        .y_desc("p99 latency, ms")
        .draw()?;
    chart
        .draw_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.1)),
            BLUE.stroke_width(2),
        ))?
        .label("deliveries/s (left)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], BLUE));
    chart.draw_series(
        points
            .iter()
            .map(|p| Circle::new((p.0, p.1), 4, BLUE.filled())),
    )?;
    chart
        .draw_secondary_series(LineSeries::new(
            points.iter().map(|p| (p.0, p.2)),
            RED.stroke_width(2),
        ))?
        .label("p99 ms at that step (right)")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 20, y)], RED));
    chart.draw_secondary_series(
        points
            .iter()
            .map(|p| Circle::new((p.0, p.2), 4, RED.filled())),
    )?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}

fn plot_idle(points: &[(f64, f64)], png: &Path) -> anyhow::Result<()> {
    if points.is_empty() {
        bail!("no idle points to plot");
    }
    let root = BitMapBackend::new(png, (1000, 600)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_x = points.iter().map(|p| p.0).fold(0.0, f64::max) * 1.05;
    let max_y = points.iter().map(|p| p.1).fold(0.0, f64::max) * 1.15;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "confab server RSS with idle joined connections",
            ("sans-serif", 24),
        )
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..max_x.max(1.0), 0.0..max_y.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc("open connections")
        .y_desc("server RSS, MiB")
        .draw()?;
    chart.draw_series(LineSeries::new(
        points.iter().copied(),
        BLUE.stroke_width(2),
    ))?;
    chart.draw_series(points.iter().map(|p| Circle::new(*p, 4, BLUE.filled())))?;
    root.present()?;
    Ok(())
}
