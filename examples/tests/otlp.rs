//! `[otlp]` and `service_name` through the real `mesh-sidecar` binary: an OTLP/HTTP receiver
//! started here gets the sidecar's metrics, protobuf-encoded, under the configured `service.name`
//! (or the binary's name when none is configured, never `unknown_service`), and the server span of
//! a request proxied inbound, in the trace of the caller's `traceparent`.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_core::client::{ClientConfig, HttpClient};
use mesh_core::server::Server;
use mesh_core::{Body, Endpoint};
use mesh_tls::test_ca::TestCa;
use mesh_tls::{TlsConnector, TrustBundleSet};
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tower::ServiceExt;

/// The part of `ExportMetricsServiceRequest` (and of `ExportTraceServiceRequest`, which has the
/// same shape there) that carries the resource: field 1 is `resource_metrics` (`resource_spans`),
/// whose field 1 is the `Resource`. Other fields are skipped by prost.
#[derive(Clone, PartialEq, Message)]
struct Export {
    #[prost(message, repeated, tag = "1")]
    resources: Vec<Scoped>,
}

#[derive(Clone, PartialEq, Message)]
struct Scoped {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
}

/// `ExportTraceServiceRequest`: field 1 is `resource_spans`.
#[derive(Clone, PartialEq, Message)]
struct TraceExport {
    #[prost(message, repeated, tag = "1")]
    resource_spans: Vec<ResourceSpans>,
}

/// `ResourceSpans`: the `Resource`, then `scope_spans`.
#[derive(Clone, PartialEq, Message)]
struct ResourceSpans {
    #[prost(message, optional, tag = "1")]
    resource: Option<Resource>,
    #[prost(message, repeated, tag = "2")]
    scope_spans: Vec<ScopeSpans>,
}

/// `ScopeSpans`: field 2 is `spans`.
#[derive(Clone, PartialEq, Message)]
struct ScopeSpans {
    #[prost(message, repeated, tag = "2")]
    spans: Vec<Span>,
}

/// The fields of an OTLP `Span` this test reads.
#[derive(Clone, PartialEq, Message)]
struct Span {
    #[prost(bytes = "vec", tag = "1")]
    trace_id: Vec<u8>,
    #[prost(bytes = "vec", tag = "4")]
    parent_span_id: Vec<u8>,
    #[prost(string, tag = "5")]
    name: String,
    /// `SpanKind`: 2 is `SPAN_KIND_SERVER`.
    #[prost(int32, tag = "6")]
    kind: i32,
}

const SPAN_KIND_SERVER: i32 = 2;

#[derive(Clone, PartialEq, Message)]
struct Resource {
    #[prost(message, repeated, tag = "1")]
    attributes: Vec<KeyValue>,
}

#[derive(Clone, PartialEq, Message)]
struct KeyValue {
    #[prost(string, tag = "1")]
    key: String,
    #[prost(message, optional, tag = "2")]
    value: Option<AnyValue>,
}

#[derive(Clone, PartialEq, Message)]
struct AnyValue {
    #[prost(string, optional, tag = "1")]
    string_value: Option<String>,
}

/// An OTLP/HTTP receiver: every request's path and body go to the returned channel.
async fn receiver() -> (SocketAddr, mpsc::UnboundedReceiver<(String, Bytes)>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let app = tower::service_fn(move |req: Request<Incoming>| {
        let tx = tx.clone();
        async move {
            let path = req.uri().path().to_owned();
            let body = req.into_body().collect().await.unwrap().to_bytes();
            let _ = tx.send((path, body));
            Ok::<_, Infallible>(Response::new(Body::empty()))
        }
    });
    tokio::spawn(server.serve(app));
    (addr, rx)
}

/// The `service.name` of a resource.
fn service_name(resource: Option<&Resource>) -> Option<String> {
    resource?
        .attributes
        .iter()
        .find(|kv| kv.key == "service.name")?
        .value
        .as_ref()?
        .string_value
        .clone()
}

/// The `service.name` of the first metrics export the receiver gets (bounded at 30 s).
async fn first_metrics_service_name(rx: &mut mpsc::UnboundedReceiver<(String, Bytes)>) -> String {
    let wait = async {
        loop {
            let (path, body) = rx.recv().await.expect("the receiver stopped");
            if path != "/v1/metrics" {
                continue;
            }
            let export = Export::decode(body).expect("an OTLP protobuf export");
            let names: Vec<String> = export
                .resources
                .iter()
                .filter_map(|r| service_name(r.resource.as_ref()))
                .collect();
            return names.first().cloned().expect("a service.name attribute");
        }
    };
    tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("no metrics export arrived")
}

fn config(dir: &std::path::Path, top: &str, otlp: SocketAddr) -> String {
    let ca = TestCa::new("test.example");
    format!(
        "{top}[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
         [app]\naddress = \"127.0.0.1:9\"\n{}\
         [otlp]\nendpoint = \"http://{otlp}\"\ntraces = false\ninterval_ms = 100\n",
        support::write_identity(dir, &ca, "a")
    )
}

#[tokio::test]
async fn the_sidecar_exports_metrics_over_otlp_with_its_service_name() {
    let dir = support::temp_dir("mesh-otlp-test", "named");
    let (addr, mut rx) = receiver().await;
    let text = config(&dir, "service_name = \"orders-sidecar\"\n", addr);
    let sidecar = support::start_sidecar(&dir.join("named.toml"), &text).await;
    assert_eq!(first_metrics_service_name(&mut rx).await, "orders-sidecar");
    drop(sidecar);

    let (addr, mut rx) = receiver().await;
    let text = config(&dir, "", addr);
    let sidecar = support::start_sidecar(&dir.join("default.toml"), &text).await;
    assert_eq!(first_metrics_service_name(&mut rx).await, "mesh-sidecar");
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The traced sidecar's configuration: service `orders`, spans exported to `otlp`, metrics not.
fn traces_config(dir: &std::path::Path, ca: &TestCa, app: SocketAddr, otlp: SocketAddr) -> String {
    format!(
        "service_name = \"orders\"\n[listeners]\ninbound = \"127.0.0.1:0\"\n\
         outbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n[app]\naddress = \"{app}\"\n{}\
         [otlp]\nendpoint = \"http://{otlp}\"\nmetrics = false\n",
        support::write_identity(dir, ca, "orders")
    )
}

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Sends `GET /items/1` to the sidecar's inbound listener as a caller with an SVID of the same
/// trust domain and its own trace context ([`TRACE_ID`], parent [`PARENT`]); checks the answer.
async fn traced_request(sidecar: &support::Sidecar, ca: &TestCa) {
    let caller = ca.issue("/web").svid();
    let bundles = Arc::new(
        TrustBundleSet::new()
            .with(ca.trust_domain().clone(), ca.roots())
            .unwrap(),
    );
    let endpoint = Endpoint::builder(sidecar.inbound)
        .identity("spiffe://test.example/orders")
        .build()
        .unwrap();
    let client = HttpClient::<Body>::new(
        endpoint,
        TlsConnector::new(caller, bundles),
        ClientConfig::default(),
    );
    let request = Request::get("http://orders/items/1")
        .header("traceparent", format!("00-{TRACE_ID}-{PARENT}-01"))
        .body(Body::empty())
        .unwrap();
    let response = client.oneshot(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "app");
}

/// The `service.name` and the server span of one export, if it is a trace export holding one.
fn server_span(path: &str, body: Bytes) -> Option<(Option<String>, Span)> {
    assert_ne!(path, "/v1/metrics", "metrics are off");
    assert_eq!(path, "/v1/traces");
    let export = TraceExport::decode(body).expect("an OTLP protobuf trace export");
    export.resource_spans.iter().find_map(|resource| {
        let mut spans = resource.scope_spans.iter().flat_map(|s| &s.spans);
        let span = spans.find(|span| span.kind == SPAN_KIND_SERVER)?;
        Some((service_name(resource.resource.as_ref()), span.clone()))
    })
}

/// The span is the sidecar's server span of [`traced_request`], under service `orders`.
fn assert_traced_request_span(service: Option<String>, span: &Span) {
    assert_eq!(service.as_deref(), Some("orders"));
    assert_eq!(hex(&span.trace_id), TRACE_ID, "the caller's trace");
    assert_eq!(
        hex(&span.parent_span_id),
        PARENT,
        "the caller's span is the parent"
    );
    assert!(span.name.starts_with("GET"), "{}", span.name);
}

#[tokio::test]
async fn the_sidecar_exports_the_server_span_of_a_proxied_request_over_otlp() {
    let dir = support::temp_dir("mesh-otlp-test", "traces");
    let ca = TestCa::new("test.example");
    let (otlp, mut rx) = receiver().await;
    let app = support::start_app("app").await;
    let text = traces_config(&dir, &ca, app, otlp);
    let sidecar = support::start_sidecar(&dir.join("traces.toml"), &text).await;
    traced_request(&sidecar, &ca).await;

    // The batch exporter sends within its schedule delay (5 s by default); bounded at 30 s.
    let wait = async {
        loop {
            let (path, body) = rx.recv().await.expect("the receiver stopped");
            if let Some(found) = server_span(&path, body) {
                return found;
            }
        }
    };
    let (service, span) = tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .expect("no server span arrived");
    assert_traced_request_span(service, &span);
    drop(sidecar);
    let _ = std::fs::remove_dir_all(&dir);
}

/// With one worker the sidecar runs a current-thread runtime; on SIGTERM it drains, flushes the
/// span it still buffers (the export requests run on that same runtime while the flush waits for
/// them) and exits 0.
#[tokio::test]
async fn on_one_worker_the_sidecar_flushes_its_spans_when_it_stops() {
    let dir = support::temp_dir("mesh-otlp-test", "one-worker");
    let ca = TestCa::new("test.example");
    let (otlp, mut rx) = receiver().await;
    let app = support::start_app("app").await;
    let text = traces_config(&dir, &ca, app, otlp);
    let path = dir.join("one-worker.toml");
    let sidecar = support::start_sidecar_with(&path, &text, &["--workers", "1"]).await;
    traced_request(&sidecar, &ca).await;

    let exit = sidecar.child.terminate().await;
    assert!(exit.success(), "{exit:?}");

    // The receiver queues an export before answering it, and the sidecar exits only after its
    // exports are answered: the span is here already.
    let mut found = None;
    while let Ok((path, body)) = rx.try_recv() {
        found = found.or_else(|| server_span(&path, body));
    }
    let (service, span) = found.expect("no server span was exported before the sidecar exited");
    assert_traced_request_span(service, &span);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Lower-case hex of an id.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
