//! Outbound: plaintext requests from the local app, routed by `:authority` / `Host` to a
//! configured service's client stack.
//!
//! Before routing, the request target is normalised once (mesh-core's `normalize_target`): one
//! unambiguous host, the path without dot segments or repeated slashes, `CONNECT` refused with
//! `405`. The peer's authorization rules then see the same path and host this router used.
//!
//! # Allocation
//!
//! Routing a request allocates nothing of its own: the authority is looked up without copying
//! it (unless it is not in canonical form), the `mesh::Client` is called through a shared
//! reference (`Client::request`: not even cloned), and the response future is the client's own
//! (small: the client boxes its stack's one large future once per call), not boxed again.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::HOST;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_balance::hash::BuildStableHasher;
use mesh_core::proxy::{
    TargetRules, canonical_host, normalize_target, remove_connection_extensions,
    remove_hop_by_hop_headers,
};
use mesh_core::{Body, BoxError};
use mesh_examples::stack::{Client, adopt_trace_context, forwarded_body};
use tower::Service;

/// Routes each request to the client of the service owning its authority. Clones share the table.
///
/// One `Arc` for all of it: the server clones its service for every request (tower's readiness
/// contract wants an instance per call), so each field shared on its own would cost an atomic
/// increment and decrement more per request.
#[derive(Clone)]
pub(crate) struct Router {
    shared: Arc<Shared>,
}

struct Shared {
    /// Lower-cased authority (`host` or `host:port`) → client. Hashed with mesh-balance's fixed,
    /// unkeyed hash (FNV-1a; a short host costs about a quarter of what `std`'s keyed SipHash
    /// does). Safe here because requests only look up: the keys are the operator's
    /// configuration, so no request can fill the table with colliding names.
    routes: HashMap<String, Client, BuildStableHasher>,
    target: TargetRules,
    body_idle_timeout: Option<Duration>,
}

impl Router {
    /// `body_idle_timeout`: how long a request body may stall while forwarded.
    pub(crate) fn new(
        routes: HashMap<String, Client>,
        body_idle_timeout: Option<Duration>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                routes: routes.into_iter().collect(),
                target: TargetRules::default(),
                body_idle_timeout,
            }),
        }
    }

    /// The client for `authority`: an exact match first, then the host without its port. Table
    /// keys are lower-case without a trailing dot; an authority that already is (the usual case)
    /// is looked up without copying it.
    fn route(&self, authority: &str) -> Option<&Client> {
        let authority = canonical_authority(authority);
        if let Some(client) = self.shared.routes.get(authority.as_ref()) {
            return Some(client);
        }
        let host = authority.rsplit_once(':').map(|(host, _)| host)?;
        self.shared.routes.get(host)
    }
}

/// `authority` with its host in canonical form (lower case, no trailing dot); borrowed when it
/// already is.
fn canonical_authority(authority: &str) -> Cow<'_, str> {
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    match (canonical_host(host), port) {
        (Cow::Borrowed(same), _) if same.len() == host.len() => Cow::Borrowed(authority),
        (canonical, Some(port)) => Cow::Owned(format!("{canonical}:{port}")),
        (canonical, None) => Cow::Owned(canonical.into_owned()),
    }
}

/// The authority the app addressed: the URI's (HTTP/2, absolute-form) or else `Host`.
fn authority_of<B>(req: &Request<B>) -> Option<&str> {
    if let Some(authority) = req.uri().authority() {
        return Some(authority.as_str());
    }
    req.headers().get(HOST).and_then(|h| h.to_str().ok())
}

fn no_route(authority: Option<&str>) -> Response<Body> {
    let mut res = Response::new(Body::from(format!(
        "mesh-sidecar: no outbound service for authority {:?}\n",
        authority.unwrap_or("")
    )));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res
}

impl Service<Request<Incoming>> for Router {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = RouteFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // A `mesh::Client` is always ready (it waits for an endpoint inside its future).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> RouteFuture {
        if let Err(refused) = normalize_target(&mut req, &self.shared.target) {
            return RouteFuture::Answered(Some(Err(refused.into_failure())));
        }
        let authority = authority_of(&req);
        let Some(client) = authority.and_then(|a| self.route(a)) else {
            return RouteFuture::Answered(Some(Ok(no_route(authority))));
        };
        let timeout = self.shared.body_idle_timeout;
        let mut req = req.map(|body| forwarded_body(body, timeout));
        remove_hop_by_hop_headers(req.headers_mut());
        remove_connection_extensions(req.extensions_mut());
        adopt_trace_context(&mut req);
        // Through the shared reference: the client is always ready, and its call clones what it
        // needs itself.
        RouteFuture::Forwarded(client.request(req))
    }
}

/// The router's response future: the client's own, or an answer the router gave itself.
#[pin_project::pin_project(project = RouteProj)]
pub(crate) enum RouteFuture {
    /// Refused or unrouted: the answer, taken when first polled.
    Answered(Option<Result<Response<Body>, BoxError>>),
    /// Forwarded to a service's client (its future is not `Unpin`, so pinned here).
    Forwarded(#[pin] mesh::ResponseFuture),
}

impl Future for RouteFuture {
    type Output = Result<Response<Body>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            RouteProj::Answered(answer) => {
                Poll::Ready(answer.take().expect("RouteFuture polled after completion"))
            }
            RouteProj::Forwarded(future) => future.poll(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_authority;

    #[test]
    fn authorities_are_looked_up_in_canonical_form() {
        assert_eq!(canonical_authority("reviews:8080"), "reviews:8080");
        assert!(matches!(
            canonical_authority("reviews:8080"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(canonical_authority("Reviews.:8080"), "reviews:8080");
        assert_eq!(canonical_authority("REVIEWS."), "reviews");
        assert_eq!(canonical_authority("[::1]:80"), "[::1]:80");
    }
}
