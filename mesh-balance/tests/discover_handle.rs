//! StaticDiscover, DiscoverHandle and SnapshotDiffer at the poll level.

use std::pin::Pin;
use std::task::Poll;

use futures_core::Stream;
use mesh_balance::discover::{DiscoverHandle, HandleDiscover, SnapshotDiffer, StaticDiscover};
use mesh_core::{Endpoint, EndpointKey};
use tokio_test::{assert_pending, assert_ready, task};
use tower::discover::Change;

fn ep(last: u8) -> Endpoint {
    Endpoint::new(format!("10.0.0.{last}:80").parse().unwrap())
}

fn weighted(last: u8, weight: u32) -> Endpoint {
    Endpoint::builder(format!("10.0.0.{last}:80").parse().unwrap())
        .weight(weight)
        .build()
        .unwrap()
}

/// Describes a change as text, for compact assertions.
fn show(change: &Change<EndpointKey, Endpoint>) -> String {
    match change {
        Change::Insert(key, ep) => {
            assert_eq!(*key, ep.key());
            format!("+{key}/w{}", ep.weight().get())
        }
        Change::Remove(key) => format!("-{key}"),
    }
}

/// Drains every change that is ready now; asserts the stream then stays pending.
fn drain(stream: &mut task::Spawn<HandleDiscover>) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        match stream.enter(|cx, s| Pin::new(s.get_mut()).poll_next(cx)) {
            Poll::Ready(Some(Ok(change))) => out.push(show(&change)),
            Poll::Ready(None) => panic!("the stream ended"),
            Poll::Pending => return out,
        }
    }
}

#[test]
fn static_inserts_once_then_pends_forever() {
    let mut discover = task::spawn(StaticDiscover::new([ep(2), ep(1), weighted(2, 3)]));
    let mut seen = Vec::new();
    for _ in 0..2 {
        let change = assert_ready!(discover.enter(|cx, s| Pin::new(s.get_mut()).poll_next(cx)));
        seen.push(show(&change.unwrap().unwrap()));
    }
    // Key order; the later duplicate of 10.0.0.2 wins.
    assert_eq!(seen, ["+10.0.0.1:80/w1", "+10.0.0.2:80/w3"]);
    for _ in 0..3 {
        assert_pending!(discover.enter(|cx, s| Pin::new(s.get_mut()).poll_next(cx)));
    }
    let collected: StaticDiscover = [ep(1)].into_iter().collect();
    assert!(format!("{collected:?}").contains("StaticDiscover"));
}

#[test]
fn handle_updates_become_minimal_changes() {
    let handle = DiscoverHandle::new();
    handle.set([ep(1), ep(2)]);
    let mut stream = task::spawn(handle.discover());
    assert_eq!(drain(&mut stream), ["+10.0.0.1:80/w1", "+10.0.0.2:80/w1"]);

    // Replace everything: inserts first, then removes, so the set is never empty.
    handle.set([ep(3), ep(4)]);
    assert!(stream.is_woken());
    assert_eq!(
        drain(&mut stream),
        [
            "+10.0.0.3:80/w1",
            "+10.0.0.4:80/w1",
            "-10.0.0.1:80",
            "-10.0.0.2:80"
        ]
    );

    // A changed endpoint is one Insert; an identical one nothing; removals of absent keys nothing.
    assert_eq!(handle.insert(weighted(3, 4)), Some(ep(3)));
    assert_eq!(drain(&mut stream), ["+10.0.0.3:80/w4"]);
    handle.insert(weighted(3, 4));
    handle.set([weighted(3, 4), ep(4)]);
    assert_eq!(handle.remove(&ep(9).key()), None);
    assert!(!stream.is_woken());
    assert!(drain(&mut stream).is_empty());

    assert_eq!(handle.remove(&ep(4).key()), Some(ep(4)));
    assert_eq!(drain(&mut stream), ["-10.0.0.4:80"]);
    assert_eq!(handle.endpoints(), vec![weighted(3, 4)]);
}

#[test]
fn updates_between_polls_coalesce_to_the_net_difference() {
    let handle = DiscoverHandle::new();
    let mut stream = task::spawn(handle.discover());
    assert!(drain(&mut stream).is_empty());
    handle.insert(ep(1));
    handle.insert(ep(2));
    handle.remove(&ep(1).key());
    handle.insert(weighted(2, 2));
    // 10.0.0.1 came and went unseen; 10.0.0.2 appears once with its final weight.
    assert_eq!(drain(&mut stream), ["+10.0.0.2:80/w2"]);
}

#[test]
fn clones_share_the_set_and_every_stream_starts_from_it() {
    let handle = DiscoverHandle::new();
    let other = handle.clone();
    let mut first = task::spawn(handle.discover());
    assert!(drain(&mut first).is_empty());
    other.insert(ep(1));
    assert_eq!(drain(&mut first), ["+10.0.0.1:80/w1"]);
    let mut late = task::spawn(handle.discover());
    assert_eq!(drain(&mut late), ["+10.0.0.1:80/w1"]);
    let from_iter: DiscoverHandle = [ep(5)].into_iter().collect();
    assert_eq!(from_iter.endpoints(), vec![ep(5)]);
}

#[test]
fn dropping_every_handle_keeps_the_last_set() {
    let handle = DiscoverHandle::new();
    handle.set([ep(1)]);
    let mut stream = task::spawn(handle.discover());
    assert_eq!(drain(&mut stream), ["+10.0.0.1:80/w1"]);
    let clone = handle.clone();
    drop(handle);
    clone.insert(ep(2));
    assert_eq!(drain(&mut stream), ["+10.0.0.2:80/w1"]);
    drop(clone);
    // No removals, no end of stream: pending for good.
    for _ in 0..3 {
        assert!(drain(&mut stream).is_empty());
    }
}

#[test]
fn differ_orders_and_deduplicates() {
    let mut differ = SnapshotDiffer::new();
    assert_eq!(differ.update([ep(2), ep(1), weighted(1, 2)]), 2);
    assert_eq!(differ.len(), 2);
    assert_eq!(differ.get(&ep(1).key()), Some(&weighted(1, 2)));
    let first: Vec<_> = std::iter::from_fn(|| differ.next_change())
        .map(|c| show(&c))
        .collect();
    assert_eq!(first, ["+10.0.0.1:80/w2", "+10.0.0.2:80/w1"]);
    assert_eq!(differ.update([weighted(1, 2), ep(2)]), 0);
    assert!(!differ.has_pending());

    // Queued, not coalesced: applying every change in order reaches the newest snapshot.
    differ.update([ep(3)]);
    differ.update([ep(3), ep(4)]);
    differ.insert(ep(5));
    differ.remove(&ep(3).key());
    differ.remove(&ep(3).key());
    let queued: Vec<_> = std::iter::from_fn(|| differ.next_change())
        .map(|c| show(&c))
        .collect();
    assert_eq!(
        queued,
        [
            "+10.0.0.3:80/w1",
            "-10.0.0.1:80",
            "-10.0.0.2:80",
            "+10.0.0.4:80/w1",
            "+10.0.0.5:80/w1",
            "-10.0.0.3:80",
        ]
    );
    let left: Vec<_> = differ.endpoints().cloned().collect();
    assert_eq!(left, vec![ep(4), ep(5)]);
    assert!(!differ.is_empty());
}
