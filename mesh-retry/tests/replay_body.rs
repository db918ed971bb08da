//! The replay body: every reader sees every byte exactly once, in order, then the trailers
//! (linkerd2 issue 15649 is the bug class), and size hints stay exact.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use mesh_retry::body::{ReplayBody, ReplayStatus};
use proptest::prelude::*;

/// A body yielding given frames, `Pending` before every other frame, with an exact size hint.
#[derive(Debug)]
struct Script {
    frames: VecDeque<Frame<Bytes>>,
    pending_next: bool,
    fail_at_end: bool,
}

fn script(chunks: &[Vec<u8>], trailers: Option<&HeaderMap>) -> Script {
    let mut frames: VecDeque<_> = chunks
        .iter()
        .map(|c| Frame::data(Bytes::copy_from_slice(c)))
        .collect();
    if let Some(t) = trailers {
        frames.push_back(Frame::trailers(t.clone()));
    }
    Script {
        frames,
        pending_next: true,
        fail_at_end: false,
    }
}

impl Body for Script {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        if self.pending_next {
            self.pending_next = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        self.pending_next = true;
        match self.frames.pop_front() {
            Some(frame) => Poll::Ready(Some(Ok(frame))),
            None if self.fail_at_end => {
                self.fail_at_end = false;
                Poll::Ready(Some(Err(std::io::Error::other("reset"))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && !self.fail_at_end
    }

    fn size_hint(&self) -> SizeHint {
        let n = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref().map(|d| d.len() as u64))
            .sum();
        SizeHint::with_exact(n)
    }
}

#[derive(Debug, Default, PartialEq)]
struct Read {
    data: Vec<u8>,
    trailers: Option<HeaderMap>,
    ended: bool,
}

/// Reads up to `frames` frames (all of them with `usize::MAX`), checking the size hint before
/// each one against what is left of `total`.
fn read(body: &mut ReplayBody<Script>, frames: usize, out: &mut Read, total: u64) {
    let mut cx = Context::from_waker(Waker::noop());
    let mut taken = 0;
    while taken < frames {
        let left = total - out.data.len() as u64;
        if out.trailers.is_none() {
            assert_eq!(body.size_hint().exact(), Some(left), "size hint");
        }
        match Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Pending => continue,
            Poll::Ready(None) => {
                out.ended = true;
                assert!(body.is_end_stream());
                return;
            }
            Poll::Ready(Some(Ok(frame))) => {
                taken += 1;
                match frame.into_data() {
                    Ok(data) => out.data.extend_from_slice(&data),
                    Err(frame) => {
                        assert!(out.trailers.is_none(), "trailers twice");
                        out.trailers = Some(frame.into_trailers().unwrap());
                    }
                }
            }
            Poll::Ready(Some(Err(error))) => panic!("unexpected error: {error}"),
        }
    }
}

fn trailers_map() -> HeaderMap {
    let mut map = HeaderMap::new();
    map.insert("grpc-status", "0".parse().unwrap());
    map.insert("x-checksum", "abc".parse().unwrap());
    map
}

proptest! {
    /// Attempts that each read a random number of frames and are dropped, then one that reads
    /// everything: the last one gets the whole body and the trailers, exactly once.
    #[test]
    fn every_attempt_sees_the_whole_body(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..12),
        with_trailers in any::<bool>(),
        partial_reads in prop::collection::vec(0usize..16, 0..4),
        cap in prop_oneof![Just(usize::MAX), 0usize..300],
    ) {
        let trailers = with_trailers.then(trailers_map);
        let expected: Vec<u8> = chunks.concat();
        let total = expected.len() as u64;
        let template = ReplayBody::new(script(&chunks, trailers.as_ref()), cap);
        let mut pulled_past_cap = false;
        for frames in partial_reads {
            let Some(mut attempt) = template.replay() else {
                prop_assert!(pulled_past_cap);
                break;
            };
            let mut out = Read::default();
            read(&mut attempt, frames, &mut out, total);
            prop_assert_eq!(&out.data[..], &expected[..out.data.len()]);
            pulled_past_cap |= out.data.len() > cap;
            drop(attempt);
        }
        match template.replay() {
            Some(mut last) => {
                let mut out = Read::default();
                read(&mut last, usize::MAX, &mut out, total);
                prop_assert_eq!(out.data, expected);
                prop_assert_eq!(out.trailers, trailers);
                prop_assert!(out.ended);
            }
            None => {
                let capped = matches!(template.status(), ReplayStatus::Capped { .. });
                prop_assert!(capped);
                prop_assert!(pulled_past_cap || total > cap as u64);
            }
        }
    }

    /// Two readers alive at once, interleaving their reads: both see the whole body once.
    #[test]
    fn interleaved_readers_each_see_the_whole_body(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..20), 0..10),
        with_trailers in any::<bool>(),
        schedule in prop::collection::vec(any::<bool>(), 0..40),
    ) {
        let trailers = with_trailers.then(trailers_map);
        let expected: Vec<u8> = chunks.concat();
        let total = expected.len() as u64;
        let template = ReplayBody::new(script(&chunks, trailers.as_ref()), usize::MAX);
        let mut a = template.replay().unwrap();
        let mut b = template.replay().unwrap();
        let (mut out_a, mut out_b) = (Read::default(), Read::default());
        for pick_a in schedule {
            if pick_a {
                read(&mut a, 1, &mut out_a, total);
            } else {
                read(&mut b, 1, &mut out_b, total);
            }
        }
        read(&mut a, usize::MAX, &mut out_a, total);
        read(&mut b, usize::MAX, &mut out_b, total);
        for out in [out_a, out_b] {
            prop_assert_eq!(&out.data, &expected);
            prop_assert_eq!(&out.trailers, &trailers);
            prop_assert!(out.ended);
        }
    }
}

#[test]
fn empty_body_costs_nothing_and_ends_at_once() {
    let template = ReplayBody::new(script(&[], None), 10);
    let replay = template.replay().unwrap();
    assert!(replay.is_end_stream());
    assert_eq!(replay.size_hint().exact(), Some(0));
    assert_eq!(format!("{template:?}"), "ReplayBody { kind: \"empty\" }");
}

#[test]
fn capped_body_records_the_reason_and_refuses_replays() {
    let template = ReplayBody::new(script(&[b"12345".to_vec(), b"678".to_vec()], None), 6);
    let mut first = template.replay().unwrap();
    let mut out = Read::default();
    read(&mut first, usize::MAX, &mut out, 8);
    assert_eq!(out.data, b"12345678");
    assert_eq!(template.status(), ReplayStatus::Capped { cap: 6 });
    assert_eq!(template.status().as_str(), "capped");
    assert!(template.replay().is_none());
}

#[test]
fn a_reader_behind_a_capped_buffer_gets_an_error_not_a_gap() {
    let template = ReplayBody::new(script(&[b"12345".to_vec(), b"678".to_vec()], None), 6);
    let mut behind = template.replay().unwrap();
    let mut ahead = template.replay().unwrap();
    let mut out = Read::default();
    read(&mut ahead, usize::MAX, &mut out, 8);
    let mut cx = Context::from_waker(Waker::noop());
    let error = match Pin::new(&mut behind).poll_frame(&mut cx) {
        Poll::Ready(Some(Err(error))) => error,
        other => panic!("expected an error, got {other:?}"),
    };
    let replay = error
        .downcast_ref::<mesh_retry::body::ReplayError>()
        .unwrap();
    assert!(replay.is_capped());
}

#[test]
fn original_failure_is_reported_and_stops_replays() {
    let mut body = script(&[b"ab".to_vec()], None);
    body.fail_at_end = true;
    let template = ReplayBody::new(body, 100);
    let mut first = template.replay().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    let mut saw_error = false;
    for _ in 0..10 {
        if let Poll::Ready(Some(Err(error))) = Pin::new(&mut first).poll_frame(&mut cx) {
            assert_eq!(error.to_string(), "reset");
            saw_error = true;
            break;
        }
    }
    assert!(saw_error);
    assert_eq!(template.status(), ReplayStatus::BodyFailed);
    assert!(template.replay().is_none());
}

#[test]
fn passthrough_is_never_replayable() {
    let body = ReplayBody::passthrough(script(&[b"x".to_vec()], None));
    assert_eq!(body.status(), ReplayStatus::Passthrough);
    assert!(body.replay().is_none());
}

/// A body fed through a channel: like a network body, it remembers only its last poller's waker.
#[derive(Debug)]
struct Channel(tokio::sync::mpsc::UnboundedReceiver<Bytes>);

impl Body for Channel {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|c| c.map(|c| Ok(Frame::data(c))))
    }
}

#[test]
fn every_reader_waiting_on_the_original_is_woken() {
    use http_body_util::BodyExt;
    use tokio_test::{assert_pending, assert_ready, task};

    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let template = ReplayBody::new(Channel(rx), 1024);
    let mut a = template.replay().unwrap();
    let mut b = template.replay().unwrap();
    {
        let mut wait_a = task::spawn(a.frame());
        let mut wait_b = task::spawn(b.frame());
        assert_pending!(wait_a.poll());
        assert_pending!(wait_b.poll());
        tx.send(Bytes::from_static(b"x")).unwrap();
        assert!(wait_b.is_woken(), "the last poller is woken by the body");
        let frame = assert_ready!(wait_b.poll()).unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "x");
        assert!(
            wait_a.is_woken(),
            "the other waiter is woken by the replay body"
        );
        let frame = assert_ready!(wait_a.poll()).unwrap().unwrap();
        assert_eq!(frame.into_data().unwrap(), "x");
    }
    // A waits, then B polls last and is dropped (a cancelled attempt): A must not hang.
    let mut wait_a = task::spawn(a.frame());
    assert_pending!(wait_a.poll());
    {
        let mut wait_b = task::spawn(b.frame());
        assert_pending!(wait_b.poll());
    }
    drop(b);
    assert!(wait_a.is_woken(), "woken when the last poller went away");
    assert_pending!(wait_a.poll());
    tx.send(Bytes::from_static(b"y")).unwrap();
    assert!(wait_a.is_woken());
    let frame = assert_ready!(wait_a.poll()).unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "y");
}
