//! [`AuthzLayer`].

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use tower_layer::Layer;

use super::{Authz, AuthzPolicy};

/// The values of the `decision` attribute of `mesh.tls.authz.decisions`.
pub(crate) const DECISIONS: [&str; 4] = ["allow", "deny", "dry_run_deny", "bad_request"];

/// Applies an [`AuthzPolicy`] to every request; builds [`Authz`]. Holds only the policy (shared).
#[derive(Clone, Debug)]
pub struct AuthzLayer {
    shared: Arc<Shared>,
}

/// The policy and its decision counter, shared by every clone of the service.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) policy: AuthzPolicy,
    pub(crate) decisions: Counter<u64>,
}

impl AuthzLayer {
    /// A layer enforcing `policy`.
    pub fn new(policy: AuthzPolicy) -> Self {
        let meter = policy
            .meter
            .clone()
            .unwrap_or_else(|| opentelemetry::global::meter("mesh-tls"));
        let decisions = meter
            .u64_counter("mesh.tls.authz.decisions")
            .with_description("Authorization decisions, by outcome")
            .build();
        // Every series exists from the start, at 0: Prometheus' `increase()` cannot see the step
        // to a series' first sample, so the first deny would otherwise go uncounted.
        for decision in DECISIONS {
            decisions.add(0, &[KeyValue::new("decision", decision)]);
        }
        Self {
            shared: Arc::new(Shared { policy, decisions }),
        }
    }

    /// The policy.
    pub fn policy(&self) -> &AuthzPolicy {
        &self.shared.policy
    }
}

impl<S> Layer<S> for AuthzLayer {
    type Service = Authz<S>;

    fn layer(&self, inner: S) -> Authz<S> {
        Authz::from_shared(inner, self.shared.clone())
    }
}
