//! Edge routing: host, then the longest path prefix, to an upstream service's client stack, with
//! the route's header edits applied to the upstream request.
//!
//! Routing decides on the normalised target (mesh-core's `normalize_target`), and the upstream
//! gets that same target: one host (a second `Host`, or a `Host` differing from an absolute-form
//! URI or HTTP/2 `:authority`, is answered `400`), compared without case or trailing dot, and the
//! path without dot segments or repeated slashes. So a request cannot be routed by one host or
//! path while the backend reads another. `CONNECT` is answered `405`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use mesh_core::proxy::{
    TargetRules, canonical_host, normalize_target, remove_connection_extensions,
    remove_hop_by_hop_headers, request_host,
};
use mesh_core::{Body, BoxError};
use mesh_examples::gateway_config::Route;
use mesh_examples::stack::{Client, adopt_trace_context, forwarded_body};
use tower::Service;

/// The route table and one client per service. Clones share both.
#[derive(Clone)]
pub(crate) struct Router {
    routes: Arc<[Route]>,
    clients: Arc<[Client]>,
    target: Arc<TargetRules>,
    body_idle_timeout: Option<Duration>,
}

impl Router {
    /// `clients[i]` serves the service each route names by index `i`.
    /// `body_idle_timeout`: how long a request body may stall while forwarded.
    pub(crate) fn new(
        routes: Vec<Route>,
        clients: Vec<Client>,
        body_idle_timeout: Option<Duration>,
    ) -> Self {
        Self {
            routes: routes.into(),
            clients: clients.into(),
            target: Arc::new(TargetRules::default()),
            body_idle_timeout,
        }
    }

    /// Routes naming `host` win over host-less routes; within each group the longest matching
    /// prefix wins (file order breaks ties).
    fn route(&self, host: Option<&str>, path: &str) -> Option<&Route> {
        let best = |want: Option<&str>| {
            self.routes
                .iter()
                .filter(|r| r.host.as_deref() == want && prefix_matches(&r.path_prefix, path))
                .fold(None::<&Route>, |best, r| match best {
                    Some(b) if b.path_prefix.len() >= r.path_prefix.len() => Some(b),
                    _ => Some(r),
                })
        };
        host.and_then(|h| best(Some(h))).or_else(|| best(None))
    }
}

/// `prefix` matches whole path segments: `/api` matches `/api` and `/api/x`, not `/apix`.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => prefix == "/" || rest.is_empty() || rest.starts_with('/'),
        None => false,
    }
}

/// The host the client addressed, in canonical form (lower case, no trailing dot), without port.
/// Only meaningful once `normalize_target` has accepted the request (one unambiguous host).
fn host_of<B>(req: &Request<B>) -> Option<String> {
    request_host(req).map(|host| canonical_host(host).into_owned())
}

fn not_found() -> Response<Body> {
    let mut res = Response::new(Body::from("mesh-gateway: no route\n"));
    *res.status_mut() = StatusCode::NOT_FOUND;
    res
}

impl Service<Request<Incoming>> for Router {
    type Response = Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // A `mesh::Client` is always ready (each call waits for an endpoint in its own future).
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Incoming>) -> Self::Future {
        if let Err(refused) = normalize_target(&mut req, &self.target) {
            let failure = refused.into_failure();
            return Box::pin(async move { Err(failure) });
        }
        let host = host_of(&req);
        let Some(route) = self.route(host.as_deref(), req.uri().path()) else {
            return Box::pin(async { Ok(not_found()) });
        };
        let timeout = self.body_idle_timeout;
        let mut req = req.map(|body| forwarded_body(body, timeout));
        remove_connection_extensions(req.extensions_mut());
        adopt_trace_context(&mut req);
        let headers = req.headers_mut();
        remove_hop_by_hop_headers(headers);
        for name in &route.remove_headers {
            headers.remove(name);
        }
        for (name, value) in &route.add_headers {
            headers.insert(name.clone(), value.clone());
        }
        Box::pin(self.clients[route.service].request(req))
    }
}

#[cfg(test)]
mod tests {
    use super::prefix_matches;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/x"));
        assert!(!prefix_matches("/api", "/apix"));
        assert!(!prefix_matches("/api", "/"));
    }
}
