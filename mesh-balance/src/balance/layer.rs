//! [`BalanceLayer`]: builds a [`Balance`] over a discovery stream.

use std::fmt;

use mesh_core::classify::MeshClassifier;
use mesh_core::{BoxError, Endpoint, EndpointKey};
use tower::discover::Discover;
use tower_layer::Layer;

use super::{Balance, BalanceConfig, ConfigError, MakeEndpoint};

/// Turns a discovery stream into a [`Balance`]: holds the configuration, the per-endpoint service
/// factory and the classifier, checked once when the layer is built.
///
/// `Clone` when the factory and classifier are; each [`layer`](Layer::layer) call builds an
/// independent balancer (its own endpoint set and random stream).
///
/// ```
/// use std::convert::Infallible;
/// use std::time::Duration;
///
/// use http::{Request, Response};
/// use http_body_util::{BodyExt, Full};
/// use mesh_balance::discover::StaticDiscover;
/// use mesh_balance::{BalanceConfig, BalanceLayer};
/// use mesh_core::Endpoint;
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), mesh_core::BoxError> {
/// let make = |_: &Endpoint| {
///     service_fn(|_req: Request<()>| async {
///         Ok::<_, Infallible>(Response::new(Full::new(bytes::Bytes::from_static(b"hello"))))
///     })
/// };
/// let config = BalanceConfig::default().fail_fast_after(Duration::from_secs(1));
/// let balance = ServiceBuilder::new()
///     .layer(BalanceLayer::new(config, make)?)
///     .service(StaticDiscover::new([Endpoint::new("10.0.0.1:80".parse()?)]));
/// let response = balance.oneshot(Request::new(())).await?;
/// assert_eq!(response.into_body().collect().await?.to_bytes(), "hello");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct BalanceLayer<M, C = MeshClassifier> {
    config: BalanceConfig,
    make: M,
    classifier: C,
}

impl<M> BalanceLayer<M> {
    /// A layer building balancers with `config`, creating endpoint services with `make`.
    ///
    /// Fails on an invalid `config`, naming the setting.
    pub fn new(config: BalanceConfig, make: M) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config,
            make,
            classifier: MeshClassifier::new(),
        })
    }
}

impl<M, C> BalanceLayer<M, C> {
    /// Uses `classifier` to decide which outcomes count as failures.
    pub fn classifier<C2>(self, classifier: C2) -> BalanceLayer<M, C2> {
        BalanceLayer {
            config: self.config,
            make: self.make,
            classifier,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &BalanceConfig {
        &self.config
    }
}

impl<D, M, C> Layer<D> for BalanceLayer<M, C>
where
    D: Discover<Key = EndpointKey, Service = Endpoint>,
    D::Error: Into<BoxError>,
    M: MakeEndpoint + Clone,
    C: Clone,
{
    type Service = Balance<D, M, C>;

    fn layer(&self, discover: D) -> Balance<D, M, C> {
        Balance::with_classifier(
            discover,
            self.make.clone(),
            self.config.clone(),
            self.classifier.clone(),
        )
        .expect("validated when the layer was built")
    }
}

impl<M, C> fmt::Debug for BalanceLayer<M, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BalanceLayer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
