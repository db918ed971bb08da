//! Per-request authorization on the verified peer identity: [`AuthzLayer`], [`AuthzPolicy`],
//! [`AuthzRule`].
//!
//! The TLS acceptor's [`Authorizer`](crate::Authorizer) decides who may connect at all; this layer
//! decides, per request, what each peer may do: rules over the peer's SPIFFE ID, the method, a path
//! prefix and the host. Deny rules win, then allow rules, then the default (deny when any allow
//! rule exists). Unauthenticated (plaintext) peers match only rules that name them. A dry-run mode
//! logs and counts denials without enforcing them. Every decision is counted in
//! `mesh.tls.authz.decisions` (attribute `decision` = `allow`, `deny`, `dry_run_deny` or
//! `bad_request`).
//!
//! Rules are read on the **normalised** request target, and the request is forwarded with it
//! (mesh-core's `normalize_target`: dot segments, repeated slashes, escapes of unreserved
//! characters, one unambiguous host), so a deny rule on `/admin` also covers `/x/../admin`,
//! `//admin` and `/%61dmin`, and a host rule cannot be dodged by a second `Host` header, an
//! absolute-form URI or a trailing dot. Ambiguous targets are refused with `400` even in dry-run
//! mode: they are malformed requests, not policy decisions.
//!
//! A denial is [`mesh_core::error::Unauthorized`] caused by [`AuthzDenied`]; put mesh-core's
//! `ErrorResponseLayer` outside to answer `403`:
//!
//! ```
//! use std::convert::Infallible;
//! use http::{Method, Request, Response, StatusCode};
//! use mesh_core::error::ErrorResponseLayer;
//! use mesh_core::{Body, PeerIdentity};
//! use mesh_tls::authz::{AuthzLayer, AuthzPolicy, AuthzRule};
//! use mesh_tls::{Authorizer, SpiffeId};
//! use tower::{ServiceBuilder, ServiceExt};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let shop = Authorizer::path_prefix("prod.example".parse()?, "/ns/shop");
//! let policy = AuthzPolicy::new()
//!     .deny(AuthzRule::any_authenticated().path_prefix("/admin"))
//!     .allow(AuthzRule::peers(shop).methods([Method::GET]))
//!     .allow(AuthzRule::unauthenticated().path_prefix("/healthz"));
//! let app = ServiceBuilder::new()
//!     .layer(ErrorResponseLayer::new())
//!     .layer(AuthzLayer::new(policy))
//!     .service_fn(|_req: Request<Body>| async { Ok::<_, Infallible>(Response::new(Body::empty())) });
//!
//! let web: SpiffeId = "spiffe://prod.example/ns/shop/sa/web".parse()?;
//! let mut get = Request::get("/orders/1").body(Body::empty())?;
//! get.extensions_mut().insert(web.clone());
//! assert_eq!(app.clone().oneshot(get).await?.status(), StatusCode::OK);
//!
//! let mut admin = Request::get("/admin/users").body(Body::empty())?;
//! admin.extensions_mut().insert(PeerIdentity::new(web.to_identity()));
//! assert_eq!(app.clone().oneshot(admin).await?.status(), StatusCode::FORBIDDEN);
//!
//! let plaintext = Request::get("/orders/1").body(Body::empty())?;
//! assert_eq!(app.oneshot(plaintext).await?.status(), StatusCode::FORBIDDEN);
//! # Ok(())
//! # }
//! ```

mod future;
mod layer;
mod policy;
mod rule;
mod service;

use std::fmt;

pub use future::ResponseFuture;
pub use layer::AuthzLayer;
pub use policy::{AuthzPolicy, Decision};
pub use rule::AuthzRule;
pub use service::Authz;

use crate::SpiffeId;

/// Why [`Authz`] denied a request; the source of the [`Unauthorized`](mesh_core::error::Unauthorized)
/// it fails with.
#[derive(Clone, Debug)]
pub struct AuthzDenied {
    peer: Option<SpiffeId>,
    decision: Decision,
    reason: String,
}

impl AuthzDenied {
    /// The peer, or `None` when unauthenticated.
    pub fn peer(&self) -> Option<&SpiffeId> {
        self.peer.as_ref()
    }

    /// The decision that denied the request.
    pub fn decision(&self) -> Decision {
        self.decision
    }
}

impl fmt::Display for AuthzDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.peer {
            Some(peer) => write!(f, "{peer} denied: {}", self.reason),
            None => write!(f, "unauthenticated peer denied: {}", self.reason),
        }
    }
}

impl std::error::Error for AuthzDenied {}

#[cfg(test)]
mod tests;
