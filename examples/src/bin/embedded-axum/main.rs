//! `embedded-axum`: an axum application served with the mesh's inbound layers, no sidecar.
//!
//! ```text
//! TlsAcceptor (mTLS; puts the client's PeerIdentity on every request)
//!   → ErrorResponse (failures become responses: denied → 403)
//!   → AuthzLayer (only spiffe://embedded.example/web may call)
//!   → ServerTraceLayer (spans, http.server.request.duration)
//!   → ConcurrencyLimit (at most 64 requests in the app at once)
//!   → axum Router (/hello, /whoami)
//! ```
//!
//! Certificates come from mesh-tls's in-process test CA, so the program needs no setup. It serves
//! on a loopback port, then calls itself through mesh-core's `HttpClient` over mTLS twice per
//! identity: as `web` (allowed) and as `batch` (denied with 403), prints one line per call and
//! exits 0 when every answer was the expected one (1 otherwise).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::routing::get;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use mesh_core::client::{ClientConfig, HttpClient};
use mesh_core::error::ErrorResponseLayer;
use mesh_core::server::Server;
use mesh_core::{Body, BoxError, Endpoint, PeerIdentity};
use mesh_observe::{ServerTraceLayer, TraceConfig};
use mesh_retry::limit::{ConcurrencyConfig, ConcurrencyLimitLayer};
use mesh_tls::authz::{AuthzLayer, AuthzPolicy, AuthzRule};
use mesh_tls::test_ca::TestCa;
use mesh_tls::{Authorizer, SpiffeId, TlsAcceptor, TlsConnector, TrustBundleSet};
use tokio::net::TcpListener;
use tower::{ServiceBuilder, ServiceExt};

const TRUST_DOMAIN: &str = "embedded.example";

#[tokio::main]
async fn main() {
    match run().await {
        Ok(true) => {}
        Ok(false) => {
            eprintln!("embedded-axum: an answer was not the expected one");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("embedded-axum: {e}");
            std::process::exit(1);
        }
    }
}

/// The application: plain axum, unaware of the mesh except for reading [`PeerIdentity`].
fn app() -> Router {
    Router::new()
        .route("/hello", get(|| async { "hello from embedded-axum\n" }))
        .route("/whoami", get(whoami))
}

/// Echoes the mTLS-verified caller, which the acceptor put in the request extensions.
async fn whoami(request: AxumRequest) -> String {
    match request.extensions().get::<PeerIdentity>() {
        Some(peer) => format!("you are {}", peer.as_str()),
        None => "you are anonymous".to_owned(),
    }
}

/// The served stack: mesh inbound layers around the axum router.
fn inbound(
    allowed: SpiffeId,
) -> Result<
    impl tower::Service<
        Request<Incoming>,
        Response = Response<Body>,
        Error = Infallible,
        Future = impl Send,
    > + Clone
    + Send
    + 'static,
    BoxError,
> {
    let policy = AuthzPolicy::new().allow(AuthzRule::peers(Authorizer::ids([allowed])));
    let limit = ConcurrencyLimitLayer::new(ConcurrencyConfig::fixed(64).name("embedded-axum"))?;
    Ok(ServiceBuilder::new()
        .map_response(|res: Response<_>| res.map(Body::new))
        .layer(ErrorResponseLayer::new())
        .layer(AuthzLayer::new(policy))
        .layer(ServerTraceLayer::new(TraceConfig::new()))
        .layer(limit)
        .map_response(|res: Response<axum::body::Body>| res.map(Body::new))
        .service(app()))
}

async fn run() -> Result<bool, BoxError> {
    let ca = TestCa::new(TRUST_DOMAIN);
    let bundles = TestCa::bundles([&ca]);
    let server_svid = ca.issue("/api");
    let web: SpiffeId = format!("spiffe://{TRUST_DOMAIN}/web").parse()?;

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let server = Server::new(listener).acceptor(TlsAcceptor::new(
        server_svid.try_svid()?,
        Arc::clone(&bundles),
    ));
    let addr = server.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.serve_with_shutdown(inbound(web)?, async {
        let _ = stopped.await;
    }));
    println!("embedded-axum: serving on https://{addr} as spiffe://{TRUST_DOMAIN}/api");

    let mut all_expected = true;
    let calls = [
        ("web", "/hello", StatusCode::OK),
        ("web", "/whoami", StatusCode::OK),
        ("batch", "/hello", StatusCode::FORBIDDEN),
        ("batch", "/whoami", StatusCode::FORBIDDEN),
    ];
    for (caller, path, expected) in calls {
        let (status, body) = call(&ca, &bundles, caller, addr, path).await?;
        let verdict = if status == expected {
            "ok"
        } else {
            all_expected = false;
            "UNEXPECTED"
        };
        println!(
            "embedded-axum: {caller} GET {path} -> {} {:?} ({verdict})",
            status.as_u16(),
            body.trim_end()
        );
    }

    let _ = stop.send(());
    serving.await??;
    Ok(all_expected)
}

/// One request to `addr` over mTLS as `spiffe://embedded.example/<caller>`, expecting the server
/// to be `spiffe://embedded.example/api`; returns the status and body.
async fn call(
    ca: &TestCa,
    bundles: &Arc<TrustBundleSet>,
    caller: &str,
    addr: SocketAddr,
    path: &str,
) -> Result<(StatusCode, String), BoxError> {
    let svid = ca.issue(&format!("/{caller}")).try_svid()?;
    let endpoint = Endpoint::builder(addr)
        .identity(&format!("spiffe://{TRUST_DOMAIN}/api"))
        .build()?;
    let client = HttpClient::<Empty<bytes::Bytes>>::new(
        endpoint,
        TlsConnector::new(svid, Arc::clone(bundles)),
        ClientConfig::default(),
    );
    let request = Request::get(format!("http://{addr}{path}")).body(Empty::new())?;
    let response = client.oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
