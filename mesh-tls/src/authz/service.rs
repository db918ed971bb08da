//! [`Authz`], the service.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;
use mesh_core::error::Unauthorized;
use mesh_core::proxy::normalize_target;
use mesh_core::{BoxError, PeerIdentity};
use opentelemetry::KeyValue;
use tower_service::Service;

use super::layer::Shared;
use super::{AuthzDenied, AuthzLayer, AuthzPolicy, Decision, ResponseFuture};
use crate::SpiffeId;

/// Decides each request with an [`AuthzPolicy`] before it reaches the inner service.
///
/// The peer is the [`SpiffeId`] that [`TlsAcceptor`](crate::TlsAcceptor) puts in the request
/// extensions (or, from other acceptors, the [`PeerIdentity`], parsed); a request with neither is
/// unauthenticated. A denied request never reaches the inner service: it fails with
/// [`Unauthorized`] (caused by [`AuthzDenied`]), which mesh-core's `ErrorResponseLayer` turns into
/// `403` (gRPC `PERMISSION_DENIED`). Readiness is the inner service's.
#[derive(Clone, Debug)]
pub struct Authz<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Authz<S> {
    /// Wraps `inner` with `policy`.
    pub fn new(inner: S, policy: AuthzPolicy) -> Self {
        tower_layer::Layer::layer(&AuthzLayer::new(policy), inner)
    }

    pub(crate) fn from_shared(inner: S, shared: Arc<Shared>) -> Self {
        Self { inner, shared }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Gives the inner service back.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, B> Service<Request<B>> for Authz<S>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let policy = &self.shared.policy;
        // Decide on the target the application will see, and only on an unambiguous one.
        if let Err(refused) = normalize_target(&mut request, &policy.target) {
            tracing::debug!(method = %request.method(), uri = %request.uri(), %refused, "authorization: request target refused");
            self.shared
                .decisions
                .add(1, &[KeyValue::new("decision", "bad_request")]);
            return ResponseFuture::denied(refused.into_failure());
        }
        let extensions = request.extensions();
        let parsed;
        let peer = match extensions.get::<SpiffeId>() {
            Some(id) => Some(id),
            None => {
                parsed = extensions
                    .get::<PeerIdentity>()
                    .and_then(|peer| SpiffeId::try_from(peer.identity()).ok());
                parsed.as_ref()
            }
        };
        let decision = policy.decide(peer, &request);
        let outcome = match (decision.is_allowed(), policy.dry_run) {
            (true, _) => "allow",
            (false, true) => "dry_run_deny",
            (false, false) => "deny",
        };
        self.shared
            .decisions
            .add(1, &[KeyValue::new("decision", outcome)]);
        if decision.is_allowed() {
            return ResponseFuture::called(self.inner.call(request));
        }
        let denied = AuthzDenied::new(peer.cloned(), decision);
        if policy.dry_run {
            tracing::info!(%denied, method = %request.method(), path = request.uri().path(), "authorization dry run: would deny");
            return ResponseFuture::called(self.inner.call(request));
        }
        tracing::debug!(%denied, method = %request.method(), path = request.uri().path(), "authorization denied");
        ResponseFuture::denied(Unauthorized::with_source(denied).into())
    }
}

impl Decision {
    fn describe(self) -> String {
        match self {
            Decision::Denied { rule } => format!("deny rule #{rule}"),
            Decision::DeniedByDefault => "no allow rule matched".into(),
            Decision::Allowed { rule } => format!("allow rule #{rule}"),
            Decision::AllowedByDefault => "no rules".into(),
        }
    }
}

impl AuthzDenied {
    fn new(peer: Option<SpiffeId>, decision: Decision) -> Self {
        Self {
            peer,
            reason: decision.describe(),
            decision,
        }
    }
}
