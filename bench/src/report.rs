//! The result of a run: one column per measured phase, scenario-specific facts and notes,
//! printed as a table for people or as one JSON object for machines (`--json`).

use std::fmt::Write as _;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;

use crate::metrics::LatencySummary;

/// The report of one run.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenario: &'static str,
    /// False when anything was lost, duplicated or reordered (the exit status follows it).
    pub ok: bool,
    pub connections_made: u64,
    pub connections_failed: u64,
    pub server_pid: Option<u32>,
    /// The scenario's parameters, so a saved report says what was run.
    pub params: Value,
    pub phases: Vec<PhaseStats>,
    pub facts: Facts,
    pub notes: Vec<String>,
}

/// One measured stretch of load.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseStats {
    pub label: String,
    /// Messages/s the senders were asked for, all rooms together.
    pub offered_msgs_per_sec: f64,
    /// From the phase's start until its last delivery arrived (or the drain gave up).
    pub secs: f64,
    pub messages_sent: u64,
    pub deliveries_expected: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
    pub error_frames: u64,
    pub closed_4001: u64,
    pub closed_other: u64,
    pub deliveries_per_sec: f64,
    pub latency: LatencySummary,
    /// How late senders wrote messages relative to their open-loop schedule; a large p99 means
    /// the offered rate was not really offered (the bench or the server's reading held it).
    pub send_lag: LatencySummary,
    pub server: Option<ServerPhase>,
    pub deliveries_per_server_cpu_sec: Option<f64>,
    /// The load generator's own CPU time: near `secs × cores` means the bench, not the server,
    /// was the limit.
    pub bench_cpu_secs: f64,
}

/// The server's resource use over a phase.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ServerPhase {
    pub rss_kib_start: u64,
    pub rss_kib_end: u64,
    pub rss_kib_peak: u64,
    pub cpu_secs: f64,
}

impl PhaseStats {
    /// A phase is clean when every expected delivery arrived once and in order.
    pub fn clean(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.out_of_order == 0
    }
}

/// Named scenario results, kept in insertion order (a JSON object in the output).
#[derive(Debug, Default)]
pub struct Facts(Vec<(String, Value)>);

impl Facts {
    pub fn add(&mut self, name: &str, value: impl Into<Value>) {
        self.0.push((name.to_owned(), value.into()));
    }

    /// Every fact, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.0.iter().map(|(name, value)| (name.as_str(), value))
    }

    /// A fact's value as a number, if it is one.
    pub fn number(&self, name: &str) -> Option<f64> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_f64())
    }
}

impl Serialize for Facts {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in &self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

impl Report {
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            println!("{}", serde_json::to_string(self)?);
        } else {
            print!("{}", self.table());
        }
        Ok(())
    }

    pub fn table(&self) -> String {
        let mut out = String::new();
        let verdict = if self.ok {
            "clean"
        } else {
            "NOT CLEAN: loss, duplicates or reordering"
        };
        let _ = writeln!(out, "confab-bench {}: {verdict}", self.scenario);
        let _ = writeln!(
            out,
            "connections: {} made, {} failed",
            self.connections_made, self.connections_failed
        );
        if !self.phases.is_empty() {
            out.push_str(&phase_table(&self.phases));
        }
        if !self.facts.0.is_empty() {
            let width = self.facts.0.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
            for (name, value) in &self.facts.0 {
                let shown = match value {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => match n.as_f64() {
                        Some(f) if n.is_f64() => format!("{f:.2}"),
                        _ => n.to_string(),
                    },
                    // A time series (soak, idle) is for --json; a table row would be a page.
                    Value::Array(items) if items.len() > TABLE_ARRAY_MAX => {
                        format!("{} entries (see --json)", items.len())
                    }
                    other => other.to_string(),
                };
                let _ = writeln!(out, "{name:<width$}  {shown}");
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        out
    }
}

/// Longest array a fact may have to be shown whole in the table.
const TABLE_ARRAY_MAX: usize = 12;

/// Rows are metrics, columns are phases.
fn phase_table(phases: &[PhaseStats]) -> String {
    type Row = (&'static str, fn(&PhaseStats) -> String);
    let rows: [Row; 21] = [
        ("offered msgs/s", |p| {
            format!("{:.0}", p.offered_msgs_per_sec)
        }),
        ("seconds", |p| format!("{:.2}", p.secs)),
        ("messages sent", |p| p.messages_sent.to_string()),
        ("deliveries expected", |p| p.deliveries_expected.to_string()),
        ("received", |p| p.received.to_string()),
        ("lost", |p| p.lost.to_string()),
        ("duplicated", |p| p.duplicated.to_string()),
        ("out of order", |p| p.out_of_order.to_string()),
        ("closed 4001 / other", |p| {
            format!("{} / {}", p.closed_4001, p.closed_other)
        }),
        ("deliveries/s", |p| format!("{:.0}", p.deliveries_per_sec)),
        ("latency p50 ms", |p| ms(p.latency.p50_us)),
        ("latency p90 ms", |p| ms(p.latency.p90_us)),
        ("latency p99 ms", |p| ms(p.latency.p99_us)),
        ("latency p99.9 ms", |p| ms(p.latency.p999_us)),
        ("latency max ms", |p| ms(p.latency.max_us)),
        ("send lag p99 ms", |p| ms(p.send_lag.p99_us)),
        ("server RSS end MiB", |p| {
            p.server.map_or("-".into(), |s| mib(s.rss_kib_end))
        }),
        ("server RSS peak MiB", |p| {
            p.server.map_or("-".into(), |s| mib(s.rss_kib_peak))
        }),
        ("server CPU s", |p| {
            p.server
                .map_or("-".into(), |s| format!("{:.2}", s.cpu_secs))
        }),
        ("deliveries/server CPU-s", |p| {
            p.deliveries_per_server_cpu_sec
                .map_or("-".into(), |d| format!("{d:.0}"))
        }),
        ("bench CPU s", |p| format!("{:.2}", p.bench_cpu_secs)),
    ];
    let label_width = rows.iter().map(|(l, _)| l.len()).max().unwrap_or(0);
    let cells: Vec<Vec<String>> = phases
        .iter()
        .map(|p| rows.iter().map(|(_, f)| f(p)).collect())
        .collect();
    let widths: Vec<usize> = phases
        .iter()
        .zip(&cells)
        .map(|(p, col)| {
            col.iter()
                .map(String::len)
                .chain([p.label.len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let _ = write!(out, "{:<label_width$}", "");
    for (p, w) in phases.iter().zip(&widths) {
        let _ = write!(out, "  {:>w$}", p.label);
    }
    out.push('\n');
    for (r, (label, _)) in rows.iter().enumerate() {
        let _ = write!(out, "{label:<label_width$}");
        for (col, w) in cells.iter().zip(&widths) {
            let _ = write!(out, "  {:>w$}", col[r]);
        }
        out.push('\n');
    }
    out
}

fn ms(us: u64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(label: &str) -> PhaseStats {
        PhaseStats {
            label: label.to_owned(),
            offered_msgs_per_sec: 100.0,
            secs: 1.0,
            messages_sent: 100,
            deliveries_expected: 1000,
            received: 1000,
            lost: 0,
            duplicated: 0,
            out_of_order: 0,
            error_frames: 0,
            closed_4001: 0,
            closed_other: 0,
            deliveries_per_sec: 1000.0,
            latency: LatencySummary::default(),
            send_lag: LatencySummary::default(),
            server: None,
            deliveries_per_server_cpu_sec: None,
            bench_cpu_secs: 0.5,
        }
    }

    #[test]
    fn the_table_has_a_column_per_phase_and_the_facts() {
        let mut facts = Facts::default();
        facts.add("best deliveries/s", 1234.5);
        facts.add("series", serde_json::json!(vec![1; 40]));
        let report = Report {
            scenario: "fanout",
            ok: true,
            connections_made: 10,
            connections_failed: 0,
            server_pid: None,
            params: Value::Null,
            phases: vec![phase("step 1"), phase("step 2")],
            facts,
            notes: vec!["a note".into()],
        };
        let table = report.table();
        assert!(table.contains("step 1") && table.contains("step 2"));
        assert!(table.contains("best deliveries/s  1234.50"));
        assert!(table.contains("40 entries (see --json)"));
        assert!(table.contains("note: a note"));
    }

    #[test]
    fn facts_serialise_as_an_object_in_order() {
        let mut facts = Facts::default();
        facts.add("z", 1);
        facts.add("a", "x");
        assert_eq!(serde_json::to_string(&facts).unwrap(), r#"{"z":1,"a":"x"}"#);
    }
}
