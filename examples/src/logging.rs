//! The proxies' (and the demo's) log output: one `tracing` subscriber, installed by the binaries
//! (never by the library crates, which only emit events).
//!
//! Lines go to **stderr**: stdout carries only the `ready` line that scripts and tests read. The
//! filter is `RUST_LOG` in `tracing-subscriber`'s `EnvFilter` syntax (`info`,
//! `mesh_tls=debug,info` …), default `info`. The format is plain text, or one JSON object per line
//! (`--log-format json`, or `MESH_LOG_FORMAT=json`; the flag wins) for a log collector: each line
//! has `timestamp`, `level`, `target` and `fields` (the event's `message` and its fields).
//!
//! The events and their fields are listed in the package README ("Logs").

use std::fmt;
use std::str::FromStr;

use tracing_subscriber::EnvFilter;

use crate::args::{ArgError, Args};

/// The environment variable that picks the format when `--log-format` is absent.
pub const LOG_FORMAT_ENV: &str = "MESH_LOG_FORMAT";

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines (the default).
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "{other:?} is not a log format: use \"text\" or \"json\""
            )),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// Takes `--log-format <text|json>` from `args`; when absent, the format is `MESH_LOG_FORMAT`'s,
/// else text.
///
/// # Errors
///
/// When the flag or the variable names another format.
pub fn format_option(args: &mut Args) -> Result<LogFormat, ArgError> {
    let default = match std::env::var(LOG_FORMAT_ENV) {
        Ok(value) => value.parse().map_err(|reason| ArgError::Invalid {
            flag: LOG_FORMAT_ENV.into(),
            value,
            reason,
        })?,
        Err(_) => LogFormat::Text,
    };
    args.value("--log-format", default)
}

/// Installs the process's subscriber: `RUST_LOG` filter (default `info`; an invalid filter falls
/// back to `info` with a warning line), `format`, stderr. Call it once, first thing in `main`.
pub fn init(format: LogFormat) {
    init_with_default(format, "info");
}

/// Like [`init`], with `default` as the filter when `RUST_LOG` is unset or invalid. The demo
/// uses `warn`: its stdout is a live table, and `info` events (every ejection, every breaker
/// transition) would bury it, while warnings and errors must still show.
pub fn init_with_default(format: LogFormat, default: &str) {
    let (filter, bad_filter) = match std::env::var("RUST_LOG") {
        Ok(spec) => match EnvFilter::try_new(&spec) {
            Ok(filter) => (filter, None),
            Err(e) => (EnvFilter::new(default), Some(format!("{spec:?}: {e}"))),
        },
        Err(_) => (EnvFilter::new(default), None),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false);
    let installed = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    if installed.is_err() {
        // Only when a subscriber is already set, which the binaries never do.
        return;
    }
    if let Some(bad) = bad_filter {
        tracing::warn!(filter = %bad, default, "invalid RUST_LOG; logging at the default level");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_by_name() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!("yaml".parse::<LogFormat>().unwrap_err().contains("yaml"));
        assert_eq!(LogFormat::Json.to_string(), "json");
    }
}
