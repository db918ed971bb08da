//! [`MakeEndpoint`]: how the balancer builds one service per discovered endpoint.

use mesh_core::Endpoint;

/// Builds the service that sends requests to one endpoint.
///
/// The balancer calls it when discovery adds an endpoint, when an endpoint's description changes
/// (a new weight, say), and when an endpoint's service fails its readiness check (the broken
/// service is replaced instead of the endpoint being dropped). Any `Fn(&Endpoint) -> S` is a
/// `MakeEndpoint`:
///
/// ```
/// use mesh_balance::MakeEndpoint;
/// use mesh_core::Endpoint;
///
/// let make = |ep: &Endpoint| ep.addr();
/// let ep = Endpoint::new("127.0.0.1:80".parse().unwrap());
/// assert_eq!(make.make_endpoint(&ep), ep.addr());
/// ```
///
/// A factory that may fail wraps in [`TryMake`](super::TryMake): a failed build becomes a
/// service that fails readiness with a typed error, and the balancer routes around it.
///
/// The service must be `Clone`: the balancer hands the clone it polled ready to the caller and
/// keeps a fresh clone, which it polls before its next use (tower's "clone, then poll" rule).
pub trait MakeEndpoint {
    /// The per-endpoint service.
    type Service;

    /// A new service for `endpoint`.
    fn make_endpoint(&self, endpoint: &Endpoint) -> Self::Service;
}

impl<F, S> MakeEndpoint for F
where
    F: Fn(&Endpoint) -> S,
{
    type Service = S;

    fn make_endpoint(&self, endpoint: &Endpoint) -> S {
        self(endpoint)
    }
}
