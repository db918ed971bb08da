//! The replay body behind retries: whatever the chunking, the cap and how far the first attempt
//! read before it was dropped, a replay (when still replayable) sends exactly the original bytes,
//! once, in order.
#![no_main]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::{Body, Frame};
use libfuzzer_sys::fuzz_target;
use mesh_retry::body::ReplayBody;

/// An in-memory body whose frames are always ready.
struct Chunks(VecDeque<Bytes>);

impl Body for Chunks {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(|chunk| Ok(Frame::data(chunk))))
    }

    fn is_end_stream(&self) -> bool {
        self.0.is_empty()
    }
}

/// Reads up to `frames` data frames (all with `usize::MAX`); every body here is always ready.
fn read<B: Body<Data = Bytes> + Unpin>(body: &mut B, frames: usize) -> Vec<u8>
where
    B::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    for _ in 0..frames {
        match Pin::new(&mut *body).poll_frame(&mut cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Ok(data) = frame.into_data() {
                    out.extend_from_slice(&data);
                }
            }
            Poll::Ready(None) => break,
            Poll::Ready(Some(Err(e))) => panic!("in-memory body failed: {e:?}"),
            Poll::Pending => panic!("an in-memory body is always ready"),
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [cap, first_reads, ref rest @ ..] = *data else {
        return;
    };
    // The rest, cut into chunks at every 0xff byte.
    let chunks: VecDeque<Bytes> = rest
        .split(|&b| b == 0xff)
        .map(Bytes::copy_from_slice)
        .collect();
    let whole: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    let mut first = ReplayBody::new(Chunks(chunks), usize::from(cap) * 4);
    let got = read(&mut first, usize::from(first_reads));
    assert!(whole.starts_with(&got));
    if let Some(mut retry) = first.replay() {
        drop(first);
        assert_eq!(read(&mut retry, usize::MAX), whole);
    }
});
