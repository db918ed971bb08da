//! [`Client`]: the whole outbound stack as one named, boxed service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use mesh_balance::{BalanceHandle, BalanceStatus};
use mesh_core::service::BoxCloneHttpService;
use mesh_core::time::PollClock;
use mesh_core::{Body, BoxError};
use mesh_retry::breaker::BreakerRegistry;
use mesh_retry::budget::WindowBudget;
use mesh_retry::retry::RetryLimit;
use pin_project::pin_project;
use tower::util::Oneshot;
use tower::{Service, ServiceExt};

mod assemble;
mod boxed;
mod builder;
mod call;
mod discovery;

pub use assemble::EndpointService;
use assemble::{DirectEndpoint, Stack};
pub use builder::{ClientBuilder, DEFAULT_CLIENT_TIMEOUT};
use call::{Call, Stacks};

/// A client of one service: trace → timeout → retry with budget → balancer → per-endpoint
/// breaker → HTTP over TLS or TCP, built by [`ClientBuilder`].
///
/// - **Any request body.** `Client` is a `Service<Request<B>>` for any body of [`Bytes`] frames
///   whose error converts to [`BoxError`]: mesh-core's [`Body`], axum's and tonic's bodies,
///   `String`, `Full<Bytes>`, `Empty<Bytes>`. The body is boxed once into a [`Body`] (not again
///   when it already is one). Responses always have a [`Body`].
/// - **`Clone + Send + Sync`.** Clones share everything: the balancer and its endpoint set, the
///   retry budget, the breakers, the connection pools. Put it in axum `State`, or hand it to
///   `tonic::client::Grpc::with_origin` as a channel.
/// - **Readiness.** A `Client` is always ready: `poll_ready` returns `Ready(Ok(()))` at once, and
///   each call waits for an endpoint *inside its response future* (on its own clone of the stack),
///   bounded by the balancer's fail-fast time (`BalanceConfig::fail_fast_after`, 3 s by default)
///   and the request timeout. So callers that never poll readiness (an axum handler calling
///   [`call`](Service::call) on its clone, tonic) and callers that do (`oneshot`) are both right;
///   [`request`](Client::request) does the same through `&self`, for a caller that holds the
///   client by reference (a table of clients).
///   The response future holds the call's state inline and the retry layer's future in one box
///   (see [`ResponseFuture`]). The backpressure a caller would get from `poll_ready` shows up as
///   the time the response takes instead.
/// - **Cheap to clone.** A `Client` is a reference count on the assembled stack: cloning it
///   allocates nothing. Each call works on a clone of the stack of its own, taken from the
///   client's idle clones (up to 64 are kept) or made afresh, and given back once called.
/// - **Errors** are boxed mesh-core failure types: `NoEndpoints`, `Timeout`, `CircuitOpen`, a
///   connection error…; test them with `is::<T>()` or [`mesh_core::is_caused_by`].
#[derive(Clone)]
pub struct Client {
    inner: Inner,
    handles: Option<Arc<Handles>>,
}

/// The stack behind a [`Client`], by its concrete type, shared by reference count (cloning a
/// `Client` copies nothing). Each call takes a clone of the stack (an idle one when there is
/// one: see `call`) into the response future, which polls it ready, calls it and gives it back.
#[derive(Clone)]
enum Inner {
    /// Built without `wrap_endpoints`: breaker over HTTP client per endpoint.
    Direct(Arc<Stacks<Stack<DirectEndpoint>>>),
    /// Built with `wrap_endpoints`: the boxed endpoint services the wrapper returns.
    Wrapped(Arc<Stacks<Stack<EndpointService>>>),
    /// Made with [`Client::from_service`].
    Service(BoxCloneHttpService),
}

/// What a built client lets its owner watch.
pub(crate) struct Handles {
    pub(crate) balance: BalanceHandle,
    pub(crate) breakers: BreakerRegistry,
    pub(crate) budget: WindowBudget,
    pub(crate) retry_limit: RetryLimit,
}

impl Client {
    /// A builder with every default; see [`ClientBuilder`].
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// Wraps a stack assembled by hand (or a test double) in the `Client` interface; it has no
    /// [`status`](Self::status), [`breakers`](Self::breakers) or [`budget`](Self::budget).
    pub fn from_service(service: BoxCloneHttpService) -> Self {
        Self {
            inner: Inner::Service(service),
            handles: None,
        }
    }

    /// The assembled stack without endpoint wrapping, with its handles.
    pub(crate) fn direct(stack: Stack<DirectEndpoint>, handles: Handles) -> Self {
        Self {
            inner: Inner::Direct(Arc::new(Stacks::new(stack))),
            handles: Some(Arc::new(handles)),
        }
    }

    /// The assembled stack over wrapped endpoint services, with its handles.
    pub(crate) fn wrapped(stack: Stack<EndpointService>, handles: Handles) -> Self {
        Self {
            inner: Inner::Wrapped(Arc::new(Stacks::new(stack))),
            handles: Some(Arc::new(handles)),
        }
    }

    /// The balancer's endpoint set as of its last poll (endpoints, ready, ejected, panic mode);
    /// `None` for a client made with [`from_service`](Self::from_service).
    pub fn status(&self) -> Option<BalanceStatus> {
        self.handles
            .as_ref()
            .and_then(|handles| handles.balance.status())
    }

    /// A handle on the client's balancer: its endpoints, and
    /// [`reconfigure`](BalanceHandle::reconfigure) to change its settings while it runs (what
    /// the xDS service does when the cluster's policy changes). `None` for a client made with
    /// [`from_service`](Self::from_service).
    pub fn balance(&self) -> Option<&BalanceHandle> {
        self.handles.as_ref().map(|handles| &handles.balance)
    }

    /// The per-endpoint breakers (`find(addr)` gives one endpoint's state).
    pub fn breakers(&self) -> Option<&BreakerRegistry> {
        self.handles.as_ref().map(|handles| &handles.breakers)
    }

    /// The bound on retries in flight over every request of this client (unbounded unless
    /// set: the budget alone limits retries); [`RetryLimit::set_max`] changes it live, as the
    /// xDS service does with a cluster's `max_retries`.
    pub fn retry_limit(&self) -> Option<&RetryLimit> {
        self.handles.as_ref().map(|handles| &handles.retry_limit)
    }

    /// The retry budget (its window's request and retry counts).
    pub fn budget(&self) -> Option<&WindowBudget> {
        self.handles.as_ref().map(|handles| &handles.budget)
    }
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client").finish_non_exhaustive()
    }
}

impl<B> Service<Request<B>> for Client
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> ResponseFuture {
        self.request(req)
    }
}

impl Client {
    /// Sends `req` through the stack: what [`call`](Service::call) does, through a shared
    /// reference, so a caller holding `&Client` (a router's table of clients) need not clone the
    /// client for each request (two reference counts up and down again).
    pub fn request<B>(&self, req: Request<B>) -> ResponseFuture
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let request = req.map(Body::new);
        // An idle clone of the stack carries no reservation; the call polls it ready, then calls
        // it.
        let kind = match &self.inner {
            Inner::Direct(stacks) => Kind::Direct(Call::new(stacks, request)),
            Inner::Wrapped(stacks) => Kind::Wrapped(Call::new(stacks, request)),
            Inner::Service(service) => Kind::Service(service.clone().oneshot(request)),
        };
        ResponseFuture { kind }
    }
}

/// The response future of a [`Client`]: `Send`, small (a few hundred bytes at most), and not
/// `Unpin` (pin it to poll it, as `.await` does).
///
/// It holds the call's state inline: the request and the call's clone of the stack (itself
/// boxed once and reused by later calls) until the stack is ready, then the stack's future. The
/// one large future of the stack, the retry layer's (about 750 bytes: the balancer's future, the
/// balancer instance retries go to, the request template), is boxed where the retry layer makes
/// it, one allocation per call; every layer above it, and every layer a server puts above the
/// client (its router, its error mapping, hyper's slot for the request in flight), then moves a
/// pointer instead of copying it. Measured with callgrind on mesh-sidecar's proxied request:
/// boxing the whole call instead (the box first written when the call starts, the stack's
/// future built on the stack and copied by each layer on the way) cost 1.5 % more of
/// callgrind's cycle estimate and 58 more data cache write misses per request.
#[pin_project]
pub struct ResponseFuture {
    #[pin]
    kind: Kind,
}

// The assembled stacks box their retry layer's future (see `ResponseFuture`); a `from_service`
// stack boxes its own future, so its `Oneshot` holds only the service and the request.
#[pin_project(project = KindProj)]
enum Kind {
    Direct(#[pin] Call<Stack<DirectEndpoint>, Request<Body>>),
    Wrapped(#[pin] Call<Stack<EndpointService>, Request<Body>>),
    Service(#[pin] Oneshot<BoxCloneHttpService, Request<Body>>),
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // The layers' clock readings of this poll (the recorder's start, the deadline, the
        // budget, the balancer, the breaker): one, shared with the polling task's scope if it
        // opened one (mesh-core's server does), else read once here.
        let _clock = PollClock::join();
        match self.project().kind.project() {
            KindProj::Direct(future) => future.poll(cx),
            KindProj::Wrapped(future) => future.poll(cx),
            KindProj::Service(future) => future.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::mem::size_of;

    use mesh_balance::{Balance, TryMake};
    use mesh_retry::body::ReplayBody;
    use mesh_retry::retry::Retry;

    use super::assemble::{DirectEndpoint, MakeFn, Stack};
    use super::*;

    /// Every layer moves the future of the layer below once more, so the futures' sizes are a
    /// cost per request. These bounds catch a layer that grows its future by more than a few
    /// fields (an inline timer or span is 100–300 bytes, a request head 300), and a stack that
    /// holds the retry layer's future inline again (every layer above it, and every layer of a
    /// server above the client, would copy it); the figures are in the message.
    #[test]
    fn the_response_future_stays_small() {
        type Bal = Balance<super::discovery::BoxDiscover, TryMake<MakeFn<DirectEndpoint>>>;
        type EndpointFuture = <DirectEndpoint as Service<Request<ReplayBody<Body>>>>::Future;
        type BalanceFuture = <Bal as Service<Request<ReplayBody<Body>>>>::Future;
        type RetryFuture = <Retry<Bal> as Service<Request<Body>>>::Future;
        type StackFuture = <Stack<DirectEndpoint> as Service<Request<Body>>>::Future;
        let sizes = [
            ("endpoint", size_of::<EndpointFuture>()),
            ("balance", size_of::<BalanceFuture>()),
            ("retry", size_of::<RetryFuture>()),
            ("stack", size_of::<StackFuture>()),
            ("client", size_of::<ResponseFuture>()),
        ];
        // Inline in the retry layer's future (boxed where it is made) and copied with it.
        assert!(size_of::<EndpointFuture>() <= 200, "{sizes:?}");
        assert!(size_of::<RetryFuture>() <= 800, "{sizes:?}");
        // Nest a pointer to it, and are copied by every layer above.
        assert!(size_of::<StackFuture>() <= 400, "{sizes:?}");
        assert!(size_of::<ResponseFuture>() <= 400, "{sizes:?}");
    }
}
