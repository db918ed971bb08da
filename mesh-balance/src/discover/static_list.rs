//! A fixed list of endpoints.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use mesh_core::{Endpoint, EndpointKey};
use tower::discover::Change;

use super::SnapshotDiffer;

/// Discovery from a fixed list: one `Insert` per endpoint, then pending forever.
///
/// Duplicate addresses collapse to one endpoint (the later one wins). The inserts come in key
/// order.
///
/// **The stream never ends.** After the last insert it returns `Poll::Pending` without registering
/// a waker, because nothing will ever change. It does not return `None`, since a balancer may read
/// end-of-stream as "discovery is gone" (tower's `Balance` keeps polling an ended stream, which a
/// stream need not support). Its error type is [`Infallible`].
///
/// ```
/// use mesh_balance::discover::StaticDiscover;
/// use mesh_core::Endpoint;
/// use tower::discover::{Change, Discover};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut discover = StaticDiscover::new([
///     Endpoint::new("10.0.0.1:80".parse().unwrap()),
///     Endpoint::new("10.0.0.2:80".parse().unwrap()),
/// ]);
/// let mut inserted = 0;
/// for _ in 0..2 {
///     let change = std::future::poll_fn(|cx| std::pin::Pin::new(&mut discover).poll_discover(cx)).await;
///     assert!(matches!(change, Some(Ok(Change::Insert(..)))));
///     inserted += 1;
/// }
/// assert_eq!(inserted, 2);
/// # }
/// ```
#[derive(Debug)]
pub struct StaticDiscover {
    differ: SnapshotDiffer,
}

impl StaticDiscover {
    /// Discovery that inserts `endpoints` once.
    pub fn new(endpoints: impl IntoIterator<Item = Endpoint>) -> Self {
        let mut differ = SnapshotDiffer::new();
        differ.update(endpoints);
        Self { differ }
    }
}

impl<E: Into<Endpoint>> FromIterator<E> for StaticDiscover {
    fn from_iter<I: IntoIterator<Item = E>>(iter: I) -> Self {
        Self::new(iter.into_iter().map(Into::into))
    }
}

impl Stream for StaticDiscover {
    type Item = Result<Change<EndpointKey, Endpoint>, Infallible>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().differ.next_change() {
            Some(change) => Poll::Ready(Some(Ok(change))),
            // Nothing can ever change, so no waker needs registering.
            None => Poll::Pending,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, None)
    }
}
