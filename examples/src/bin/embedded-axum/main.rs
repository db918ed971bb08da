//! `embedded-axum`: an axum application served with the mesh's inbound layers, no sidecar.
//!
//! ```text
//! TlsAcceptor (mTLS; puts the client's PeerIdentity on every request)
//!   → ServerTraceLayer (spans, http.server.request.duration)
//!   → ErrorResponse (failures become responses: denied → 403)
//!   → AuthzLayer (only spiffe://embedded.example/web may call)
//!   → ConcurrencyLimit (at most 64 requests in the app at once)
//!   → axum Router (/hello, /whoami)
//! ```
//!
//! The whole stack is one `mesh::ServerBuilder` call. Certificates come from mesh-tls's
//! in-process test CA, so the program needs no setup. It serves on a loopback port, then calls
//! itself through a `mesh::Client` over mTLS twice per identity: as `web` (allowed) and as `batch`
//! (denied with 403), prints one line per call and exits 0 when every answer was the expected one
//! (1 otherwise).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::Request as AxumRequest;
use axum::routing::get;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mesh::{Client, ServerBuilder};
use mesh_core::{BoxError, PeerIdentity};
use mesh_retry::limit::ConcurrencyConfig;
use mesh_tls::authz::{AuthzPolicy, AuthzRule};
use mesh_tls::test_ca::TestCa;
use mesh_tls::{Authorizer, SpiffeId, TlsAcceptor, TlsConnector, TrustBundleSet};
use tower::ServiceExt;

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

async fn run() -> Result<bool, BoxError> {
    let ca = TestCa::new(TRUST_DOMAIN);
    let bundles = TestCa::bundles([&ca]);
    let server_svid = ca.issue("/api");
    let web: SpiffeId = format!("spiffe://{TRUST_DOMAIN}/web").parse()?;

    let server = ServerBuilder::new(app())
        .tls(TlsAcceptor::new(
            server_svid.try_svid()?,
            Arc::clone(&bundles),
        ))
        .authz(AuthzPolicy::new().allow(AuthzRule::peers(Authorizer::ids([web]))))
        .concurrency_limit(ConcurrencyConfig::fixed(64).name("embedded-axum"))
        .bind("127.0.0.1:0".parse()?)
        .await?;
    let addr = server.local_addr();
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

    server.shutdown().await?;
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
    let client = Client::builder()
        .endpoints([addr])
        .tls(TlsConnector::new(svid, Arc::clone(bundles)))
        .identity(format!("spiffe://{TRUST_DOMAIN}/api"))
        .build()?;
    let request = Request::get(format!("http://{addr}{path}")).body(String::new())?;
    let response = client.oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
