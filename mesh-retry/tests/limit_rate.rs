//! Token-bucket rate limit: burst, refill, retry-after, keys, clones, the key bound.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use http::header::HeaderName;
use http::{Extensions, HeaderMap, Request, Response};
use mesh_core::error::RateLimited;
use mesh_core::server::ConnectionInfo;
use mesh_core::{BoxError, Identity, PeerIdentity};
use mesh_retry::limit::rate::{HeaderKey, PeerIdentityKey, PeerIp};
use mesh_retry::limit::{KeyExtractor, RateLimit, RateLimitConfig, RateLimitLayer};
use tokio::time::advance;
use tower::util::ServiceFn;
use tower::{Layer, ServiceExt, service_fn};

type Handler = fn(Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>>;
type Backend = ServiceFn<Handler>;

fn ok(_req: Request<()>) -> std::future::Ready<Result<Response<()>, Infallible>> {
    std::future::ready(Ok(Response::new(())))
}

fn limited<K: KeyExtractor + Clone>(layer: &RateLimitLayer<K>) -> RateLimit<Backend, K> {
    layer.layer(service_fn(ok as Handler))
}

async fn send<K: KeyExtractor + Clone>(
    svc: &RateLimit<Backend, K>,
    request: Request<()>,
) -> Result<(), BoxError> {
    svc.clone().oneshot(request).await.map(drop)
}

fn retry_after(err: BoxError) -> Duration {
    err.downcast_ref::<RateLimited>()
        .expect("RateLimited")
        .retry_after()
        .expect("a wait time")
}

fn with_key(key: &str) -> Request<()> {
    Request::builder().header("x-tenant", key).body(()).unwrap()
}

fn tenant_layer(config: RateLimitConfig) -> RateLimitLayer<HeaderKey> {
    RateLimitLayer::new(config)
        .unwrap()
        .keyed_by(HeaderKey(HeaderName::from_static("x-tenant")))
}

#[tokio::test(start_paused = true)]
async fn burst_then_refusal_with_the_exact_wait_then_refill() {
    let svc = limited(&RateLimitLayer::new(RateLimitConfig::per_second(4.0).burst(3)).unwrap());
    for _ in 0..3 {
        send(&svc, Request::new(())).await.unwrap();
    }
    let err = send(&svc, Request::new(())).await.unwrap_err();
    assert_eq!(
        retry_after(err),
        Duration::from_millis(250),
        "one token every 250 ms"
    );

    advance(Duration::from_millis(100)).await;
    let err = send(&svc, Request::new(())).await.unwrap_err();
    assert_eq!(
        retry_after(err),
        Duration::from_millis(150),
        "0.4 token there, 0.6 to go"
    );

    advance(Duration::from_millis(150)).await;
    send(&svc, Request::new(())).await.unwrap();
    assert!(send(&svc, Request::new(())).await.is_err());

    // A long pause refills up to the burst, not beyond.
    advance(Duration::from_secs(60)).await;
    for _ in 0..3 {
        send(&svc, Request::new(())).await.unwrap();
    }
    assert!(send(&svc, Request::new(())).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn fractional_rates_refill_slowly() {
    let svc = limited(&RateLimitLayer::new(RateLimitConfig::per_second(0.5)).unwrap());
    send(&svc, Request::new(())).await.unwrap();
    let err = send(&svc, Request::new(())).await.unwrap_err();
    assert_eq!(retry_after(err), Duration::from_secs(2));
    advance(Duration::from_secs(2)).await;
    send(&svc, Request::new(())).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_refused_request_never_reaches_the_inner_service() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let layer = RateLimitLayer::new(RateLimitConfig::per_second(1.0)).unwrap();
    let svc = layer.layer(service_fn(move |_req: Request<()>| {
        counter.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok::<_, Infallible>(Response::new(())))
    }));
    for _ in 0..5 {
        let _ = svc.clone().oneshot(Request::new(())).await;
    }
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn keys_have_separate_buckets_and_keyless_requests_share_one() {
    let svc = limited(&tenant_layer(RateLimitConfig::per_second(1.0)));
    send(&svc, with_key("alice")).await.unwrap();
    assert!(send(&svc, with_key("alice")).await.is_err());
    send(&svc, with_key("bob")).await.unwrap();
    assert!(send(&svc, with_key("bob")).await.is_err());

    // Leaving the header out does not escape the limit: all keyless requests share a bucket.
    send(&svc, Request::new(())).await.unwrap();
    assert!(send(&svc, Request::new(())).await.is_err());
    assert_eq!(svc.tracked_keys(), 3);
}

#[tokio::test(start_paused = true)]
async fn clones_share_the_buckets() {
    let svc = limited(&RateLimitLayer::new(RateLimitConfig::per_second(1.0).burst(2)).unwrap());
    let clone = svc.clone();
    send(&svc, Request::new(())).await.unwrap();
    send(&clone, Request::new(())).await.unwrap();
    assert!(send(&svc, Request::new(())).await.is_err());
    assert!(send(&clone, Request::new(())).await.is_err());

    // Separate layer applications are separate limits.
    let other = limited(&RateLimitLayer::new(RateLimitConfig::per_second(1.0)).unwrap());
    send(&other, Request::new(())).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn peer_ip_keys_on_the_connection_info() {
    let layer = RateLimitLayer::new(RateLimitConfig::per_second(1.0))
        .unwrap()
        .keyed_by(PeerIp);
    let svc = limited(&layer);
    let from = |peer: &str| {
        let mut req = Request::new(());
        let info = ConnectionInfo::new(peer.parse().unwrap(), "127.0.0.1:80".parse().unwrap());
        req.extensions_mut().insert(info);
        req
    };
    send(&svc, from("10.0.0.1:4000")).await.unwrap();
    // Same IP, other port: same client.
    assert!(send(&svc, from("10.0.0.1:4001")).await.is_err());
    send(&svc, from("10.0.0.2:4000")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn peer_identity_keys_on_the_verified_peer_and_anonymous_requests_share_a_bucket() {
    let layer = RateLimitLayer::new(RateLimitConfig::per_second(1.0))
        .unwrap()
        .keyed_by(PeerIdentityKey);
    let svc = limited(&layer);
    let from = |spiffe_id: Option<&str>| {
        let mut req = Request::new(());
        if let Some(id) = spiffe_id {
            let identity = Identity::new(id).unwrap();
            req.extensions_mut().insert(PeerIdentity::new(identity));
        }
        req
    };
    let web = Some("spiffe://prod.example/ns/shop/sa/web");
    let batch = Some("spiffe://prod.example/ns/shop/sa/batch");
    send(&svc, from(web)).await.unwrap();
    let err = send(&svc, from(web)).await.unwrap_err();
    assert_eq!(retry_after(err), Duration::from_secs(1));
    send(&svc, from(batch)).await.unwrap();
    // No identity (plaintext): one shared bucket, separate from every peer's.
    send(&svc, from(None)).await.unwrap();
    assert!(send(&svc, from(None)).await.is_err());
    advance(Duration::from_secs(1)).await;
    send(&svc, from(web)).await.unwrap();
    send(&svc, from(None)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn closures_extract_keys_from_extensions() {
    #[derive(Clone)]
    struct Tenant(&'static str);
    let layer = RateLimitLayer::new(RateLimitConfig::per_second(1.0))
        .unwrap()
        .keyed_by(|_: &HeaderMap, ext: &Extensions| ext.get::<Tenant>().map(|t| t.0));
    let svc = limited(&layer);
    let as_tenant = |name| {
        let mut req = Request::new(());
        req.extensions_mut().insert(Tenant(name));
        req
    };
    send(&svc, as_tenant("a")).await.unwrap();
    assert!(send(&svc, as_tenant("a")).await.is_err());
    send(&svc, as_tenant("b")).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_key_map_is_bounded_and_drops_refilled_buckets_first() {
    let svc = limited(&tenant_layer(
        RateLimitConfig::per_second(1.0).burst(1).max_keys(3),
    ));
    for key in ["a", "b", "c"] {
        send(&svc, with_key(key)).await.unwrap();
        advance(Duration::from_millis(1)).await; // a distinct last use for each
    }
    assert_eq!(svc.tracked_keys(), 3);

    // Every bucket is still refilling: the least recently used ("a") is dropped for "d".
    advance(Duration::from_millis(10)).await;
    send(&svc, with_key("b")).await.unwrap_err();
    send(&svc, with_key("d")).await.unwrap();
    assert_eq!(svc.tracked_keys(), 3);
    // "a" lost its state: it starts again with a full bucket (lenient, never stricter).
    send(&svc, with_key("a")).await.unwrap();
    assert_eq!(svc.tracked_keys(), 3);

    // After a full refill every bucket is equivalent to a new one and is swept at once.
    advance(Duration::from_secs(2)).await;
    send(&svc, with_key("e")).await.unwrap();
    assert_eq!(svc.tracked_keys(), 1);
    // The limit still holds for the key just admitted.
    assert!(send(&svc, with_key("e")).await.is_err());
}

#[test]
fn invalid_config_names_the_key() {
    let err = RateLimitLayer::new(RateLimitConfig::per_second(0.0)).unwrap_err();
    assert_eq!(err.key(), "per_second");
    let err = RateLimitLayer::new(RateLimitConfig::per_second(1.0).burst(0)).unwrap_err();
    assert_eq!(err.key(), "burst");
    let err = RateLimitLayer::new(RateLimitConfig::per_second(1.0).max_keys(0)).unwrap_err();
    assert_eq!(err.key(), "max_keys");
}
