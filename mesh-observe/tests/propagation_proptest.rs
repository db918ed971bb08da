//! Property tests: no input panics extraction; whatever is injected is extracted back.

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use mesh_observe::propagation::{
    B3Encoding, B3Propagator, Propagation, W3cPropagator, extract, inject,
};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
use proptest::prelude::*;

const NAMES: [&str; 7] = [
    "traceparent",
    "tracestate",
    "b3",
    "x-b3-traceid",
    "x-b3-spanid",
    "x-b3-sampled",
    "x-b3-flags",
];

fn header_map(entries: &[(usize, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in entries {
        // Bytes a header value cannot hold never reach a service; skip them.
        if let Ok(value) = HeaderValue::from_bytes(value) {
            map.append(HeaderName::from_static(NAMES[name % NAMES.len()]), value);
        }
    }
    map
}

/// Bytes biased towards the alphabet of trace headers, so parsers get deep, not just rejected.
fn near_valid_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            prop::sample::select(b"0123456789abcdefABF-=,@ \t1d".to_vec()),
            any::<u8>(),
        ],
        0..120,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_headers_never_panic(entries in prop::collection::vec((0usize..7, near_valid_bytes()), 0..8)) {
        let map = header_map(&entries);
        let mut rejections = 0;
        let found = extract(&map, |_| rejections += 1);
        if let Some(found) = found {
            prop_assert!(found.is_valid() && found.is_remote());
        }
        prop_assert!(rejections <= 4, "at most one rejection per header family");
    }

    #[test]
    fn mutated_traceparent_never_panics(index in 0usize..56, byte in any::<u8>()) {
        let mut value = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec();
        if index < value.len() { value[index] = byte } else { value.push(byte) }
        let map = header_map(&[(0, value)]);
        let mut rejected = false;
        let found = extract(&map, |_| rejected = true);
        prop_assert!(found.is_some() != rejected || map.is_empty());
    }

    #[test]
    fn propagators_never_panic(pairs in prop::collection::vec((0usize..7, ".{0,80}"), 0..8)) {
        let carrier: HashMap<String, String> = pairs
            .into_iter()
            .map(|(name, value)| (NAMES[name % NAMES.len()].to_owned(), value))
            .collect();
        let meter = opentelemetry::global::meter("proptest");
        let cx = opentelemetry::Context::new();
        let _ = W3cPropagator::with_meter(&meter).extract_with_context(&cx, &carrier);
        let _ = B3Propagator::with_meter(B3Encoding::Multi, &meter).extract_with_context(&cx, &carrier);
    }

    #[test]
    fn inject_extract_round_trip(trace in 1u128.., span in 1u64.., sampled: bool, format in 0usize..3) {
        let span = SpanContext::new(
            TraceId::from(trace),
            SpanId::from(span),
            TraceFlags::default().with_sampled(sampled),
            false,
            TraceState::NONE,
        );
        let propagation = match format {
            0 => Propagation::default(),
            1 => Propagation::default().w3c(false).b3(Some(B3Encoding::Single)),
            _ => Propagation::default().w3c(false).b3(Some(B3Encoding::Multi)),
        };
        let mut map = HeaderMap::new();
        inject(&span, propagation, &mut map);
        let found = extract(&map, |r| panic!("{r}")).expect("injected context extracts");
        prop_assert_eq!(found.trace_id(), span.trace_id());
        prop_assert_eq!(found.span_id(), span.span_id());
        prop_assert_eq!(found.is_sampled(), sampled);
    }
}
