//! The balancer over an endpoint whose HTTP/1.1 pool is held by responses nobody reads: requests
//! fail with `PoolExhausted` after the client's pool wait, not with `NoEndpoints` after the
//! balancer's fail-fast time, and the endpoint is not ejected.
//!
//! Paused clock, in-memory connections (a hyper server on the other end of a `tokio::io::duplex`).

use std::time::Duration;

use http::Request;
use mesh_balance::discover::StaticDiscover;
use mesh_balance::{Balance, BalanceConfig};
use mesh_core::client::{ClientConfig, HttpClient};
use mesh_core::error::{NoEndpoints, PoolExhausted};
use mesh_core::{Body, Endpoint};
use mesh_test::duplex::DuplexConnector;
use tokio::time::Instant;
use tower::ServiceExt;

const POOL_WAIT: Duration = Duration::from_millis(500);

fn get(path: &str) -> Request<Body> {
    Request::get(path).body(Body::empty()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_saturated_pool_is_pool_exhausted_not_no_endpoints() {
    let endpoint = Endpoint::new("127.0.0.1:9".parse().unwrap());
    let make = |ep: &Endpoint| {
        let config = ClientConfig::default()
            .max_connections(2)
            .pool_wait_timeout(POOL_WAIT);
        HttpClient::<Body>::new(ep.clone(), DuplexConnector, config)
    };
    let config = BalanceConfig::default().seed(7);
    let fail_fast = config.get_fail_fast_after();
    assert!(POOL_WAIT < fail_fast);
    let balance = Balance::new(StaticDiscover::new([endpoint]), make, config).unwrap();

    // Two clients that never read their responses hold both connections.
    let _held = [
        balance.clone().oneshot(get("/hold")).await.unwrap(),
        balance.clone().oneshot(get("/hold")).await.unwrap(),
    ];

    // The next request waits for the pool, then fails as saturated, not as missing.
    let start = Instant::now();
    let error = balance.clone().oneshot(get("/")).await.unwrap_err();
    assert!(error.is::<PoolExhausted>(), "{error}");
    assert!(!error.is::<NoEndpoints>());
    assert_eq!(start.elapsed(), POOL_WAIT);

    // While it stays saturated, requests fail at once, and the endpoint is not ejected.
    for _ in 0..10 {
        let error = balance.clone().oneshot(get("/")).await.unwrap_err();
        assert!(error.is::<PoolExhausted>(), "{error}");
    }
    assert_eq!(start.elapsed(), POOL_WAIT);
    assert_eq!(balance.status().ejected, 0);
    assert_eq!(balance.status().endpoints, 1);
}
