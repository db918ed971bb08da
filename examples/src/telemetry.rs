//! What the proxies export and under which name: the top-level `service_name` key and the
//! `[otlp]` table of the sidecar's and the gateway's configurations, checked into a
//! [`TelemetryConfig`] that [`Telemetry::install`](crate::runtime::Telemetry::install) applies.
//!
//! `service_name` is a top-level key rather than a `[service]` table because the sidecar already
//! has `[services]` (the outbound services): one letter apart, the two would be confused.
//!
//! ```toml
//! service_name = "orders"          # default: the binary's name (mesh-sidecar, mesh-gateway)
//!
//! [otlp]
//! endpoint = "http://otel-collector:4318"   # OTLP/HTTP, protobuf; /v1/traces, /v1/metrics
//! traces = true                             # default true
//! metrics = true                            # default true
//! interval_ms = 60000                       # metrics export period; default 60 000
//! ```

use std::time::Duration;

use serde::Deserialize;

use crate::config::ConfigError;

/// The metrics export period when `interval_ms` is absent: 60 s, the OpenTelemetry SDK
/// specification's default for a periodic reader.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(60);

/// `[otlp]`: export over OTLP/HTTP (protobuf), as mesh-observe's `otlp` helper does: the spans of
/// the trace layers and every metric the process records, with the process's `service.name`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct OtlpSettings {
    /// The receiver's base URL, `http://host:port` (an OpenTelemetry Collector listens on 4318);
    /// `/v1/traces` and `/v1/metrics` are appended. Plain HTTP only: run the collector next to
    /// the proxy.
    pub endpoint: String,
    /// Whether spans are exported. Default `true`.
    #[serde(default = "yes")]
    pub traces: bool,
    /// Whether metrics are exported (they are served on `/metrics` either way). Default `true`.
    #[serde(default = "yes")]
    pub metrics: bool,
    /// The metrics export period in milliseconds, at least 1. Default 60 000
    /// ([`DEFAULT_INTERVAL`]).
    #[serde(default)]
    pub interval_ms: Option<u64>,
}

fn yes() -> bool {
    true
}

impl OtlpSettings {
    /// Settings exporting both signals to `endpoint`.
    pub fn new(endpoint: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            traces: true,
            metrics: true,
            interval_ms: None,
        }
    }

    /// Sets [`traces`](Self::traces).
    pub fn traces(mut self, on: bool) -> Self {
        self.traces = on;
        self
    }

    /// Sets [`metrics`](Self::metrics).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Sets [`interval_ms`](Self::interval_ms).
    pub fn interval_ms(mut self, ms: u64) -> Self {
        self.interval_ms = Some(ms);
        self
    }

    fn resolve(&self) -> Result<Otlp, ConfigError> {
        let uri: http::Uri = self.endpoint.parse().map_err(|e| {
            ConfigError::invalid(
                "otlp.endpoint",
                format!("{:?} is not a URL: {e}", self.endpoint),
            )
        })?;
        if uri.scheme_str() != Some("http") || uri.authority().is_none() {
            return Err(ConfigError::invalid(
                "otlp.endpoint",
                format!(
                    "{:?} is not an http://host:port URL (OTLP/HTTP without TLS)",
                    self.endpoint
                ),
            ));
        }
        if !self.traces && !self.metrics {
            return Err(ConfigError::invalid(
                "otlp",
                "`traces` and `metrics` are both off: nothing to export (remove [otlp])",
            ));
        }
        let interval = match self.interval_ms {
            None => DEFAULT_INTERVAL,
            Some(0) => {
                return Err(ConfigError::invalid(
                    "otlp.interval_ms",
                    "must be at least 1",
                ));
            }
            Some(ms) => Duration::from_millis(ms),
        };
        Ok(Otlp {
            endpoint: self.endpoint.clone(),
            traces: self.traces,
            metrics: self.metrics,
            interval,
        })
    }
}

/// Checked `[otlp]` settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Otlp {
    /// The receiver's base URL.
    pub endpoint: String,
    /// Whether spans are exported.
    pub traces: bool,
    /// Whether metrics are exported.
    pub metrics: bool,
    /// The metrics export period.
    pub interval: Duration,
}

/// The process's telemetry settings, checked: its `service.name` and OTLP export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TelemetryConfig {
    /// `service_name`; `None`: the binary's name.
    pub service_name: Option<String>,
    /// `[otlp]`; `None`: nothing is exported.
    pub otlp: Option<Otlp>,
}

/// Checks the top-level `service_name` and the `[otlp]` table.
pub(crate) fn resolve(
    service_name: Option<&str>,
    otlp: Option<&OtlpSettings>,
) -> Result<TelemetryConfig, ConfigError> {
    if service_name.is_some_and(|name| name.trim().is_empty()) {
        return Err(ConfigError::invalid("service_name", "must not be empty"));
    }
    Ok(TelemetryConfig {
        service_name: service_name.map(str::to_owned),
        otlp: otlp.map(OtlpSettings::resolve).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn otlp(text: &str) -> Result<Otlp, String> {
        let settings: OtlpSettings = toml::from_str(text).map_err(|e| e.to_string())?;
        settings.resolve().map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_values() {
        let o = otlp("endpoint = \"http://127.0.0.1:4318\"").unwrap();
        assert_eq!(
            (o.traces, o.metrics, o.interval),
            (true, true, DEFAULT_INTERVAL)
        );
        let o = otlp("endpoint = \"http://c:4318\"\ntraces = false\ninterval_ms = 250").unwrap();
        assert_eq!(
            (o.traces, o.metrics, o.interval),
            (false, true, Duration::from_millis(250))
        );
    }

    #[test]
    fn the_readme_sample_is_valid() {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Sample {
            service_name: Option<String>,
            otlp: OtlpSettings,
        }
        let readme = include_str!("../README.md");
        let start = readme
            .find("```toml\nservice_name")
            .expect("the README has a telemetry sample")
            + "```toml\n".len();
        let len = readme[start..].find("```").expect("the sample ends");
        let sample: Sample = toml::from_str(&readme[start..start + len]).unwrap();
        let config = resolve(sample.service_name.as_deref(), Some(&sample.otlp)).unwrap();
        assert_eq!(config.service_name.as_deref(), Some("orders"));
        assert_eq!(config.otlp.unwrap().interval, DEFAULT_INTERVAL);
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = otlp("endpoint = \"collector:4318\"").unwrap_err();
        assert!(err.contains("`otlp.endpoint`"), "{err}");
        let err = otlp("endpoint = \"https://c:4318\"").unwrap_err();
        assert!(err.contains("`otlp.endpoint`"), "{err}");
        let err = otlp("endpoint = \"http://c:4318\"\ninterval_ms = 0").unwrap_err();
        assert!(err.contains("`otlp.interval_ms`"), "{err}");
        let err =
            otlp("endpoint = \"http://c:4318\"\ntraces = false\nmetrics = false").unwrap_err();
        assert!(err.contains("`otlp`"), "{err}");
        assert!(otlp("endpoint = \"http://c:4318\"\nintervall_ms = 5").is_err());
        let err = resolve(Some(" "), None).unwrap_err();
        assert_eq!(err.key(), Some("service_name"));
    }
}
