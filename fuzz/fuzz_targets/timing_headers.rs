//! Header values that carry time: `grpc-timeout`, `Retry-After` and `grpc-retry-pushback-ms`.
//! Never panics; a parsed `grpc-timeout` respects the grammar's bound (8 digits of hours).
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use mesh_core::classify::{Pushback, RetryAfter};
use mesh_retry::timeout::grpc_timeout;

fuzz_target!(|data: &[u8]| {
    if let Some(timeout) = grpc_timeout::parse(data) {
        assert!(timeout <= Duration::from_secs(99_999_999 * 3600));
    }
    let _ = RetryAfter::parse(data);
    let _ = Pushback::parse(data);
});
