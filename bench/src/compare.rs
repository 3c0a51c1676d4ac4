//! Side-by-side runs (`--reference`): the same scenario against confab and then against the
//! reference server, both reports kept whole, plus the ratio confab / reference of each
//! figure that both have, so a comparison survives the noise of a shared machine.

use std::fmt::Write as _;

use serde::Serialize;

use crate::report::{PhaseStats, Report};

/// Both reports and their comparison.
#[derive(Debug, Serialize)]
pub struct SideBySide {
    pub scenario: &'static str,
    /// Both runs clean (nothing lost, duplicated or reordered); the exit status follows it.
    pub ok: bool,
    pub confab: Report,
    pub reference: Report,
    pub comparison: Comparison,
}

/// Figures of both runs with their ratio, by phase (matched by label) and by fact.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub phases: Vec<PhaseComparison>,
    pub facts: Vec<Row>,
}

#[derive(Debug, Serialize)]
pub struct PhaseComparison {
    pub label: String,
    pub rows: Vec<Row>,
}

/// One figure: confab's, the reference's, and confab / reference (none when the reference's
/// figure is 0).
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub confab: f64,
    pub reference: f64,
    pub ratio: Option<f64>,
}

impl Row {
    fn new(name: &str, confab: f64, reference: f64) -> Row {
        Row {
            name: name.to_owned(),
            confab,
            reference,
            ratio: (reference != 0.0).then(|| confab / reference),
        }
    }
}

/// Facts that describe the bench, not the server: not compared.
const NOT_COMPARED: &[&str] = &["bench open-files limit"];

impl SideBySide {
    pub fn new(confab: Report, reference: Report) -> SideBySide {
        let phases = confab
            .phases
            .iter()
            .filter_map(|ours| {
                let theirs = reference.phases.iter().find(|p| p.label == ours.label)?;
                Some(PhaseComparison {
                    label: ours.label.clone(),
                    rows: phase_rows(ours, theirs),
                })
            })
            .collect();
        let facts = confab
            .facts
            .iter()
            .filter(|(name, _)| !NOT_COMPARED.contains(name))
            .filter_map(|(name, value)| {
                let ours = value.as_f64()?;
                let theirs = reference.facts.number(name)?;
                Some(Row::new(name, ours, theirs))
            })
            .collect();
        SideBySide {
            scenario: confab.scenario,
            ok: confab.ok && reference.ok,
            comparison: Comparison { phases, facts },
            confab,
            reference,
        }
    }

    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
        } else {
            print!("{}", self.table());
        }
        Ok(())
    }

    fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "=== confab ===");
        out.push_str(&self.confab.table());
        let _ = writeln!(out, "\n=== reference server ===");
        out.push_str(&self.reference.table());
        let _ = writeln!(
            out,
            "\n=== side by side: {} (ratio = confab / reference) ===",
            self.scenario
        );
        for phase in &self.comparison.phases {
            let _ = writeln!(out, "phase {}", phase.label);
            rows_table(&mut out, &phase.rows);
        }
        if !self.comparison.facts.is_empty() {
            let _ = writeln!(out, "facts");
            rows_table(&mut out, &self.comparison.facts);
        }
        let verdict = |ok: bool| if ok { "clean" } else { "NOT CLEAN" };
        let _ = writeln!(
            out,
            "confab: {}; reference: {}",
            verdict(self.confab.ok),
            verdict(self.reference.ok)
        );
        out
    }
}

fn phase_rows(ours: &PhaseStats, theirs: &PhaseStats) -> Vec<Row> {
    let ms = |us: u64| us as f64 / 1000.0;
    let mut rows = vec![
        Row::new(
            "deliveries/s",
            ours.deliveries_per_sec,
            theirs.deliveries_per_sec,
        ),
        Row::new(
            "latency p50 ms",
            ms(ours.latency.p50_us),
            ms(theirs.latency.p50_us),
        ),
        Row::new(
            "latency p99 ms",
            ms(ours.latency.p99_us),
            ms(theirs.latency.p99_us),
        ),
        Row::new(
            "latency p99.9 ms",
            ms(ours.latency.p999_us),
            ms(theirs.latency.p999_us),
        ),
        Row::new("lost", ours.lost as f64, theirs.lost as f64),
    ];
    // Figures neither run has (a phase without deliveries) say nothing; `lost` always does.
    rows.retain(|row| row.name == "lost" || row.confab != 0.0 || row.reference != 0.0);
    if let (Some(a), Some(b)) = (ours.server, theirs.server) {
        rows.push(Row::new("server CPU s", a.cpu_secs, b.cpu_secs));
        rows.push(Row::new(
            "server RSS peak MiB",
            a.rss_kib_peak as f64 / 1024.0,
            b.rss_kib_peak as f64 / 1024.0,
        ));
    }
    rows
}

fn rows_table(out: &mut String, rows: &[Row]) {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let _ = writeln!(
        out,
        "  {:<width$}  {:>14}  {:>14}  {:>8}",
        "", "confab", "reference", "ratio"
    );
    for row in rows {
        let ratio = row.ratio.map_or("-".to_owned(), |r| format!("{r:.2}×"));
        let _ = writeln!(
            out,
            "  {:<width$}  {:>14}  {:>14}  {:>8}",
            row.name,
            figure(row.confab),
            figure(row.reference),
            ratio
        );
    }
}

/// Whole numbers without decimals, small ones with enough to read a latency.
fn figure(value: f64) -> String {
    if value.fract() == 0.0 || value.abs() >= 1000.0 {
        format!("{value:.0}")
    } else {
        format!("{value:.3}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;
    use crate::metrics::LatencySummary;
    use crate::report::{Facts, ServerPhase};

    fn report(deliveries_per_sec: f64, p99_us: u64, cpu_secs: f64, joins: f64) -> Report {
        let mut facts = Facts::default();
        facts.add("joins/s", joins);
        facts.add("stopped because", "a reason");
        facts.add("bench open-files limit", 1024);
        Report {
            scenario: "rooms",
            ok: true,
            connections_made: 1,
            connections_failed: 0,
            server_pid: None,
            params: Value::Null,
            phases: vec![PhaseStats {
                label: "rooms".into(),
                offered_msgs_per_sec: 1.0,
                secs: 1.0,
                messages_sent: 1,
                deliveries_expected: 1,
                received: 1,
                lost: 0,
                duplicated: 0,
                out_of_order: 0,
                error_frames: 0,
                closed_4001: 0,
                closed_other: 0,
                deliveries_per_sec,
                latency: LatencySummary {
                    p99_us,
                    ..LatencySummary::default()
                },
                send_lag: LatencySummary::default(),
                server: Some(ServerPhase {
                    rss_kib_start: 0,
                    rss_kib_end: 0,
                    rss_kib_peak: 2048,
                    cpu_secs,
                }),
                deliveries_per_server_cpu_sec: None,
                bench_cpu_secs: 0.0,
            }],
            facts,
            notes: Vec::new(),
        }
    }

    #[test]
    fn ratios_are_confab_over_reference_per_matching_phase_and_numeric_fact() {
        let side = SideBySide::new(
            report(500.0, 4_000, 3.0, 100.0),
            report(1000.0, 2_000, 2.0, 400.0),
        );
        let rows = &side.comparison.phases[0].rows;
        let ratio = |name: &str| rows.iter().find(|r| r.name == name).unwrap().ratio;
        assert_eq!(ratio("deliveries/s"), Some(0.5));
        assert_eq!(ratio("latency p99 ms"), Some(2.0));
        assert_eq!(ratio("server CPU s"), Some(1.5));
        assert_eq!(ratio("lost"), None, "0 / 0 has no ratio");
        let facts: Vec<&str> = side
            .comparison
            .facts
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(facts, ["joins/s"]);
        assert_eq!(side.comparison.facts[0].ratio, Some(0.25));
        let table = side.table();
        assert!(table.contains("=== reference server ==="));
        assert!(table.contains("0.50×"));
    }
}
