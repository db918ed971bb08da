//! Circuit breaker: failures that say nothing about the service (a client's malformed request
//! body, a saturated local connection pool) are not counted.

use http::{Request, Response};
use mesh_core::BoxError;
use mesh_core::error::{BadRequest, PoolExhausted, RequestBodyError, UpstreamError};
use mesh_retry::breaker::{BreakerConfig, BreakerState, CircuitBreakerLayer};
use tokio_test::assert_ready_ok;
use tower_test::mock;

type Req = Request<String>;
type Res = Response<String>;

async fn state_after_errors(errors: fn() -> BoxError) -> BreakerState {
    let layer = CircuitBreakerLayer::new(BreakerConfig::new().consecutive_failures(2)).unwrap();
    let (mut svc, mut backend) = mock::spawn_layer::<Req, Res, _>(layer);
    let breaker = svc.get_ref().handle().clone();
    for _ in 0..5 {
        if breaker.state() != BreakerState::Closed {
            break;
        }
        assert_ready_ok!(svc.poll_ready());
        let future = svc.call(Request::new(String::new()));
        let (_, reply) = backend.next_request().await.unwrap();
        reply.send_error(errors());
        assert!(future.await.is_err());
    }
    breaker.state()
}

#[tokio::test(start_paused = true)]
async fn bad_requests_and_pool_exhaustion_do_not_trip() {
    let bad_request = || {
        BadRequest::new(UpstreamError::new(RequestBodyError::new(
            "invalid chunk size",
        )))
        .into()
    };
    assert_eq!(state_after_errors(bad_request).await, BreakerState::Closed);
    let exhausted = || PoolExhausted::new().into();
    assert_eq!(state_after_errors(exhausted).await, BreakerState::Closed);
    // The control: upstream failures trip it.
    let upstream = || UpstreamError::new("connection reset").into();
    assert_eq!(state_after_errors(upstream).await, BreakerState::Open);
}
