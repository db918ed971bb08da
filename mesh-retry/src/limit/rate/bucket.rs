//! Token buckets by key, with a bounded map.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

/// The buckets of one rate limit. `None` is the key of requests the extractor found no key for.
#[derive(Debug)]
pub(super) struct Buckets<K> {
    map: HashMap<Option<K>, Bucket>,
    per_second: f64,
    burst: f64,
    max_keys: usize,
}

impl<K: Hash + Eq + Clone> Buckets<K> {
    pub(super) fn new(per_second: f64, burst: u32, max_keys: usize) -> Self {
        Self {
            map: HashMap::new(),
            per_second,
            burst: f64::from(burst),
            max_keys,
        }
    }

    /// Takes a token for `key`, or returns how long until one is available.
    pub(super) fn take(&mut self, key: Option<K>, now: Instant) -> Result<(), Duration> {
        let (per_second, burst) = (self.per_second, self.burst);
        if !self.map.contains_key(&key) && self.map.len() >= self.max_keys {
            self.evict(now);
        }
        let bucket = self.map.entry(key).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            // A tiny `per_second` can make the wait too long for a `Duration`: saturate, never panic.
            Err(
                Duration::try_from_secs_f64((1.0 - bucket.tokens) / per_second)
                    .unwrap_or(Duration::MAX),
            )
        }
    }

    /// Makes room for one key. Buckets that have refilled completely are dropped first: a full
    /// bucket is exactly what a new key gets, so forgetting it loses nothing. If every bucket is
    /// still refilling, the least recently used is dropped, which gives its key a full bucket back
    /// (lenient, never stricter than configured).
    fn evict(&mut self, now: Instant) {
        let (per_second, burst) = (self.per_second, self.burst);
        self.map.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
            bucket.tokens + elapsed * per_second < burst
        });
        if self.map.len() >= self.max_keys
            && let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, bucket)| bucket.updated)
                .map(|(key, _)| key.clone())
        {
            self.map.remove(&oldest);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.map.len()
    }
}
