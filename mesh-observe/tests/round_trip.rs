//! Propagation over real loopback sockets: test client → service A → service B, each hop through
//! the trace layers and mesh-core's HTTP client and server. One trace id end to end, a new span id
//! per hop, each span the child of the previous hop's.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::Telemetry;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use mesh_core::client::{ClientConfig, HttpClient, TcpConnector};
use mesh_core::server::Server;
use mesh_core::{BoxError, Endpoint};
use mesh_observe::propagation::extract;
use mesh_observe::{ClientTraceLayer, ServerTraceLayer, TraceConfig};
use opentelemetry::trace::{SpanId, SpanKind};
use tokio::net::TcpListener;
use tower::{Layer, Service, ServiceExt};

type Client = mesh_observe::ClientTrace<HttpClient<Full<Bytes>>>;

fn client_to(addr: SocketAddr, config: TraceConfig) -> Client {
    let http = HttpClient::new(
        Endpoint::new(addr),
        TcpConnector::new(),
        ClientConfig::default(),
    );
    ClientTraceLayer::new(config).layer(http)
}

/// Starts `service` behind a `ServerTraceLayer` on 127.0.0.1:0; returns its address.
async fn serve<S, B>(service: S, config: TraceConfig) -> SocketAddr
where
    S: Service<Request<Incoming>, Response = Response<B>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::new(listener);
    let addr = server.local_addr().unwrap();
    let traced = ServerTraceLayer::new(config).layer(service);
    tokio::spawn(server.serve(traced));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_across_two_hops_with_a_new_span_per_hop() {
    let telemetry = Telemetry::new();

    // B answers with the traceparent it received.
    let b = tower::service_fn(|req: Request<Incoming>| async move {
        let seen = req.headers()["traceparent"].as_bytes().to_vec();
        Ok::<_, BoxError>(Response::new(Full::new(Bytes::from(seen))))
    });
    let b_addr = serve(b, telemetry.config()).await;

    // A calls B from inside its handler; the server layer's span is the current context there.
    let to_b = client_to(b_addr, telemetry.config());
    let a = tower::service_fn(move |_req: Request<Incoming>| {
        let mut to_b = to_b.clone();
        async move {
            let out = Request::get("/inventory").body(Full::new(Bytes::new()))?;
            let res = to_b.ready().await?.call(out).await?;
            let body = res.into_body().collect().await?.to_bytes();
            Ok::<_, BoxError>(Response::new(Full::new(body)))
        }
    });
    let a_addr = serve(a, telemetry.config()).await;

    let mut to_a = client_to(a_addr, telemetry.config());
    let req = Request::get("/checkout")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = to_a.ready().await.unwrap().call(req).await.unwrap();
    let b_saw = res.into_body().collect().await.unwrap().to_bytes();

    // Each server's span ends when hyper has read its response body to the end, which is before
    // the bytes are written, so all four spans are exported by the time the client has the body.
    let spans = telemetry.finished_spans();
    assert_eq!(spans.len(), 4, "{spans:#?}");
    let find = |kind: SpanKind, parent: SpanId| {
        spans
            .iter()
            .find(|s| s.span_kind == kind && s.parent_span_id == parent)
            .unwrap_or_else(|| panic!("no {kind:?} span with parent {parent}: {spans:#?}"))
    };
    let client_a = find(SpanKind::Client, SpanId::INVALID);
    let server_a = find(SpanKind::Server, client_a.span_context.span_id());
    let client_b = find(SpanKind::Client, server_a.span_context.span_id());
    let server_b = find(SpanKind::Server, client_b.span_context.span_id());

    let trace = client_a.span_context.trace_id();
    let hops = [client_a, server_a, client_b, server_b];
    assert!(
        hops.iter().all(|s| s.span_context.trace_id() == trace),
        "one trace id"
    );
    let mut ids: Vec<_> = hops.iter().map(|s| s.span_context.span_id()).collect();
    ids.sort_by_key(|id| id.to_bytes());
    ids.dedup();
    assert_eq!(ids.len(), 4, "a new span id per hop");
    assert!(server_a.parent_span_is_remote && server_b.parent_span_is_remote);

    // What went over the wire to B names A's client span as the parent.
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_bytes(&b_saw).unwrap(),
    );
    let on_wire = extract(&headers, |r| panic!("{r}")).unwrap();
    assert_eq!(on_wire.trace_id(), trace);
    assert_eq!(on_wire.span_id(), client_b.span_context.span_id());

    let peer = server_b
        .attributes
        .iter()
        .find(|kv| kv.key.as_str() == "network.peer.address")
        .map(|kv| kv.value.as_str().into_owned());
    assert_eq!(
        peer.as_deref(),
        Some("127.0.0.1"),
        "peer address from ConnectionInfo"
    );
}
