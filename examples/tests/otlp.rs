//! `[otlp]` and `service_name` through the real `mesh-sidecar` binary: an OTLP/HTTP receiver
//! started here gets the sidecar's metrics, protobuf-encoded, under the configured `service.name`
//! (or the binary's name when none is configured, never `unknown_service`).

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh_core::Body;
use mesh_core::server::Server;
use mesh_tls::test_ca::TestCa;
use prost::Message;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

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
                .filter_map(|r| r.resource.as_ref())
                .flat_map(|r| &r.attributes)
                .filter(|kv| kv.key == "service.name")
                .filter_map(|kv| kv.value.as_ref()?.string_value.clone())
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
