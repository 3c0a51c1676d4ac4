//! Setting up the process's log output: human-readable text (the default) or one JSON object
//! per line (`--log-format json`) for a log collector.

use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields` (with `message`) and
    /// the spans the event happened in.
    Json,
}

/// Installs the global subscriber writing to stdout. Fails if `filter` is not a valid
/// env-filter directive.
pub fn init(format: LogFormat, filter: &str) -> Result<(), tracing_subscriber::filter::ParseError> {
    let filter = EnvFilter::try_new(filter)?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        // Flattened: the event's fields sit beside `level` and `timestamp` instead of under
        // `fields`, which is what collectors index without a parsing rule.
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
