//! Consistent hashing through the balancer: stickiness, spread, ≈ 1/N movement on removal,
//! bounded load, ejection and readiness, the keyless fallback, and every key kind.

mod support;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicIsize;
use std::sync::atomic::Ordering::SeqCst;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{HeaderName, Request};
use http_body_util::BodyExt;
use mesh_balance::hash::{HashConfig, HashKey};
use mesh_balance::{Balance, BalanceConfig, LocalityConfig};
use mesh_core::Locality;
use support::*;
use tower::ServiceExt;
use tower_service::Service;

fn by_user() -> HashKey {
    HashKey::header(HeaderName::from_static("x-user"))
}

fn sticky(key: HashKey, seed: u64) -> BalanceConfig {
    BalanceConfig::default()
        .seed(seed)
        .hash(HashConfig::new(key))
}

fn user(value: &str) -> Request<()> {
    Request::builder().header("x-user", value).body(()).unwrap()
}

/// Sends `req` and reads the body to its end; the index of the fake that served it.
async fn served(balance: &mut TestBalance, fakes: &[Arc<Behaviour>], req: Request<()>) -> usize {
    let before = hits(fakes);
    let res = balance.ready().await.unwrap().call(req).await.unwrap();
    res.into_body().collect().await.unwrap();
    let after = hits(fakes);
    let mut served = (0..fakes.len()).filter(|&i| after[i] != before[i]);
    let index = served.next().expect("some endpoint served the request");
    assert_eq!(served.next(), None, "exactly one endpoint served it");
    index
}

/// Where each of `keys` user keys goes, one request each.
async fn placement(balance: &mut TestBalance, fakes: &[Arc<Behaviour>], keys: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(keys);
    for k in 0..keys {
        out.push(served(balance, fakes, user(&format!("user-{k}"))).await);
    }
    out
}

fn instant(fakes: &[Arc<Behaviour>]) {
    for fake in fakes {
        fake.set_latency(Duration::ZERO);
    }
}

#[tokio::test(start_paused = true)]
async fn the_same_key_goes_to_the_same_endpoint_and_keys_spread() {
    let (mut balance, _d, fakes) = balancer(5, sticky(by_user(), 1));
    let first = placement(&mut balance, &fakes, 500).await;
    for round in 0..3 {
        let again = placement(&mut balance, &fakes, 500).await;
        assert_eq!(again, first, "round {round}: every key kept its endpoint");
    }
    for (i, share) in (0..5).map(|i| (i, first.iter().filter(|&&e| e == i).count())) {
        // 160 points per endpoint: each share is within a few percent of 1/5 (100 keys).
        assert!(
            (60..=140).contains(&share),
            "endpoint {i} owns {share} of 500 keys"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn removing_one_of_ten_endpoints_moves_only_its_keys() {
    const KEYS: usize = 10_000;
    let (mut balance, discovery, fakes) = balancer(10, sticky(by_user(), 2));
    instant(&fakes);
    let before = placement(&mut balance, &fakes, KEYS).await;
    let victim = before[0];
    discovery.remove(&mesh_core::Endpoint::new(addr(victim)));
    let after = placement(&mut balance, &fakes, KEYS).await;
    let mut moved = 0;
    for (k, (&b, &a)) in before.iter().zip(&after).enumerate() {
        if b == victim {
            assert_ne!(a, victim, "key {k} still goes to the removed endpoint");
            moved += 1;
        } else {
            assert_eq!(a, b, "key {k} moved off a surviving endpoint");
        }
    }
    let share = moved as f64 / KEYS as f64;
    assert!(
        (0.05..=0.15).contains(&share),
        "{share:.3} of keys moved, expected ≈ 1/10"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hot_key_overflows_past_its_bounded_load_and_comes_back() {
    let (mut balance, _d, fakes) = balancer(4, sticky(by_user(), 3));
    let home = served(&mut balance, &fakes, user("hot")).await;
    // Eight hot requests in flight at once (futures held, not polled: each counts as pending
    // from `call`). Capacity with c = 1.25 over 4 endpoints is ⌈1.25 × (in flight + 1) ÷ 4⌉.
    let before = hits(&fakes);
    let mut in_flight = Vec::new();
    for _ in 0..8 {
        balance.ready().await.unwrap();
        in_flight.push(balance.call(user("hot")));
    }
    let placed: Vec<usize> = hits(&fakes)
        .iter()
        .zip(&before)
        .map(|(a, b)| a - b)
        .collect();
    // In flight before each: 0 → cap 1: home; 1, 2 → cap 1: home full, the next two clockwise;
    // 3, 4, 5 → cap 2: home, then the next two; 6, 7 → cap 3: home, then the next.
    assert_eq!(placed[home], 3, "home takes its capacity: {placed:?}");
    let mut sorted = placed.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [0, 2, 3, 3], "overflow walks clockwise: {placed:?}");
    // In flight ended: the key is home again.
    drop(in_flight);
    for _ in 0..5 {
        assert_eq!(served(&mut balance, &fakes, user("hot")).await, home);
    }
}

#[tokio::test(start_paused = true)]
async fn an_ejected_endpoints_keys_go_elsewhere_and_come_back_after_its_probe() {
    let (mut balance, _d, fakes) = balancer(4, sticky(by_user(), 4));
    let home = served(&mut balance, &fakes, user("alice")).await;
    fakes[home].set_status(503);
    // Five consecutive failures eject (the default), all five at home.
    for _ in 0..5 {
        assert_eq!(served(&mut balance, &fakes, user("alice")).await, home);
    }
    assert_eq!(balance.status().ejected, 1);
    let elsewhere = served(&mut balance, &fakes, user("alice")).await;
    assert_ne!(elsewhere, home);
    for _ in 0..20 {
        assert_eq!(
            served(&mut balance, &fakes, user("alice")).await,
            elsewhere,
            "sticky to the next endpoint clockwise while ejected"
        );
    }
    // Recovered; after the ejection (30 s ± 10 %) the key's next request is the single probe.
    fakes[home].set_status(200);
    tokio::time::sleep(Duration::from_secs(34)).await;
    for _ in 0..10 {
        assert_eq!(served(&mut balance, &fakes, user("alice")).await, home);
    }
    assert_eq!(balance.status().ejected, 0);
}

#[tokio::test(start_paused = true)]
async fn an_unready_home_is_walked_past_without_waiting() {
    let (mut balance, _d, fakes) = balancer(4, sticky(by_user(), 5));
    let home = served(&mut balance, &fakes, user("bob")).await;
    fakes[home].set_ready(false);
    let other = served(&mut balance, &fakes, user("bob")).await;
    assert_ne!(other, home);
    assert_eq!(balance.status().ready, 3);
    fakes[home].set_ready(true);
    assert_eq!(served(&mut balance, &fakes, user("bob")).await, home);
}

#[tokio::test(start_paused = true)]
async fn requests_without_a_key_are_balanced_by_p2c() {
    let (mut balance, _d, fakes) = balancer(4, sticky(by_user(), 6));
    // Empty counts as absent, like a missing header.
    for n in 0..400 {
        let req = if n % 2 == 0 {
            Request::new(())
        } else {
            user("")
        };
        served(&mut balance, &fakes, req).await;
    }
    for (i, h) in hits(&fakes).into_iter().enumerate() {
        assert!((60..=140).contains(&h), "endpoint {i}: {h} of 400");
    }
    // P2C still avoids a slow endpoint for keyless requests.
    fakes[0].set_latency(Duration::from_millis(200));
    let before = fakes[0].hits();
    send_many(&mut balance, 300).await;
    assert!(
        fakes[0].hits() - before < 15,
        "slow endpoint kept its share"
    );
}

/// Builds request number `n` carrying key `k`.
type KeyedRequest = fn(usize, usize) -> Request<()>;

#[tokio::test(start_paused = true)]
async fn header_cookie_and_path_keys() {
    let cases: [(HashKey, KeyedRequest); 3] = [
        (by_user(), |k, n| {
            Request::builder()
                .header("x-user", format!("u{k}"))
                .header("x-noise", n)
                .body(())
                .unwrap()
        }),
        (HashKey::cookie("session"), |k, n| {
            Request::builder()
                .header("cookie", format!("a={n}; session=\"s{k}\""))
                .header("cookie", "theme=dark")
                .body(())
                .unwrap()
        }),
        (HashKey::path(), |k, n| {
            Request::builder()
                .uri(format!("/users/{k}?page={n}"))
                .body(())
                .unwrap()
        }),
    ];
    for (case, (key, request)) in cases.into_iter().enumerate() {
        let (mut balance, _d, fakes) = balancer(4, sticky(key, 7 + case as u64));
        let mut homes = HashSet::new();
        for k in 0..40 {
            let home = served(&mut balance, &fakes, request(k, 0)).await;
            for n in 1..4 {
                assert_eq!(
                    served(&mut balance, &fakes, request(k, n)).await,
                    home,
                    "case {case}, key {k}: only the key decides"
                );
            }
            homes.insert(home);
        }
        assert_eq!(homes.len(), 4, "case {case}: 40 keys reach every endpoint");
    }
}

#[tokio::test(start_paused = true)]
async fn hashing_stays_in_the_local_tier() {
    let fleet = Fleet::default();
    let (handle, discover) = discovery();
    let mut fakes = Vec::new();
    for n in 0..6 {
        let zone = if n < 3 { "z1" } else { "z2" };
        let (ep, b) = fleet.endpoint(n, 1, Locality::new("r1", zone, ""));
        handle.insert(&ep);
        fakes.push(b);
    }
    let config = sticky(by_user(), 8).locality(LocalityConfig::new(Locality::new("r1", "z1", "")));
    let mut balance = Balance::new(discover, fleet.make(), config).unwrap();
    let placed = placement(&mut balance, &fakes, 300).await;
    assert!(placed.iter().all(|&e| e < 3), "a key left the local zone");
    assert_eq!(placed.iter().collect::<HashSet<_>>().len(), 3);
    // The local zone down to one of three (below 70 %): keys of the survivor stay on it.
    fakes[1].set_ready(false);
    fakes[2].set_ready(false);
    let kept: Vec<usize> = (0..300).filter(|&k| placed[k] == 0).collect();
    for k in kept {
        let now = served(&mut balance, &fakes, user(&format!("user-{k}"))).await;
        assert!(now == 0 || now >= 3, "key {k} went to an unready endpoint");
    }
}

#[test]
fn a_load_factor_of_one_or_less_is_rejected() {
    let config = sticky(by_user(), 9);
    let bad = config
        .clone()
        .hash(HashConfig::new(by_user()).load_factor(1.0));
    assert_eq!(bad.validate().unwrap_err().key(), "hash.ring.load_factor");
    assert!(config.validate().is_ok());
}

/// An endpoint service whose readiness is a reservation: `poll_ready` takes one, `call` uses it,
/// dropping a reserved clone gives it back. Counts the reservations outstanding and panics on a
/// call without one.
struct Reserving {
    addr: SocketAddr,
    held: Arc<AtomicIsize>,
    reserved: bool,
}

impl Clone for Reserving {
    fn clone(&self) -> Self {
        Self {
            addr: self.addr,
            held: self.held.clone(),
            reserved: false,
        }
    }
}

impl Drop for Reserving {
    fn drop(&mut self) {
        if self.reserved {
            self.held.fetch_sub(1, SeqCst);
        }
    }
}

impl Service<Request<()>> for Reserving {
    type Response = http::Response<http_body_util::Full<bytes::Bytes>>;
    type Error = std::convert::Infallible;
    type Future = std::future::Ready<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !std::mem::replace(&mut self.reserved, true) {
            self.held.fetch_add(1, SeqCst);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        assert!(
            std::mem::replace(&mut self.reserved, false),
            "called without a reservation"
        );
        self.held.fetch_sub(1, SeqCst);
        let body = http_body_util::Full::new(bytes::Bytes::from(self.addr.to_string()));
        std::future::ready(Ok(http::Response::new(body)))
    }
}

#[tokio::test(start_paused = true)]
async fn a_reservation_moved_to_the_ring_endpoint_is_given_back() {
    let (handle, discover) = discovery();
    for n in 0..5 {
        handle.insert(&mesh_core::Endpoint::new(addr(n)));
    }
    let held = Arc::new(AtomicIsize::new(0));
    let make = {
        let held = held.clone();
        move |ep: &mesh_core::Endpoint| Reserving {
            addr: ep.addr(),
            held: held.clone(),
            reserved: false,
        }
    };
    let mut balance = Balance::new(discover, make, sticky(by_user(), 10)).unwrap();
    let mut homes = HashMap::new();
    for round in 0..3 {
        for k in 0..100 {
            let res = balance
                .ready()
                .await
                .unwrap()
                .call(user(&format!("user-{k}")))
                .await
                .unwrap();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let home = homes.entry(k).or_insert_with(|| body.clone());
            assert_eq!(*home, body, "round {round}, key {k}: sticky");
            // The set keeps at most one polled-ready service per endpoint (its ready cache);
            // a reservation not given back would pile up on top.
            let outstanding = held.load(SeqCst);
            assert!(
                (0..=5).contains(&outstanding),
                "{outstanding} reservations held"
            );
        }
    }
    assert_eq!(homes.values().collect::<HashSet<_>>().len(), 5);
    // A clone that reserved and is dropped gives its reservation back too.
    let mut clone = balance.clone();
    clone.ready().await.unwrap();
    let reserved = held.load(SeqCst);
    drop(clone);
    assert_eq!(held.load(SeqCst), reserved - 1);
}
