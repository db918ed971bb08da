//! One boxed discovery stream type, so [`ClientBuilder`](super::ClientBuilder) is not generic
//! over the user's discovery source.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;
use mesh_core::{BoxError, Endpoint, EndpointKey};
use tower::discover::{Change, Discover};

/// Any discovery source, with its error boxed. tower's `Discover` is implemented for every
/// stream of `Result<Change<K, S>, E>`, so the balancer takes this as it takes the original.
pub(crate) type BoxDiscover =
    Pin<Box<dyn Stream<Item = Result<Change<EndpointKey, Endpoint>, BoxError>> + Send>>;

pub(crate) fn boxed<D>(discover: D) -> BoxDiscover
where
    D: Discover<Key = EndpointKey, Service = Endpoint> + Send + Unpin + 'static,
    D::Error: Into<BoxError>,
{
    Box::pin(ErrInto(discover))
}

struct ErrInto<D>(D);

impl<D> Stream for ErrInto<D>
where
    D: Discover<Key = EndpointKey, Service = Endpoint> + Unpin,
    D::Error: Into<BoxError>,
{
    type Item = Result<Change<EndpointKey, Endpoint>, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0)
            .poll_discover(cx)
            .map(|change| change.map(|change| change.map_err(Into::into)))
    }
}
