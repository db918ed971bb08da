//! Boxed HTTP service types, for the edges of a stack where one nameable type matters more than a
//! few nanoseconds per request (an application's state, a router's table, a builder's output).
//!
//! Both take requests with body `B` (mesh-core's [`Body`] unless said otherwise) and answer with a
//! [`Body`]; errors are [`BoxError`]. Put [`MapBodyLayer`](crate::body::MapBodyLayer) (and
//! `map_err(Into::into)` where the error is another type) on a stack to make it fit.
//!
//! ```
//! use http::{Request, Response};
//! use mesh_core::body::MapBodyLayer;
//! use mesh_core::service::BoxCloneHttpService;
//! use mesh_core::{Body, BoxError};
//! use tower::ServiceBuilder;
//!
//! let svc: BoxCloneHttpService = BoxCloneHttpService::new(
//!     ServiceBuilder::new()
//!         .layer(MapBodyLayer::new())
//!         .service_fn(|_req: Request<Body>| async { Ok::<_, BoxError>(Response::new(String::from("ok"))) }),
//! );
//! # let _ = svc;
//! ```

use http::{Request, Response};
use tower::util::{BoxCloneSyncService, BoxService};

use crate::body::Body;
use crate::error::BoxError;

/// A boxed HTTP service: `Send`, not `Clone`. Calls need `poll_ready` first, as the boxed
/// service's own contract says.
pub type BoxHttpService<B = Body> = BoxService<Request<B>, Response<Body>, BoxError>;

/// A boxed HTTP service that is `Clone + Send + Sync` (fits axum state and a tower `Steer`).
/// Each clone is a service of its own: poll the clone you call.
pub type BoxCloneHttpService<B = Body> = BoxCloneSyncService<Request<B>, Response<Body>, BoxError>;
