//! Trace-context extraction from arbitrary `traceparent`, `tracestate`, `b3` and `X-B3-*` values:
//! never panics, and a context that is extracted survives an inject/extract round trip.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use mesh_observe::propagation::{self, Propagation};

const NAMES: [&str; 7] = [
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
];

fuzz_target!(|data: &[u8]| {
    // Each line is one header: its first byte picks the name, the rest is the value.
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&pick, value)) = line.split_first() else {
            continue;
        };
        let name = HeaderName::from_static(NAMES[usize::from(pick) % NAMES.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let Some(context) = propagation::extract(&headers, |_| {}) else {
        return;
    };
    let mut out = HeaderMap::new();
    propagation::inject(&context, Propagation::default(), &mut out);
    let again = propagation::extract(&out, |r| panic!("our own header was rejected: {r:?}"));
    let again = again.expect("an injected context is extracted");
    assert_eq!(again.trace_id(), context.trace_id());
    assert_eq!(again.span_id(), context.span_id());
});
