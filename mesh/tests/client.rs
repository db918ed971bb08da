//! `mesh::Client` from the builder against real backends on loopback: balancing, retries, mTLS
//! with the expected SPIFFE ID.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use mesh::tls::test_ca::TestCa;
use mesh::tls::{TlsAcceptor, TlsConnector};
use mesh::{Client, ServerBuilder, ServerHandle};
use tower::ServiceExt;

/// A backend on a loopback port that answers `200 <name>`, or `503` to the requests `fail`
/// picks (by the 0-based count of requests it received before); it counts what it receives.
async fn backend(
    name: &'static str,
    tls: Option<TlsAcceptor>,
    fail: fn(u64) -> bool,
) -> (ServerHandle, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&hits);
    let service = tower::service_fn(move |_req: Request<Incoming>| {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        async move {
            let mut res = Response::new(name.to_owned());
            if fail(n) {
                *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
            }
            Ok::<_, Infallible>(res)
        }
    });
    let mut builder = ServerBuilder::new(service);
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    let handle = builder.bind(loopback()).await.unwrap();
    (handle, hits)
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

async fn get(client: &Client, path: &str) -> Result<(StatusCode, String), mesh::BoxError> {
    let req = Request::get(format!("http://backend{path}"))
        .body(String::new())
        .unwrap();
    let res = client.clone().oneshot(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

#[tokio::test]
async fn balances_over_plain_backends() {
    let (a, a_hits) = backend("a", None, |_| false).await;
    let (b, b_hits) = backend("b", None, |_| false).await;
    let client = Client::builder()
        .name("plain")
        .endpoints([a.local_addr(), b.local_addr()])
        .seed(1)
        .build()
        .unwrap();
    for _ in 0..40 {
        let (status, body) = get(&client, "/").await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert!(body == "a" || body == "b", "{body}");
    }
    let (a_hits, b_hits) = (a_hits.load(Ordering::SeqCst), b_hits.load(Ordering::SeqCst));
    assert_eq!(a_hits + b_hits, 40);
    assert!(a_hits > 0 && b_hits > 0, "a {a_hits}, b {b_hits}");
    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
}

#[tokio::test]
async fn retries_a_failed_request() {
    // The only endpoint fails its first request; the retry gets the second answer.
    let (flaky, hits) = backend("flaky", None, |n| n == 0).await;
    let client = Client::builder()
        .endpoints([flaky.local_addr()])
        .seed(2)
        .build()
        .unwrap();
    assert_eq!(
        get(&client, "/").await.unwrap(),
        (StatusCode::OK, "flaky".to_owned())
    );
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    flaky.shutdown().await.unwrap();
}

#[tokio::test]
async fn retries_route_around_a_failing_endpoint() {
    let (bad, bad_hits) = backend("bad", None, |_| true).await;
    let (good, good_hits) = backend("good", None, |_| false).await;
    let client = Client::builder()
        .endpoints([bad.local_addr(), good.local_addr()])
        .seed(3)
        .build()
        .unwrap();
    for _ in 0..20 {
        assert_eq!(
            get(&client, "/").await.unwrap(),
            (StatusCode::OK, "good".to_owned())
        );
    }
    // Every request succeeded exactly once, on the good endpoint; the bad one was tried (and
    // those attempts retried) before ejection and its breaker took it out of rotation.
    assert_eq!(good_hits.load(Ordering::SeqCst), 20);
    let bad_hits = bad_hits.load(Ordering::SeqCst);
    assert!(bad_hits >= 1, "the failing endpoint was never tried");
    bad.shutdown().await.unwrap();
    good.shutdown().await.unwrap();
}

#[tokio::test]
async fn mtls_checks_the_expected_identity() {
    let ca = TestCa::new("test.example");
    let bundles = TestCa::bundles([&ca]);
    let acceptor = TlsAcceptor::new(ca.issue("/api").svid(), Arc::clone(&bundles));
    let (api, hits) = backend("api", Some(acceptor), |_| false).await;
    let connector = || TlsConnector::new(ca.issue("/web").svid(), Arc::clone(&bundles));

    let right = Client::builder()
        .endpoints([api.local_addr()])
        .tls(connector())
        .identity("spiffe://test.example/api")
        .build()
        .unwrap();
    assert_eq!(
        get(&right, "/").await.unwrap(),
        (StatusCode::OK, "api".to_owned())
    );

    let wrong = Client::builder()
        .endpoints([api.local_addr()])
        .tls(connector())
        .identity("spiffe://test.example/someone-else")
        .build()
        .unwrap();
    let err = get(&wrong, "/").await.unwrap_err();
    assert!(
        mesh::core::is_caused_by::<mesh::core::error::ConnectError>(&*err),
        "{err:?}"
    );
    assert!(format!("{err:?}").contains("IdentityMismatch"), "{err:?}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "the impostor never got a request"
    );
    api.shutdown().await.unwrap();
}

#[test]
fn settings_errors_name_the_key() {
    let err = Client::builder().build().unwrap_err();
    assert_eq!(err.key(), "discover");
    let err = Client::builder()
        .endpoints([loopback()])
        .identity("spiffe://test.example/api")
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "identity");
    let ca = TestCa::new("test.example");
    let err = Client::builder()
        .endpoints([loopback()])
        .tls(TlsConnector::new(
            ca.issue("/web").svid(),
            TestCa::bundles([&ca]),
        ))
        .identity("https://not-spiffe")
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "identity");
    let err = Client::builder()
        .endpoints([loopback()])
        .breaker(mesh::retry::breaker::BreakerConfig::new().jitter(2.0))
        .build()
        .unwrap_err();
    assert_eq!(err.key(), "breaker.jitter", "{err}");
}

#[tokio::test]
async fn endpoints_can_be_wrapped_and_the_client_watched() {
    let (a, hits) = backend("a", None, |_| false).await;
    let wrapped = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&wrapped);
    let client = Client::builder()
        .endpoints([a.local_addr()])
        .wrap_endpoints(move |ep, service| {
            assert_eq!(ep.addr().ip(), std::net::Ipv4Addr::LOCALHOST);
            let counter = Arc::clone(&counter);
            mesh::EndpointService::new(service.map_request(move |req| {
                counter.fetch_add(1, Ordering::SeqCst);
                req
            }))
        })
        .build()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(get(&client, "/").await.unwrap().0, StatusCode::OK);
    }
    assert_eq!(wrapped.load(Ordering::SeqCst), 3);
    assert_eq!(hits.load(Ordering::SeqCst), 3);
    let status = client.status().expect("a built client has a status");
    assert_eq!((status.endpoints, status.ejected), (1, 0));
    let breakers = client.breakers().expect("and breakers");
    assert!(breakers.find(a.local_addr()).is_some());
    assert_eq!(client.budget().expect("and a budget").requests(), 3);
    a.shutdown().await.unwrap();
}
