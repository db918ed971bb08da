//! Trace-context extraction from arbitrary `traceparent`, `tracestate`, `b3` and `X-B3-*` values:
//! never panics; a context that is extracted survives an inject/extract round trip, and so does
//! the `tracestate` list carried with it (even one OpenTelemetry's own `TraceState` refuses).
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

    // With the carried list: what goes out is read back the same, and goes out the same again.
    let Some(cx) = propagation::extract_context(&headers, |_| {}) else {
        panic!("extract found a parent, extract_context must too");
    };
    let mut first = HeaderMap::new();
    propagation::inject_context(&cx, Propagation::default(), &mut first);
    let cx2 = propagation::extract_context(&first, |r| panic!("our own header was rejected: {r:?}"))
        .expect("an injected context is extracted");
    let mut second = HeaderMap::new();
    propagation::inject_context(&cx2, Propagation::default(), &mut second);
    assert_eq!(first.get("traceparent"), second.get("traceparent"));
    assert_eq!(first.get("tracestate"), second.get("tracestate"));
});
