//! Concurrency, adaptive and rate limits (being written).
