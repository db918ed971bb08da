//! The inbound stack in-process, in front of an app that records what it receives.

use std::sync::{Arc, Mutex, OnceLock};

use http::{HeaderMap, Request, Response};
use mesh_core::{Body, Identity, PeerIdentity};
use tower::ServiceExt;

use super::stack;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// The sidecar's tracer provider (spans with real ids), installed once for every test here:
/// the trace layer reads the global provider when it is built.
fn tracer_provider() {
    static PROVIDER: OnceLock<mesh_observe::IdOnlyTracerProvider> = OnceLock::new();
    PROVIDER.get_or_init(mesh_examples::stack::install_tracer_provider);
}

/// A configuration whose identity files exist (their contents are not read here).
fn config() -> mesh_examples::config::Sidecar {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("mesh-sidecar-inbound-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["cert.pem", "key.pem", "roots.pem"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    let text = "[listeners]\ninbound = \"127.0.0.1:0\"\noutbound = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
                [app]\naddress = \"127.0.0.1:9\"\n\
                [identity]\ncert = \"cert.pem\"\nkey = \"key.pem\"\nbundles = { \"test.example\" = \"roots.pem\" }\n";
    let config = mesh_examples::config::parse(text, &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    config
}

/// Sends one request with `headers` from an authenticated peer through the inbound stack; returns
/// the headers the app received.
async fn forwarded(headers: &[(&str, &str)]) -> HeaderMap {
    tracer_provider();
    let seen = Arc::new(Mutex::new(None));
    let app = tower::service_fn({
        let seen = seen.clone();
        move |req: Request<Body>| {
            *seen.lock().unwrap() = Some(req.headers().clone());
            async { Ok::<_, std::convert::Infallible>(Response::new(Body::from("ok"))) }
        }
    });
    let meter = opentelemetry::global::meter("inbound-test");
    let inbound = stack(&config(), &meter, app).unwrap();
    let mut req = Request::get("http://app/orders")
        .body(Body::empty())
        .unwrap();
    for (name, value) in headers {
        let name = http::HeaderName::from_bytes(name.as_bytes()).unwrap();
        req.headers_mut().insert(name, value.parse().unwrap());
    }
    let peer = Identity::new("spiffe://test.example/caller").unwrap();
    req.extensions_mut().insert(PeerIdentity::new(peer));
    let res = inbound.oneshot(req).await.unwrap();
    assert_eq!(res.status(), 200);
    seen.lock().unwrap().take().expect("the app was not called")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

#[tokio::test]
async fn the_app_sees_the_inbound_server_span_as_its_parent() {
    let traceparent = format!("00-{TRACE_ID}-{CALLER_SPAN}-01");
    let headers = forwarded(&[
        ("traceparent", &traceparent),
        // `tenant@vendor-system1`: a 14-character system id, valid but refused by
        // opentelemetry's TraceState; the sidecar still forwards it.
        ("tracestate", "vendor=value,tenant@vendor-system1=x"),
    ])
    .await;
    let got = header(&headers, "traceparent").expect("a traceparent for the app");
    let parts: Vec<&str> = got.split('-').collect();
    assert_eq!(parts.len(), 4, "{got}");
    assert_eq!(parts[1], TRACE_ID, "same trace");
    assert_ne!(
        parts[2], CALLER_SPAN,
        "the sidecar's span, not the caller's"
    );
    assert_ne!(parts[2], "0000000000000000");
    assert_eq!(parts[3], "01", "the sampling decision is kept");
    assert_eq!(
        header(&headers, "tracestate"),
        Some("vendor=value,tenant@vendor-system1=x")
    );
    assert!(
        header(&headers, "b3").is_none(),
        "no format the caller did not use"
    );
}

#[tokio::test]
async fn b3_callers_get_b3_with_the_server_span() {
    let b3 = format!("{TRACE_ID}-{CALLER_SPAN}-1");
    let headers = forwarded(&[("b3", &b3)]).await;
    let got = header(&headers, "b3").expect("a b3 header for the app");
    let parts: Vec<&str> = got.split('-').collect();
    assert_eq!(parts[0], TRACE_ID, "{got}");
    assert_ne!(parts[1], CALLER_SPAN, "{got}");
    assert!(header(&headers, "traceparent").is_none());

    let headers = forwarded(&[
        ("x-b3-traceid", TRACE_ID),
        ("x-b3-spanid", CALLER_SPAN),
        ("x-b3-sampled", "1"),
    ])
    .await;
    assert_eq!(header(&headers, "x-b3-traceid"), Some(TRACE_ID));
    let span = header(&headers, "x-b3-spanid").unwrap();
    assert_ne!(span, CALLER_SPAN);
}

#[tokio::test]
async fn without_a_caller_context_the_app_joins_the_sidecars_trace() {
    let headers = forwarded(&[]).await;
    let got = header(&headers, "traceparent").expect("a traceparent for the app");
    assert_eq!(got.len(), 55, "{got}");
    assert!(got.starts_with("00-"), "{got}");
}
