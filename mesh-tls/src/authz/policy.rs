//! [`AuthzPolicy`]: deny rules, then allow rules, then a default.

use http::Request;
use opentelemetry::metrics::Meter;

use super::AuthzRule;
use crate::SpiffeId;

/// The rules of an [`AuthzLayer`](super::AuthzLayer), evaluated in a fixed order:
///
/// 1. if any **deny** rule matches, the request is denied;
/// 2. else if any **allow** rule matches, it is allowed;
/// 3. else the default: **deny when there is at least one allow rule** (an allow list), allow when
///    there is none (a deny list).
///
/// With [`dry_run`](Self::dry_run), denials are logged and counted but the request goes through,
/// to try a policy on live traffic before enforcing it.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct AuthzPolicy {
    /// Rules that deny. Default none.
    pub deny: Vec<AuthzRule>,
    /// Rules that allow. Default none (everything not denied is allowed).
    pub allow: Vec<AuthzRule>,
    /// Log and count denials but let the requests through. Default `false`.
    pub dry_run: bool,
    /// Where decisions are counted. Default `opentelemetry::global::meter("mesh-tls")`.
    pub meter: Option<Meter>,
}

/// The outcome of one policy evaluation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// Allowed by the allow rule at this index.
    Allowed {
        /// The index in [`AuthzPolicy::allow`].
        rule: usize,
    },
    /// Allowed because there are no allow rules and no deny rule matched.
    AllowedByDefault,
    /// Denied by the deny rule at this index.
    Denied {
        /// The index in [`AuthzPolicy::deny`].
        rule: usize,
    },
    /// Denied because allow rules exist and none matched.
    DeniedByDefault,
}

impl Decision {
    /// Whether the request may go on.
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Allowed { .. } | Decision::AllowedByDefault)
    }
}

impl AuthzPolicy {
    /// An empty policy: allows everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a deny rule.
    pub fn deny(mut self, rule: AuthzRule) -> Self {
        self.deny.push(rule);
        self
    }

    /// Adds an allow rule.
    pub fn allow(mut self, rule: AuthzRule) -> Self {
        self.allow.push(rule);
        self
    }

    /// Sets [`dry_run`](Self::dry_run).
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// Sets [`meter`](Self::meter).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Evaluates the rules for a request from `peer` (`None`: unauthenticated).
    pub fn decide<B>(&self, peer: Option<&SpiffeId>, request: &Request<B>) -> Decision {
        if let Some(rule) = self.deny.iter().position(|r| r.matches(peer, request)) {
            return Decision::Denied { rule };
        }
        if let Some(rule) = self.allow.iter().position(|r| r.matches(peer, request)) {
            return Decision::Allowed { rule };
        }
        match self.allow.is_empty() {
            true => Decision::AllowedByDefault,
            false => Decision::DeniedByDefault,
        }
    }
}
