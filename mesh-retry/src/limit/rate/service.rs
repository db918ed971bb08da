//! [`RateLimit`]: the service.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use http::Request;
use mesh_core::BoxError;
use mesh_core::error::RateLimited;
use tower_service::Service;

use super::bucket::Buckets;
use super::config::RateLimitConfig;
use super::future::ResponseFuture;
use super::key::KeyExtractor;
use crate::limit::metrics::LimitMetrics;

/// A service that refuses requests over a token-bucket rate, per key; see the [module docs](super).
///
/// `poll_ready` is the inner service's; the token is taken in `call`, where the key is known. A
/// refused request never reaches the inner service and fails with
/// [`RateLimited::with_retry_after`] the time until its bucket has a token.
///
/// `Clone` shares the buckets (unlike tower's `RateLimit`, tower #794).
///
/// **Memory bound.** At most [`max_keys`](RateLimitConfig::max_keys) buckets exist. To admit a new
/// key at the bound, buckets that refilled completely are dropped (a full bucket is what a new key
/// gets anyway); if none has, the least recently used one is, and its key starts again with a full
/// bucket — so the bound can only make the limit more lenient, never stricter. That sweep costs
/// one pass over the map, only when the map is full.
pub struct RateLimit<S, K: KeyExtractor> {
    inner: S,
    extractor: K,
    shared: Arc<Shared<K::Key>>,
}

struct Shared<Key> {
    buckets: Mutex<Buckets<Key>>,
    metrics: LimitMetrics,
}

impl<S, K: KeyExtractor> RateLimit<S, K> {
    /// `config` must have been validated.
    pub(super) fn new(inner: S, config: &RateLimitConfig, extractor: K) -> Self {
        Self {
            inner,
            extractor,
            shared: Arc::new(Shared {
                buckets: Mutex::new(Buckets::new(
                    config.per_second,
                    config.burst,
                    config.max_keys,
                )),
                metrics: LimitMetrics::new("rate", config.name.as_ref(), config.meter.as_ref()),
            }),
        }
    }

    /// How many keys have a bucket (at most `max_keys`).
    pub fn tracked_keys(&self) -> usize {
        self.lock().len()
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets<K::Key>> {
        self.shared
            .buckets
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }
}

impl<S: Clone, K: KeyExtractor + Clone> Clone for RateLimit<S, K> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            extractor: self.extractor.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, K: KeyExtractor> fmt::Debug for RateLimit<S, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimit")
            .field("inner", &self.inner)
            .field("extractor", &std::any::type_name::<K>())
            .field("tracked_keys", &self.tracked_keys())
            .finish()
    }
}

impl<S, K, B> Service<Request<B>> for RateLimit<S, K>
where
    S: Service<Request<B>>,
    S::Error: Into<BoxError>,
    K: KeyExtractor,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let key = self
            .extractor
            .extract(request.headers(), request.extensions());
        let taken = self.lock().take(key, mesh_core::time::now());
        match taken {
            Ok(()) => ResponseFuture::called(self.inner.call(request)),
            Err(wait) => {
                self.shared.metrics.rejected();
                ResponseFuture::limited(RateLimited::with_retry_after(wait))
            }
        }
    }
}
