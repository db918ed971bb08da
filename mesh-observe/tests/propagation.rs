//! W3C and B3 parsing: the malformed-header table, tracestate rules, precedence, injection.

mod common;

use std::collections::HashMap;

use http::{HeaderMap, HeaderName, HeaderValue};
use mesh_observe::propagation::{
    B3Encoding, B3Propagator, Propagation, RejectReason, Rejection, TraceHeader, W3cPropagator,
    extract, inject,
};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

fn run(pairs: &[(&str, &str)]) -> (Option<SpanContext>, Vec<(TraceHeader, RejectReason)>) {
    let mut rejected = Vec::new();
    let found = extract(&headers(pairs), |r: Rejection| {
        rejected.push((r.header(), r.reason()))
    });
    (found, rejected)
}

fn tp(trace: &str, span: &str, flags: &str) -> String {
    format!("00-{trace}-{span}-{flags}")
}

#[test]
fn valid_traceparents() {
    let cases: &[(String, bool)] = &[
        (tp(TRACE, SPAN, "01"), true),
        (tp(TRACE, SPAN, "00"), false),
        // Unknown flags are ignored; only the sampled bit counts.
        (tp(TRACE, SPAN, "09"), true),
        (tp(TRACE, SPAN, "fe"), false),
        // A future version is read by its version-00 prefix.
        (format!("01-{TRACE}-{SPAN}-01"), true),
        (
            format!("cc-{TRACE}-{SPAN}-01-what-the-future-will-be-like"),
            true,
        ),
    ];
    for (value, sampled) in cases {
        let (found, rejected) = run(&[("traceparent", value)]);
        let found = found.unwrap_or_else(|| panic!("{value} should parse: {rejected:?}"));
        assert!(rejected.is_empty(), "{value}");
        assert_eq!(
            found.trace_id(),
            TraceId::from_hex(TRACE).unwrap(),
            "{value}"
        );
        assert_eq!(found.span_id(), SpanId::from_hex(SPAN).unwrap(), "{value}");
        assert_eq!(found.is_sampled(), *sampled, "{value}");
        assert!(found.is_remote());
    }
}

#[test]
fn malformed_traceparent_table() {
    use RejectReason::*;
    let zero_trace = "0".repeat(32);
    let zero_span = "0".repeat(16);
    let cases: Vec<(String, RejectReason, &str)> = vec![
        (String::new(), Malformed, "empty"),
        ("00".into(), Malformed, "version only"),
        (
            tp(&TRACE.to_uppercase(), SPAN, "01"),
            Malformed,
            "upper-case trace id",
        ),
        (
            tp(TRACE, &SPAN.to_uppercase(), "01"),
            Malformed,
            "upper-case span id",
        ),
        (tp(TRACE, SPAN, "0A"), Malformed, "upper-case flags"),
        (tp(&zero_trace, SPAN, "01"), Malformed, "all-zero trace id"),
        (tp(TRACE, &zero_span, "01"), Malformed, "all-zero span id"),
        (
            format!("ff-{TRACE}-{SPAN}-01"),
            InvalidVersion,
            "version ff",
        ),
        (
            format!("0g-{TRACE}-{SPAN}-01"),
            Malformed,
            "non-hex version",
        ),
        (tp(&TRACE[1..], SPAN, "01"), Malformed, "trace id too short"),
        (
            tp(&format!("{TRACE}0"), SPAN, "01"),
            Malformed,
            "trace id too long",
        ),
        (tp(TRACE, &SPAN[1..], "01"), Malformed, "span id too short"),
        (tp(TRACE, SPAN, "1"), Malformed, "flags too short"),
        (
            format!("{}-extra", tp(TRACE, SPAN, "01")),
            Malformed,
            "version 00 with a suffix",
        ),
        (
            format!("{} ", tp(TRACE, SPAN, "01")),
            Malformed,
            "trailing space",
        ),
        (
            format!("01-{TRACE}-{SPAN}-01x"),
            Malformed,
            "future version, bad suffix",
        ),
        (
            format!("00_{TRACE}-{SPAN}-01"),
            Malformed,
            "wrong separator",
        ),
        (
            tp(&TRACE.replace('a', "g"), SPAN, "01"),
            Malformed,
            "non-hex digit",
        ),
        (
            format!("00-{TRACE}-{SPAN}-01-{}", "a".repeat(600)),
            Oversized,
            "oversized",
        ),
    ];
    for (value, reason, what) in cases {
        let (found, rejected) = run(&[("traceparent", &value), ("tracestate", "a=1")]);
        assert!(found.is_none(), "{what}: {value}");
        assert_eq!(
            rejected,
            vec![(TraceHeader::Traceparent, reason)],
            "{what}: {value}"
        );
    }
}

#[test]
fn repeated_traceparent_is_rejected() {
    let value = tp(TRACE, SPAN, "01");
    let (found, rejected) = run(&[("traceparent", &value), ("traceparent", &value)]);
    assert!(found.is_none());
    assert_eq!(
        rejected,
        vec![(TraceHeader::Traceparent, RejectReason::Duplicate)]
    );
}

#[test]
fn tracestate_lines_are_combined_in_order() {
    let value = tp(TRACE, SPAN, "01");
    let (found, rejected) = run(&[
        ("traceparent", &value),
        ("tracestate", "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7"),
        ("tracestate", ",,tenant@vendor=x y\t"),
    ]);
    assert!(rejected.is_empty(), "{rejected:?}");
    let state = found.unwrap().trace_state().clone();
    assert_eq!(
        state.header(),
        "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7,tenant@vendor=x y"
    );
}

#[test]
fn tracestate_member_limit() {
    let value = tp(TRACE, SPAN, "01");
    let members = |n: usize| {
        (0..n)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",")
    };

    let (found, rejected) = run(&[("traceparent", &value), ("tracestate", &members(32))]);
    assert!(rejected.is_empty());
    assert_eq!(found.unwrap().trace_state().header().split(',').count(), 32);

    // 33 members over two lines: the list is dropped, the traceparent kept.
    let (first, second) = (
        members(20),
        (20..33).map(|i| format!("k{i}=v")).collect::<Vec<_>>(),
    );
    let (found, rejected) = run(&[
        ("traceparent", &value),
        ("tracestate", &first),
        ("tracestate", &second.join(",")),
    ]);
    assert_eq!(
        rejected,
        vec![(TraceHeader::Tracestate, RejectReason::TooManyMembers)]
    );
    let found = found.expect("traceparent survives a bad tracestate");
    assert_eq!(found.trace_state(), &TraceState::NONE);
}

#[test]
fn malformed_tracestate_table() {
    use RejectReason::*;
    let value = tp(TRACE, SPAN, "01");
    let long_key = format!("{}=1", "k".repeat(257));
    let long_value = format!("k={}", "v".repeat(257));
    let huge = (0..30)
        .map(|i| format!("k{i}={}", "v".repeat(200)))
        .collect::<Vec<_>>()
        .join(",");
    let cases: &[(&str, RejectReason, &str)] = &[
        ("Upper=1", Malformed, "upper-case key"),
        ("1abc=1", Malformed, "simple key starting with a digit"),
        ("k", Malformed, "no equals sign"),
        ("k=", Malformed, "empty value"),
        ("=v", Malformed, "empty key"),
        ("k=a=b", Malformed, "equals sign in value"),
        ("k=v ,k2=é", Malformed, "non-ASCII value"),
        ("t@=1", Malformed, "empty system id"),
        ("t@abcdefghijklmno=1", Malformed, "system id too long"),
        ("t@x@y=1", Malformed, "two at signs"),
        (&long_key, Malformed, "key too long"),
        (&long_value, Malformed, "value too long"),
        (&huge, Oversized, "over MAX_TRACESTATE_LEN"),
    ];
    for (state, reason, what) in cases {
        let map = {
            let mut map = headers(&[("traceparent", &value)]);
            map.append(
                "tracestate",
                HeaderValue::from_bytes(state.as_bytes()).unwrap(),
            );
            map
        };
        let mut rejected = Vec::new();
        let found = extract(&map, |r| rejected.push((r.header(), r.reason())));
        assert_eq!(rejected, vec![(TraceHeader::Tracestate, *reason)], "{what}");
        assert_eq!(found.unwrap().trace_state(), &TraceState::NONE, "{what}");
    }
}

#[test]
fn b3_single_table() {
    let short = &TRACE[16..];
    let valid: &[(String, &str, bool)] = &[
        (format!("{TRACE}-{SPAN}-1"), TRACE, true),
        (format!("{TRACE}-{SPAN}-d"), TRACE, true),
        (format!("{TRACE}-{SPAN}-0"), TRACE, false),
        (format!("{TRACE}-{SPAN}"), TRACE, false),
        (format!("{TRACE}-{SPAN}-1-{SPAN}"), TRACE, true),
        (format!("{short}-{SPAN}-1"), short, true),
    ];
    for (value, trace, sampled) in valid {
        let (found, rejected) = run(&[("b3", value)]);
        assert!(rejected.is_empty(), "{value}");
        let found = found.unwrap_or_else(|| panic!("{value}"));
        assert_eq!(
            found.trace_id(),
            TraceId::from_hex(trace).unwrap(),
            "{value}"
        );
        assert_eq!(found.is_sampled(), *sampled, "{value}");
    }
    for sampling_only in ["0", "1", "d"] {
        assert_eq!(
            run(&[("b3", sampling_only)]),
            (None, vec![]),
            "{sampling_only}"
        );
    }
    let zero = "0".repeat(32);
    let malformed: &[String] = &[
        String::new(),
        "x".into(),
        format!("{TRACE}-{SPAN}-2"),
        format!("{}-{SPAN}-1", TRACE.to_uppercase()),
        format!("{}-{SPAN}-1", &TRACE[1..]),
        format!("{TRACE}-{}-1", &SPAN[1..]),
        format!("{zero}-{SPAN}-1"),
        format!("{TRACE}-{SPAN}-1-{SPAN}-extra"),
        format!("{TRACE}-{SPAN}-1-{}", &SPAN[1..]),
        TRACE.to_string(),
    ];
    for value in malformed {
        let (found, rejected) = run(&[("b3", value)]);
        assert!(found.is_none(), "{value}");
        assert_eq!(
            rejected,
            vec![(TraceHeader::B3, RejectReason::Malformed)],
            "{value}"
        );
    }
    let long = format!("{TRACE}-{SPAN}-1-{}", "a".repeat(600));
    assert_eq!(
        run(&[("b3", &long)]),
        (None, vec![(TraceHeader::B3, RejectReason::Oversized)])
    );
    let ok = format!("{TRACE}-{SPAN}-1");
    assert_eq!(
        run(&[("b3", &ok), ("b3", &ok)]),
        (None, vec![(TraceHeader::B3, RejectReason::Duplicate)])
    );
}

#[test]
fn b3_multi_table() {
    let base = [("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN)];
    let sampled_cases: &[(&[(&str, &str)], bool)] = &[
        (&[("x-b3-sampled", "1")], true),
        (&[("x-b3-sampled", "true")], true),
        (&[("x-b3-sampled", "0")], false),
        (&[("x-b3-sampled", "false")], false),
        (&[("x-b3-flags", "1")], true),
        (&[("x-b3-flags", "0")], false),
        (&[], false),
    ];
    for (extra, sampled) in sampled_cases {
        let pairs: Vec<_> = base.iter().chain(extra.iter()).copied().collect();
        let (found, rejected) = run(&pairs);
        assert!(rejected.is_empty(), "{extra:?}");
        let found = found.unwrap();
        assert_eq!(found.span_id(), SpanId::from_hex(SPAN).unwrap());
        assert_eq!(found.is_sampled(), *sampled, "{extra:?}");
    }
    assert_eq!(run(&[("x-b3-sampled", "0")]), (None, vec![]));

    use RejectReason::*;
    let malformed: &[(&[(&str, &str)], RejectReason)] = &[
        (&[("x-b3-traceid", TRACE)], Malformed),
        (&[("x-b3-spanid", SPAN)], Malformed),
        (
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
                ("x-b3-sampled", "yes"),
            ],
            Malformed,
        ),
        (&[("x-b3-traceid", "abc"), ("x-b3-spanid", SPAN)], Malformed),
        (
            &[
                ("x-b3-traceid", TRACE),
                ("x-b3-traceid", TRACE),
                ("x-b3-spanid", SPAN),
            ],
            Duplicate,
        ),
    ];
    for (pairs, reason) in malformed {
        assert_eq!(
            run(pairs),
            (None, vec![(TraceHeader::B3Multi, *reason)]),
            "{pairs:?}"
        );
    }
}

#[test]
fn w3c_takes_precedence_and_b3_is_the_fallback() {
    let other = "a".repeat(32);
    let w3c = tp(TRACE, SPAN, "01");
    let b3 = format!("{other}-{SPAN}-1");
    let (found, _) = run(&[("traceparent", &w3c), ("b3", &b3)]);
    assert_eq!(found.unwrap().trace_id(), TraceId::from_hex(TRACE).unwrap());

    // A broken traceparent is counted, and the valid B3 context is used instead.
    let (found, rejected) = run(&[("traceparent", "00-nonsense"), ("b3", &b3)]);
    assert_eq!(
        found.unwrap().trace_id(),
        TraceId::from_hex(&other).unwrap()
    );
    assert_eq!(
        rejected,
        vec![(TraceHeader::Traceparent, RejectReason::Malformed)]
    );
}

fn sample_span(state: TraceState) -> SpanContext {
    SpanContext::new(
        TraceId::from_hex(TRACE).unwrap(),
        SpanId::from_hex(SPAN).unwrap(),
        TraceFlags::SAMPLED,
        false,
        state,
    )
}

#[test]
fn inject_writes_selected_formats_and_removes_stale_ones() {
    let state = TraceState::from_key_value([("congo", "t61rcWkgMzE")]).unwrap();
    let span = sample_span(state);
    let mut map = headers(&[
        ("b3", "stale"),
        ("x-b3-traceid", "stale"),
        ("tracestate", "old=1"),
    ]);

    inject(
        &span,
        Propagation::default().b3(Some(B3Encoding::Multi)),
        &mut map,
    );
    assert_eq!(map["traceparent"], tp(TRACE, SPAN, "01").as_str());
    assert_eq!(map["tracestate"], "congo=t61rcWkgMzE");
    assert_eq!(map["x-b3-traceid"], TRACE);
    assert_eq!(map["x-b3-spanid"], SPAN);
    assert_eq!(map["x-b3-sampled"], "1");
    assert!(!map.contains_key("b3"), "stale single b3 removed");

    inject(&span, Propagation::default().w3c(false), &mut map);
    assert!(map.is_empty(), "nothing selected, nothing left: {map:?}");

    // An invalid span context writes nothing.
    let mut map = HeaderMap::new();
    inject(
        &SpanContext::empty_context(),
        Propagation::default(),
        &mut map,
    );
    assert!(map.is_empty());
}

#[test]
fn inject_then_extract_round_trips() {
    let span = sample_span(TraceState::NONE);
    for b3 in [Some(B3Encoding::Single), Some(B3Encoding::Multi)] {
        let mut map = HeaderMap::new();
        inject(&span, Propagation::default().w3c(false).b3(b3), &mut map);
        let found = extract(&map, |r| panic!("{r}")).unwrap();
        assert_eq!(
            (found.trace_id(), found.span_id(), found.is_sampled()),
            (span.trace_id(), span.span_id(), true),
            "{b3:?}"
        );
    }
}

#[test]
fn text_map_propagators_follow_the_same_rules_and_count() {
    let telemetry = common::Telemetry::new();
    let meter = telemetry.metrics.meter();
    let w3c = W3cPropagator::with_meter(&meter);
    let b3 = B3Propagator::with_meter(B3Encoding::Single, &meter);

    let cx = opentelemetry::Context::new().with_remote_span_context(sample_span(
        TraceState::from_key_value([("k", "v")]).unwrap(),
    ));
    let mut carrier: HashMap<String, String> = HashMap::new();
    w3c.inject_context(&cx, &mut carrier);
    b3.inject_context(&cx, &mut carrier);
    assert_eq!(carrier["traceparent"], tp(TRACE, SPAN, "01"));
    assert_eq!(carrier["tracestate"], "k=v");
    assert_eq!(carrier["b3"], format!("{TRACE}-{SPAN}-1"));

    let back = w3c.extract_with_context(&opentelemetry::Context::new(), &carrier);
    assert_eq!(back.span().span_context().trace_state().get("k"), Some("v"));
    let back = b3.extract_with_context(&opentelemetry::Context::new(), &carrier);
    assert_eq!(
        back.span().span_context().span_id(),
        SpanId::from_hex(SPAN).unwrap()
    );

    carrier.insert("traceparent".into(), tp(TRACE, SPAN, "01").to_uppercase());
    carrier.insert("b3".into(), "junk".into());
    let back = w3c.extract_with_context(&opentelemetry::Context::new(), &carrier);
    assert!(!back.span().span_context().is_valid());
    let back = b3.extract_with_context(&opentelemetry::Context::new(), &carrier);
    assert!(!back.span().span_context().is_valid());

    let counts = telemetry.sums(mesh_observe::metrics::TRACE_CONTEXT_REJECTED);
    let of = |header: &str| {
        counts
            .iter()
            .filter(|(_, n)| *n > 0)
            .find(|(attrs, _)| common::attr_str(attrs, "header").as_deref() == Some(header))
            .map(|(attrs, n)| (common::attr_str(attrs, "reason").unwrap(), *n))
    };
    assert_eq!(of("traceparent"), Some(("malformed".to_owned(), 1)));
    assert_eq!(of("b3"), Some(("malformed".to_owned(), 1)));
    assert_eq!(
        w3c.fields().collect::<Vec<_>>(),
        ["traceparent", "tracestate"]
    );
}
