//! Failures that say nothing about the endpoint (a client's malformed request body, a saturated
//! local connection pool) do not eject it.

mod support;

use mesh_balance::BalanceConfig;
use mesh_core::BoxError;
use mesh_core::error::{BadRequest, PoolExhausted, RequestBodyError, UpstreamError};
use support::*;

fn bad_request() -> BoxError {
    // As mesh-core's client reports a request body that broke while it was forwarded.
    BadRequest::new(UpstreamError::new(RequestBodyError::new(
        "invalid chunk size",
    )))
    .into()
}

fn pool_exhausted() -> BoxError {
    PoolExhausted::new().into()
}

fn upstream() -> BoxError {
    UpstreamError::new("connection reset").into()
}

/// `n` requests one after the other, failures included.
async fn send_all(balance: &mut TestBalance, n: usize) {
    for _ in 0..n {
        let _ = send(balance).await;
    }
}

#[tokio::test(start_paused = true)]
async fn bad_requests_and_pool_exhaustion_do_not_eject() {
    for (seed, failure) in [(21, bad_request as fn() -> BoxError), (22, pool_exhausted)] {
        let (mut balance, _d, fakes) = balancer(4, BalanceConfig::default().seed(seed));
        *fakes[1].fail_with.lock().unwrap() = Some(failure);
        send_all(&mut balance, 200).await;
        assert_eq!(balance.status().ejected, 0, "{}", failure());
        assert!(
            fakes[1].hits() > 10,
            "still in rotation: {}",
            fakes[1].hits()
        );
    }

    // The control: the same failures as upstream errors eject within five.
    let (mut balance, _d, fakes) = balancer(4, BalanceConfig::default().seed(23));
    *fakes[1].fail_with.lock().unwrap() = Some(upstream);
    send_all(&mut balance, 200).await;
    assert_eq!(balance.status().ejected, 1);
    assert_eq!(fakes[1].hits(), 5);
}
