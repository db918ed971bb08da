//! TLS connect and accept for mesh-core's client and server: [`TlsConnector`], [`TlsAcceptor`] and
//! [`HandshakeError`].
//!
//! Both sides present this workload's [`X509Svid`](crate::X509Svid) and verify the peer's with the
//! SPIFFE verifiers of [`verify`](crate::verify). Configurations are built once per setting change
//! with the crate's explicit crypto provider; the connector clones its configuration per connection
//! only to set the endpoint's expected SPIFFE ID.

mod acceptor;
mod connector;
mod error;
mod recheck;
mod settings;

pub use acceptor::{TlsAcceptFuture, TlsAcceptor};
pub use connector::{TlsConnectFuture, TlsConnector};
pub use error::{HandshakeError, failure_detail};
