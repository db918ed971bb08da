//! [`AuthzPolicy`]: deny rules, then allow rules, then a default.

use http::Request;
use mesh_core::proxy::TargetRules;
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
#[derive(Clone, Debug)]
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
    /// How the request target is normalised before the rules are read (and forwarded so). Default
    /// mesh-core's [`TargetRules::default`] with `CONNECT` let through and no host required:
    /// whether to tunnel, and whether a host-less HTTP/1.1 request is acceptable, are the edge's
    /// decisions (a missing host cannot make a host rule match); ambiguity is always refused.
    pub target: TargetRules,
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

impl Default for AuthzPolicy {
    fn default() -> Self {
        Self {
            deny: Vec::new(),
            allow: Vec::new(),
            dry_run: false,
            meter: None,
            target: TargetRules::default()
                .allow_connect(true)
                .require_host(false),
        }
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

    /// Sets [`target`](Self::target).
    pub fn target(mut self, rules: TargetRules) -> Self {
        self.target = rules;
        self
    }

    /// Sets [`meter`](Self::meter).
    pub fn meter(mut self, meter: Meter) -> Self {
        self.meter = Some(meter);
        self
    }

    /// Evaluates the rules for a request from `peer` (`None`: unauthenticated), as the request is:
    /// normalise its target first ([`mesh_core::proxy::normalize_target`] with
    /// [`target`](Self::target)), as [`Authz`](super::Authz) does, or rules can be bypassed.
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
