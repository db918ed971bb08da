//! The per-endpoint breakers of the client stack (`mesh_examples::stack`): a mesh-retry
//! `BreakerRegistry` in mesh-balance's endpoint factory, as the stack builds it. An endpoint that
//! leaves discovery takes its breaker with it; one that stays keeps its breaker across polls.

use std::convert::Infallible;
use std::net::SocketAddr;

use http::{Request, Response};
use mesh_balance::discover::DiscoverHandle;
use mesh_balance::{Balance, BalanceConfig};
use mesh_core::Endpoint;
use mesh_core::classify::MeshClassifier;
use mesh_retry::breaker::{BreakerConfig, BreakerMode, BreakerRegistry, BreakerState};
use tower::{Service, ServiceExt, service_fn};

fn addr(n: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, n], 4143))
}

/// One request through `balance` (which applies pending discovery changes first).
async fn send<S>(balance: &mut S)
where
    S: Service<Request<()>>,
    S::Error: std::fmt::Debug,
{
    balance
        .ready()
        .await
        .unwrap()
        .call(Request::new(()))
        .await
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_removed_endpoint_takes_its_breaker_out_of_the_registry() {
    let registry = BreakerRegistry::new(
        BreakerConfig::new()
            .consecutive_failures(1)
            .mode(BreakerMode::Gate)
            .name("orders")
            .seed(1),
    )
    .unwrap();
    let breakers = registry.clone();
    // The stack's factory, with a stub in place of the HTTP client.
    let make = move |ep: &Endpoint| {
        let ok = service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) });
        mesh_retry::breaker::CircuitBreaker::with_handle(
            ok,
            breakers.get(ep.addr()),
            MeshClassifier::new(),
        )
    };
    let discovery = DiscoverHandle::new();
    discovery.set([Endpoint::new(addr(1)), Endpoint::new(addr(2))]);
    let mut balance =
        Balance::new(discovery.discover(), make, BalanceConfig::default().seed(3)).unwrap();

    send(&mut balance).await;
    let mut live = registry.addresses();
    live.sort();
    assert_eq!(live, [addr(1), addr(2)]);
    // Endpoint 2's breaker opens; the other stays closed.
    registry
        .get(addr(2))
        .try_acquire()
        .unwrap()
        .record_error(&std::io::Error::other("connection reset"));
    assert_eq!(registry.find(addr(2)).unwrap().state(), BreakerState::Open);
    assert_eq!(
        registry.find(addr(1)).unwrap().state(),
        BreakerState::Closed
    );

    // Discovery drops endpoint 2: the balancer drops its service, and the breaker goes with it.
    discovery.remove(&Endpoint::new(addr(2)).key());
    send(&mut balance).await;
    assert_eq!(registry.addresses(), [addr(1)]);
    assert!(registry.find(addr(2)).is_none());

    // It comes back: a fresh breaker, closed.
    discovery.insert(Endpoint::new(addr(2)));
    send(&mut balance).await;
    assert_eq!(registry.len(), 2);
    assert_eq!(
        registry.find(addr(2)).unwrap().state(),
        BreakerState::Closed
    );
}
