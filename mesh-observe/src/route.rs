//! [`RouteTemplate`]: the low-cardinality route of a request, from the router.

use std::fmt;
use std::sync::Arc;

use opentelemetry::StringValue;

/// The matched route template of a request (`/orders/{id}`, not `/orders/42`): a request extension
/// that a router (or the application) inserts so spans and metrics can carry `http.route`.
///
/// The layers never derive a route from the raw path: a path can hold ids and would give metrics
/// one series per id. Without this extension `http.route` is simply absent. Insert it *before*
/// the server layer sees the request (e.g. in an outer routing layer) for it to reach metrics and
/// the span name. Cheap to clone: a static string or one reference count.
///
/// ```
/// use mesh_observe::RouteTemplate;
///
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(RouteTemplate::from_static("/orders/{id}"));
/// assert_eq!(req.extensions().get::<RouteTemplate>().unwrap().as_str(), "/orders/{id}");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RouteTemplate(Repr);

#[derive(Clone, PartialEq, Eq, Hash)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl RouteTemplate {
    /// A template known at compile time; recording it never allocates.
    pub const fn from_static(template: &'static str) -> Self {
        Self(Repr::Static(template))
    }

    /// A template built at run time (routers usually hold their templates in an `Arc<str>`).
    pub fn new(template: impl Into<Arc<str>>) -> Self {
        Self(Repr::Shared(template.into()))
    }

    /// The template.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }

    /// The template as an attribute value, without copying it.
    pub(crate) fn to_value(&self) -> StringValue {
        match &self.0 {
            Repr::Static(s) => StringValue::from(*s),
            Repr::Shared(s) => StringValue::from(Arc::clone(s)),
        }
    }
}

impl fmt::Debug for RouteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RouteTemplate")
            .field(&self.as_str())
            .finish()
    }
}

impl fmt::Display for RouteTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
