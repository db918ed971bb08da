//! Consistent hashing: stability under removal, weights, bounded load, key extraction.

use std::net::{Ipv4Addr, SocketAddr};

use http::Request;
use mesh_balance::hash::{HashKey, HashRing, LoadView, RingConfig, hash_bytes};
use mesh_core::{EndpointKey, Weight};
use proptest::prelude::*;

fn key(n: u32) -> EndpointKey {
    EndpointKey(SocketAddr::from((Ipv4Addr::from(0x0a00_0000 + n), 8080)))
}

fn equal(ids: &[u32]) -> Vec<(EndpointKey, Weight)> {
    ids.iter().map(|&n| (key(n), Weight::DEFAULT)).collect()
}

const KEYS: u64 = 20_000;

fn owner_keys(ring: &HashRing) -> Vec<EndpointKey> {
    (0..KEYS)
        .map(|k| {
            let index = ring.pick_unbounded(hash_bytes(&k.to_le_bytes())).unwrap();
            ring.key(index).unwrap()
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Removing one of N endpoints moves only its own keys, about 1/N of them.
    #[test]
    fn removal_moves_only_the_removed_endpoints_keys(
        ids in proptest::collection::btree_set(0u32..100_000, 2..40),
        victim in any::<proptest::sample::Index>(),
    ) {
        let ids: Vec<u32> = ids.into_iter().collect();
        let n = ids.len();
        let gone = key(ids[victim.index(n)]);
        let before = owner_keys(&HashRing::build(&equal(&ids)));
        let rest: Vec<u32> = ids.iter().copied().filter(|&i| key(i) != gone).collect();
        let after = owner_keys(&HashRing::build(&equal(&rest)));
        let mut moved = 0u64;
        for (b, a) in before.iter().zip(&after) {
            if *b == gone {
                moved += 1;
                prop_assert_ne!(*a, gone);
            } else {
                prop_assert_eq!(b, a, "a key moved off a surviving endpoint");
            }
        }
        // 160 points per endpoint put each share within ~8 % (one sigma) of 1/N.
        let share = moved as f64 / KEYS as f64;
        prop_assert!(share <= 1.5 / n as f64 + 0.01, "moved {share:.4} of keys with N = {n}");
    }

    /// Input order does not matter: every process agrees on where a key goes.
    #[test]
    fn order_independent(ids in proptest::collection::btree_set(0u32..1000, 1..20), seed in any::<u64>()) {
        let ids: Vec<u32> = ids.into_iter().collect();
        let mut shuffled = ids.clone();
        fastrand::Rng::with_seed(seed).shuffle(&mut shuffled);
        let a = owner_keys(&HashRing::build(&equal(&ids)));
        let b = owner_keys(&HashRing::build(&equal(&shuffled)));
        prop_assert_eq!(a, b);
    }
}

#[test]
fn weight_scales_the_share() {
    let endpoints = vec![
        (key(1), Weight::new(1).unwrap()),
        (key(2), Weight::new(3).unwrap()),
    ];
    let ring = HashRing::build(&endpoints);
    assert_eq!(ring.points(), 4 * 160);
    let heavy = owner_keys(&ring).iter().filter(|k| **k == key(2)).count() as f64 / KEYS as f64;
    assert!((0.65..0.85).contains(&heavy), "weight-3 share {heavy}");
}

#[test]
fn huge_weights_are_scaled_to_the_point_budget() {
    let endpoints = vec![
        (key(1), Weight::new(1_000_000).unwrap()),
        (key(2), Weight::new(1).unwrap()),
    ];
    let ring = HashRing::with_config(&endpoints, &RingConfig::default().max_points(10_000));
    assert!(ring.points() <= 10_001, "{}", ring.points());
    // The light endpoint keeps at least one point.
    assert!(owner_keys(&ring).contains(&key(1)));
    assert!((0..ring.len()).all(|i| ring.key(i).is_some()));
}

#[test]
fn bounded_load_caps_every_endpoint() {
    let n = 10usize;
    let ids: Vec<u32> = (0..n as u32).collect();
    let ring = HashRing::build(&equal(&ids));
    let mut loads = vec![0u64; n];
    // Worst case for stickiness: every request carries the same key.
    for placed in 0..1000u64 {
        let i = ring.pick(hash_bytes(b"hot"), &loads).unwrap();
        let cap = (1.25 * (placed + 1) as f64 / n as f64).ceil() as u64;
        assert!(loads[i] < cap, "endpoint {i} over capacity at {placed}");
        loads[i] += 1;
    }
    let max = *loads.iter().max().unwrap();
    assert!(max <= 125, "max load {max} with average 100");
    // The overflow walks clockwise: 1000 requests need at least 8 endpoints at 125 each.
    assert!(loads.iter().filter(|&&l| l > 0).count() >= 8, "{loads:?}");

    // Many distinct keys: no endpoint above ⌈1.25 × average⌉.
    let mut loads = vec![0u64; n];
    for k in 0..10_000u64 {
        let i = ring.pick(hash_bytes(&k.to_le_bytes()), &loads).unwrap();
        loads[i] += 1;
    }
    assert!(*loads.iter().max().unwrap() <= 1250, "{loads:?}");
}

#[test]
fn bounded_load_respects_weights_and_returns_home_when_drained() {
    let endpoints = vec![
        (key(1), Weight::new(1).unwrap()),
        (key(2), Weight::new(3).unwrap()),
    ];
    let ring = HashRing::build(&endpoints);
    let mut loads = vec![0u64; 2];
    for _ in 0..400 {
        let i = ring.pick(hash_bytes(b"hot"), &loads).unwrap();
        loads[i] += 1;
    }
    // Capacity follows weight: the light endpoint holds at most 1.25 × 1/4 of the load.
    assert!(loads[0] <= 125 && loads[1] >= 275, "{loads:?}");
    let home = ring.pick_unbounded(hash_bytes(b"hot")).unwrap();
    assert_eq!(ring.pick(hash_bytes(b"hot"), &[0u64, 0]), Some(home));
}

/// Loads with some endpoints ineligible, as a balancer reports ejected or unready ones.
struct Partly {
    loads: Vec<u64>,
    out: Vec<usize>,
}

impl LoadView for Partly {
    fn load(&self, index: usize) -> u64 {
        self.loads[index]
    }
    fn total(&self) -> u64 {
        self.loads.iter().sum()
    }
    fn eligible(&self, index: usize) -> bool {
        !self.out.contains(&index)
    }
    fn eligible_weight(&self) -> Option<u64> {
        Some((self.loads.len() - self.out.len()) as u64)
    }
}

#[test]
fn ineligible_endpoints_are_walked_past_and_share_no_capacity() {
    let ids: Vec<u32> = (0..5).collect();
    let ring = HashRing::build(&equal(&ids));
    let homes: Vec<usize> = (0..2000u64)
        .map(|k| ring.pick_unbounded(hash_bytes(&k.to_le_bytes())).unwrap())
        .collect();
    let gone = homes[0];
    let view = Partly {
        loads: vec![0; 5],
        out: vec![gone],
    };
    for (k, &home) in homes.iter().enumerate() {
        let now = ring
            .pick(hash_bytes(&(k as u64).to_le_bytes()), &view)
            .unwrap();
        if home == gone {
            assert_ne!(now, gone, "key {k} went to an ineligible endpoint");
        } else {
            assert_eq!(now, home, "key {k} moved although its endpoint is eligible");
        }
    }
    // Capacity is shared over the 4 eligible endpoints: 40 hot requests, at most ⌈1.25 × 40 / 4⌉
    // = 13 each (the total weight of 5 would allow only 10, and spread them wider).
    let mut view = view;
    for _ in 0..40 {
        let i = ring.pick(hash_bytes(b"hot"), &view).unwrap();
        assert_ne!(i, gone);
        view.loads[i] += 1;
    }
    assert!(view.loads.iter().all(|&l| l <= 13), "{:?}", view.loads);
    assert!(view.loads.iter().any(|&l| l > 10), "{:?}", view.loads);
    // Nothing eligible: nothing picked.
    view.out = (0..5).collect();
    assert_eq!(ring.pick(hash_bytes(b"hot"), &view), None);
}

#[test]
fn empty_ring_picks_nothing() {
    let ring = HashRing::build(&[]);
    assert!(ring.is_empty());
    assert_eq!(ring.pick_unbounded(42), None);
    assert_eq!(ring.pick(42, &Vec::<u64>::new()), None);
}

#[test]
fn hash_is_pinned() {
    // The hash must never change between releases: it decides where every sticky key lives.
    assert_eq!(hash_bytes(b"user-42"), 0xa395_32c7_ab05_1e8d);
    assert_eq!(hash_bytes(b""), 0xefd0_1f60_ba99_2926);
}

#[test]
fn keys_from_header_cookie_and_path() {
    let req = Request::builder()
        .uri("https://shop.example/cart/42?x=1")
        .header("x-user", "alice")
        .header("x-empty", "")
        .header("cookie", "a=1; theme=dark")
        .header("cookie", "session=\"abc\";other=2")
        .body(())
        .unwrap();
    assert_eq!(
        HashKey::header(http::HeaderName::from_static("x-user")).value(&req),
        Some(&b"alice"[..])
    );
    assert_eq!(
        HashKey::header(http::HeaderName::from_static("x-empty")).hash(&req),
        None
    );
    assert_eq!(HashKey::cookie("session").value(&req), Some(&b"abc"[..]));
    assert_eq!(HashKey::cookie("theme").value(&req), Some(&b"dark"[..]));
    assert_eq!(HashKey::cookie("them").value(&req), None);
    assert_eq!(HashKey::path().value(&req), Some(&b"/cart/42"[..]));
    assert_eq!(HashKey::path().hash(&req), Some(hash_bytes(b"/cart/42")));
}
