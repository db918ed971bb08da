//! [`AccessLogRecord`] and the callback that writes it.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Method, StatusCode};
use mesh_core::PeerIdentity;
use mesh_core::classify::{Completion, OnCompletion, Outcome};
use opentelemetry::trace::{SpanId, TraceId};
use tokio::time::Instant;

use super::layer::Sink;
use crate::RouteTemplate;

/// One request, as the access log reports it.
///
/// `Display` renders one logfmt line, always in this order:
/// `trace_id=… span_id=… peer=… peer_identity=… method=… path=… route=… status=… duration_ms=…
/// outcome=…`. Absent values are written as `-`; the path is written up to its first space or
/// control character only (a log line is never split by what a client sent).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AccessLogRecord {
    /// The trace id, `TraceId::INVALID` when the request was not traced.
    pub trace_id: TraceId,
    /// The server span's id, `SpanId::INVALID` when the request was not traced.
    pub span_id: SpanId,
    /// The peer's address, from mesh-core's `ConnectionInfo`.
    pub peer_addr: Option<SocketAddr>,
    /// The peer's verified SPIFFE identity, when mesh-tls put one in the request.
    pub peer_identity: Option<PeerIdentity>,
    /// The request method.
    pub method: Method,
    /// The request path (without query).
    pub path: String,
    /// The route template, when a router supplied one.
    pub route: Option<RouteTemplate>,
    /// The response status; `None` when the service failed instead of answering.
    pub status: Option<StatusCode>,
    /// From the call to the end of the response body (or the failure, or the cancellation).
    pub duration: Duration,
    /// `success`, a failure class from mesh-core's classifier (`http_status`, `overloaded`,
    /// `grpc_status`, an error kind such as `timeout`), or `cancelled`.
    pub outcome: &'static str,
}

impl AccessLogRecord {
    /// The default sink: an `INFO` `tracing` event, target `mesh_observe::access_log`, with the
    /// record's fields as event fields and the logfmt line as its message.
    pub fn emit(&self) {
        tracing::info!(
            target: "mesh_observe::access_log",
            trace_id = %self.trace_id,
            span_id = %self.span_id,
            peer_identity = self.peer_identity.as_ref().map(PeerIdentity::as_str),
            status = self.status.map(|s| s.as_u16()),
            duration_ms = self.duration.as_secs_f64() * 1e3,
            outcome = self.outcome,
            "{self}"
        );
    }
}

struct OrDash<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for OrDash<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("-"),
        }
    }
}

impl fmt::Display for AccessLogRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let safe_path = self
            .path
            .split(|c: char| c.is_whitespace() || c.is_control())
            .next()
            .unwrap_or_default();
        let route = self.route.as_ref().map(RouteTemplate::as_str);
        write!(
            f,
            "trace_id={} span_id={} peer={} peer_identity={} method={} path={} route={} \
             status={} duration_ms={:.3} outcome={}",
            self.trace_id,
            self.span_id,
            OrDash(self.peer_addr),
            OrDash(self.peer_identity.as_ref()),
            self.method,
            if safe_path.is_empty() { "-" } else { safe_path },
            OrDash(route),
            OrDash(self.status.map(|s| s.as_u16())),
            self.duration.as_secs_f64() * 1e3,
            self.outcome,
        )
    }
}

/// Writes the access-log record when the request ends; the [`OnCompletion`] callback the
/// [`AccessLog`](super::AccessLog) service hands to mesh-core's `observe_response`. Public only
/// so that [`AccessLogBody`](super::AccessLogBody) can be named. Runs exactly once: at body end,
/// on failure, or (outcome `cancelled`) when dropped unfinished.
pub struct LogOnEnd {
    pending: Option<(AccessLogRecord, Instant, Sink)>,
}

impl fmt::Debug for LogOnEnd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogOnEnd")
            .field("written", &self.pending.is_none())
            .finish()
    }
}

impl LogOnEnd {
    pub(crate) fn new(record: AccessLogRecord, sink: Sink) -> Self {
        Self {
            pending: Some((record, mesh_core::time::now(), sink)),
        }
    }

    pub(crate) fn set_status(&mut self, status: StatusCode) {
        if let Some((record, _, _)) = &mut self.pending {
            record.status = Some(status);
        }
    }

    pub(crate) fn write(&mut self, outcome: &'static str) {
        if let Some((mut record, start, sink)) = self.pending.take() {
            record.duration = mesh_core::time::now().saturating_duration_since(start);
            record.outcome = outcome;
            sink(&record);
        }
    }
}

impl OnCompletion for LogOnEnd {
    fn on_completion(mut self, completion: Completion) {
        let outcome = completion.outcome().map_or("cancelled", Outcome::kind);
        self.write(outcome);
    }
}

impl Drop for LogOnEnd {
    fn drop(&mut self) {
        self.write("cancelled");
    }
}
