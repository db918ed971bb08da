//! Outcome classification: HTTP statuses, Retry-After, gRPC statuses and pushback, errors, and the
//! per-request choice between gRPC and HTTP.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use mesh_core::classify::{
    ClassifiedResponse, ClassifyEos, ClassifyResponse, ErrorKind, FailureClass, GrpcClassifier,
    GrpcCode, GrpcCodeSet, HttpClassifier, MakeClassifier, MeshClassifier, Outcome, Pushback,
    RetryAfter,
};
use mesh_core::error::{BoxError, CircuitOpen, ConnectError, Timeout, UpstreamError};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Helpers

/// 784111777 = Sun, 06 Nov 1994 08:49:37 GMT (the RFC example date).
const EXAMPLE_SECS: u64 = 784_111_777;

fn example_date() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(EXAMPLE_SECS)
}

/// Header (name, raw value) pairs, raw so that tests can send bytes that are not UTF-8.
type Pairs<'a> = Vec<(&'static str, &'a [u8])>;

fn headers(pairs: &[(&'static str, &[u8])]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for &(name, value) in pairs {
        map.append(
            HeaderName::from_static(name),
            HeaderValue::from_bytes(value).expect("test header value"),
        );
    }
    map
}

fn response(status: u16, pairs: &[(&'static str, &[u8])]) -> Response<()> {
    let mut res = Response::new(());
    *res.status_mut() = StatusCode::from_u16(status).expect("test status");
    *res.headers_mut() = headers(pairs);
    res
}

fn http_outcome(res: &Response<()>) -> Outcome {
    match HttpClassifier::new().classify_response(res) {
        ClassifiedResponse::Ready(result) => Outcome::from(result),
        ClassifiedResponse::RequiresEos(_) => unreachable!("NeverClassifyEos cannot be built"),
    }
}

/// Classifies a gRPC response; `trailers` is used only when the head does not decide, and then
/// `None` means "stream ended without trailers". Returns the outcome and whether EOS was needed.
fn grpc_outcome(
    classifier: GrpcClassifier,
    res: &Response<()>,
    trailers: Option<&HeaderMap>,
) -> (Outcome, bool) {
    match classifier.classify_response(res) {
        ClassifiedResponse::Ready(result) => (Outcome::from(result), false),
        ClassifiedResponse::RequiresEos(eos) => (Outcome::from(eos.classify_eos(trailers)), true),
    }
}

fn grpc_failure(code: GrpcCode, pushback: Option<Pushback>) -> Outcome {
    Outcome::Failure(FailureClass::Grpc { code, pushback })
}

fn overloaded(status: u16, retry_after: Option<RetryAfter>) -> Outcome {
    Outcome::Failure(FailureClass::Overloaded {
        status: StatusCode::from_u16(status).unwrap(),
        retry_after,
    })
}

fn status_failure(status: u16) -> Outcome {
    Outcome::Failure(FailureClass::Status(StatusCode::from_u16(status).unwrap()))
}

// ---------------------------------------------------------------------------------------------
// HTTP statuses

#[test]
fn http_status_table() {
    let secs = |s| Some(RetryAfter::Delay(Duration::from_secs(s)));
    let cases: Vec<(u16, Pairs<'_>, Outcome)> = vec![
        (100, vec![], Outcome::Success),
        (200, vec![], Outcome::Success),
        (204, vec![], Outcome::Success),
        (301, vec![], Outcome::Success),
        (400, vec![], Outcome::Success),
        (404, vec![], Outcome::Success),
        (499, vec![], Outcome::Success),
        // A Retry-After on a success does not make it a failure.
        (200, vec![("retry-after", b"5")], Outcome::Success),
        (429, vec![], overloaded(429, None)),
        (429, vec![("retry-after", b"7")], overloaded(429, secs(7))),
        (429, vec![("retry-after", b"soon")], overloaded(429, None)),
        (
            429,
            vec![("retry-after", b"Sun, 06 Nov 1994 08:49:37 GMT")],
            overloaded(429, Some(RetryAfter::Date(example_date()))),
        ),
        (500, vec![], status_failure(500)),
        (501, vec![], status_failure(501)),
        (502, vec![], status_failure(502)),
        (502, vec![("retry-after", b"5")], status_failure(502)),
        (503, vec![], status_failure(503)),
        (
            503,
            vec![("retry-after", b"120")],
            overloaded(503, secs(120)),
        ),
        (503, vec![("retry-after", b"0")], overloaded(503, secs(0))),
        (503, vec![("retry-after", b"-1")], status_failure(503)),
        (503, vec![("retry-after", b"garbage")], status_failure(503)),
        (503, vec![("retry-after", b"")], status_failure(503)),
        (503, vec![("retry-after", b"\xff\xfe")], status_failure(503)),
        // Retry-After is a singleton field: two values are malformed.
        (
            503,
            vec![("retry-after", b"1"), ("retry-after", b"2")],
            status_failure(503),
        ),
        (504, vec![], status_failure(504)),
        (599, vec![], status_failure(599)),
        (600, vec![], status_failure(600)),
        (999, vec![], status_failure(999)),
    ];
    for (status, pairs, expected) in cases {
        let res = response(status, &pairs);
        assert_eq!(
            http_outcome(&res),
            expected,
            "status {status} headers {pairs:?}"
        );
    }
}

#[test]
fn http_classifier_is_a_make_classifier_that_ignores_the_request() {
    let req = Request::post("/")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let classifier = HttpClassifier::new().make_classifier(&req);
    // Even for a gRPC request, the plain HTTP classifier only looks at the status.
    let res = response(200, &[("grpc-status", b"14")]);
    assert!(matches!(
        classifier.classify_response(&res),
        ClassifiedResponse::Ready(Ok(()))
    ));
    assert!(matches!(
        classifier.classify_response(&response(500, &[])),
        ClassifiedResponse::Ready(Err(FailureClass::Status(StatusCode::INTERNAL_SERVER_ERROR)))
    ));
}

// ---------------------------------------------------------------------------------------------
// Retry-After

#[test]
fn retry_after_parse_table() {
    let max = RetryAfter::MAX_DELAY;
    let cases: Vec<(&[u8], Option<RetryAfter>)> = vec![
        (b"0", Some(RetryAfter::Delay(Duration::ZERO))),
        (b"120", Some(RetryAfter::Delay(Duration::from_secs(120)))),
        (b"  30\t", Some(RetryAfter::Delay(Duration::from_secs(30)))),
        (b"007", Some(RetryAfter::Delay(Duration::from_secs(7)))),
        // Exactly 2^31 and beyond: capped, never overflowing.
        (b"2147483648", Some(RetryAfter::Delay(max))),
        (b"2147483649", Some(RetryAfter::Delay(max))),
        (b"18446744073709551616", Some(RetryAfter::Delay(max))),
        (
            b"99999999999999999999999999999999999999999999999999999999",
            Some(RetryAfter::Delay(max)),
        ),
        // IMF-fixdate, RFC 850, asctime.
        (
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            Some(RetryAfter::Date(example_date())),
        ),
        (
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            Some(RetryAfter::Date(example_date())),
        ),
        (
            b"Sun Nov  6 08:49:37 1994",
            Some(RetryAfter::Date(example_date())),
        ),
        (b"-1", None),
        (b"+5", None),
        (b"1.5", None),
        (b"1 2", None),
        (b"", None),
        (b"   ", None),
        (b"garbage", None),
        (b"Sun, 06 Nov 1994 08:49:37 PST", None),
        (b"Sun, 32 Nov 1994 08:49:37 GMT", None),
        (b"\xff\xfe\xfd", None),
        (b"12\x80", None),
    ];
    for (bytes, expected) in cases {
        assert_eq!(
            RetryAfter::parse(bytes),
            expected,
            "{:?}",
            String::from_utf8_lossy(bytes)
        );
    }
}

#[test]
fn retry_after_delay_from_now() {
    let date = RetryAfter::Date(example_date());
    let secs = Duration::from_secs;
    // Future date: the remaining time.
    assert_eq!(date.delay_from(example_date() - secs(90)), secs(90));
    // Same instant and past dates: zero.
    assert_eq!(date.delay_from(example_date()), Duration::ZERO);
    assert_eq!(date.delay_from(example_date() + secs(3600)), Duration::ZERO);
    // The delay form does not depend on now.
    let delay = RetryAfter::Delay(secs(5));
    assert_eq!(delay.delay_from(UNIX_EPOCH), secs(5));
    assert_eq!(delay.delay_from(SystemTime::now()), secs(5));
    // A far-future date is capped like delta-seconds.
    let far = RetryAfter::parse(b"Fri, 31 Dec 9999 23:59:59 GMT").expect("valid date");
    assert_eq!(far.delay_from(UNIX_EPOCH), RetryAfter::MAX_DELAY);
}

#[test]
fn retry_after_from_headers() {
    assert_eq!(RetryAfter::from_headers(&HeaderMap::new()), None);
    assert_eq!(
        RetryAfter::from_headers(&headers(&[("retry-after", b"3")])),
        Some(RetryAfter::Delay(Duration::from_secs(3)))
    );
    assert_eq!(
        RetryAfter::from_headers(&headers(&[("retry-after", b"3"), ("retry-after", b"3")])),
        None
    );
}

#[test]
fn outcome_retry_after_uses_now_for_dates() {
    let res = response(503, &[("retry-after", b"Sun, 06 Nov 1994 08:49:37 GMT")]);
    let outcome = http_outcome(&res);
    assert!(outcome.is_overloaded());
    assert_eq!(
        outcome.retry_after(example_date() - Duration::from_secs(12)),
        Some(Duration::from_secs(12))
    );
    assert_eq!(
        outcome.retry_after(example_date() + Duration::from_secs(12)),
        Some(Duration::ZERO)
    );
    // 429 without a delay: overloaded, but no advice.
    let outcome = http_outcome(&response(429, &[]));
    assert!(outcome.is_overloaded());
    assert_eq!(outcome.retry_after(SystemTime::now()), None);
}

// ---------------------------------------------------------------------------------------------
// gRPC status codes and sets

#[test]
fn grpc_code_names_and_parsing() {
    let names = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    for (value, name) in names.iter().enumerate() {
        let code = GrpcCode::new(value as u32);
        assert_eq!(code.name(), *name);
        assert!(code.is_standard());
        assert_eq!(code.judged(), code);
    }
    assert_eq!(GrpcCode::UNAVAILABLE.value(), 14);
    assert_eq!(GrpcCode::UNAVAILABLE.to_string(), "UNAVAILABLE (14)");
    let odd = GrpcCode::new(99);
    assert!(!odd.is_standard());
    assert_eq!(odd.value(), 99);
    assert_eq!(odd.name(), "UNKNOWN");
    assert_eq!(odd.judged(), GrpcCode::UNKNOWN);

    let parses: Vec<(&[u8], Option<GrpcCode>)> = vec![
        (b"0", Some(GrpcCode::OK)),
        (b"14", Some(GrpcCode::UNAVAILABLE)),
        (b" 5 ", Some(GrpcCode::NOT_FOUND)),
        (b"99", Some(GrpcCode::new(99))),
        (b"4294967295", Some(GrpcCode::new(u32::MAX))),
        (b"4294967296", None),
        (b"", None),
        (b"-1", None),
        (b"+1", None),
        (b"1a", None),
        (b"\xff", None),
    ];
    for (bytes, expected) in parses {
        assert_eq!(GrpcCode::parse(bytes), expected, "{bytes:?}");
    }
}

#[test]
fn grpc_code_from_http_status_mapping() {
    let cases = [
        (400, GrpcCode::INTERNAL),
        (401, GrpcCode::UNAUTHENTICATED),
        (403, GrpcCode::PERMISSION_DENIED),
        (404, GrpcCode::UNIMPLEMENTED),
        (429, GrpcCode::UNAVAILABLE),
        (502, GrpcCode::UNAVAILABLE),
        (503, GrpcCode::UNAVAILABLE),
        (504, GrpcCode::UNAVAILABLE),
        (500, GrpcCode::UNKNOWN),
        (418, GrpcCode::UNKNOWN),
        (301, GrpcCode::UNKNOWN),
    ];
    for (status, code) in cases {
        let status = StatusCode::from_u16(status).unwrap();
        assert_eq!(GrpcCode::from_http_status(status), code, "{status}");
    }
}

#[test]
fn grpc_code_set_operations() {
    let default = GrpcCodeSet::SERVER_ERRORS;
    let members: Vec<GrpcCode> = default.iter().collect();
    assert_eq!(
        members,
        vec![
            GrpcCode::UNKNOWN,
            GrpcCode::DEADLINE_EXCEEDED,
            GrpcCode::UNIMPLEMENTED,
            GrpcCode::INTERNAL,
            GrpcCode::UNAVAILABLE,
            GrpcCode::DATA_LOSS,
        ]
    );
    assert!(!default.contains(GrpcCode::OK));
    assert!(!default.contains(GrpcCode::NOT_FOUND));
    assert!(!default.contains(GrpcCode::RESOURCE_EXHAUSTED));
    assert!(default.contains(GrpcCode::new(1000)), "judged as UNKNOWN");

    let custom: GrpcCodeSet = [GrpcCode::NOT_FOUND, GrpcCode::UNAVAILABLE]
        .into_iter()
        .collect();
    assert!(custom.contains(GrpcCode::NOT_FOUND));
    assert!(!custom.contains(GrpcCode::INTERNAL));
    assert!(
        !custom
            .without(GrpcCode::NOT_FOUND)
            .contains(GrpcCode::NOT_FOUND)
    );
    assert!(GrpcCodeSet::EMPTY.is_empty());
    assert_eq!(GrpcCodeSet::default(), GrpcCodeSet::EMPTY);
    assert_eq!(GrpcCodeSet::ALL_ERRORS.iter().count(), 16);
    assert!(!GrpcCodeSet::ALL_ERRORS.contains(GrpcCode::OK));
    assert_eq!(format!("{:?}", custom), r#"{"NOT_FOUND", "UNAVAILABLE"}"#);
}

// ---------------------------------------------------------------------------------------------
// gRPC classification

#[test]
fn grpc_trailers_only_responses_classify_from_headers() {
    let default = GrpcClassifier::new();
    let cases: Vec<(&[u8], Outcome)> = vec![
        (b"0", Outcome::Success),
        (b"5", Outcome::Success), // NOT_FOUND is the caller's problem
        (b"3", Outcome::Success),
        (b"8", Outcome::Success), // RESOURCE_EXHAUSTED not in the default set
        (b"2", grpc_failure(GrpcCode::UNKNOWN, None)),
        (b"4", grpc_failure(GrpcCode::DEADLINE_EXCEEDED, None)),
        (b"12", grpc_failure(GrpcCode::UNIMPLEMENTED, None)),
        (b"13", grpc_failure(GrpcCode::INTERNAL, None)),
        (b"14", grpc_failure(GrpcCode::UNAVAILABLE, None)),
        (b"15", grpc_failure(GrpcCode::DATA_LOSS, None)),
        (b"77", grpc_failure(GrpcCode::new(77), None)),
        // Malformed: always a failure with UNKNOWN.
        (b"", grpc_failure(GrpcCode::UNKNOWN, None)),
        (b"abc", grpc_failure(GrpcCode::UNKNOWN, None)),
        (b"-1", grpc_failure(GrpcCode::UNKNOWN, None)),
        (
            b"99999999999999999999",
            grpc_failure(GrpcCode::UNKNOWN, None),
        ),
        (b"\xc3\x28", grpc_failure(GrpcCode::UNKNOWN, None)),
    ];
    for (value, expected) in cases {
        let res = response(200, &[("grpc-status", value)]);
        let (outcome, needed_eos) = grpc_outcome(default, &res, None);
        assert!(!needed_eos, "{value:?} is in the headers");
        assert_eq!(outcome, expected, "grpc-status {value:?}");
    }
}

#[test]
fn grpc_status_in_trailers() {
    let default = GrpcClassifier::new();
    let res = response(200, &[]);
    let cases: Vec<(Option<HeaderMap>, Outcome)> = vec![
        (Some(headers(&[("grpc-status", b"0")])), Outcome::Success),
        (
            Some(headers(&[("grpc-status", b"14")])),
            grpc_failure(GrpcCode::UNAVAILABLE, None),
        ),
        (Some(headers(&[("grpc-status", b"5")])), Outcome::Success),
        (
            Some(headers(&[("grpc-status", b"x")])),
            grpc_failure(GrpcCode::UNKNOWN, None),
        ),
        // Missing status at end of stream: a protocol violation, INTERNAL.
        (
            Some(HeaderMap::new()),
            grpc_failure(GrpcCode::INTERNAL, None),
        ),
        (None, grpc_failure(GrpcCode::INTERNAL, None)),
    ];
    for (trailers, expected) in cases {
        let (outcome, needed_eos) = grpc_outcome(default, &res, trailers.as_ref());
        assert!(needed_eos);
        assert_eq!(outcome, expected, "trailers {trailers:?}");
    }
}

#[test]
fn grpc_failure_set_is_configurable() {
    let only_not_found =
        GrpcClassifier::new().with_failure_codes(GrpcCodeSet::EMPTY.with(GrpcCode::NOT_FOUND));
    assert_eq!(
        only_not_found.failure_codes(),
        GrpcCodeSet::EMPTY.with(GrpcCode::NOT_FOUND)
    );
    let res = response(200, &[]);
    let classify = |status: &'static [u8]| {
        grpc_outcome(
            only_not_found,
            &res,
            Some(&headers(&[("grpc-status", status)])),
        )
        .0
    };
    assert_eq!(classify(b"5"), grpc_failure(GrpcCode::NOT_FOUND, None));
    assert_eq!(classify(b"14"), Outcome::Success);
    // Protocol violations fail whatever the set says.
    assert_eq!(classify(b"oops"), grpc_failure(GrpcCode::UNKNOWN, None));
    assert_eq!(
        grpc_outcome(only_not_found, &res, None).0,
        grpc_failure(GrpcCode::INTERNAL, None)
    );

    let nothing = GrpcClassifier::new().with_failure_codes(GrpcCodeSet::EMPTY);
    let res = response(200, &[("grpc-status", b"13")]);
    assert_eq!(grpc_outcome(nothing, &res, None).0, Outcome::Success);
}

#[test]
fn grpc_non_200_without_status_maps_http_status() {
    let default = GrpcClassifier::new();
    let cases = [
        (400, grpc_failure(GrpcCode::INTERNAL, None)),
        (401, Outcome::Success), // UNAUTHENTICATED, not in the default set
        (403, Outcome::Success), // PERMISSION_DENIED, not in the default set
        (404, grpc_failure(GrpcCode::UNIMPLEMENTED, None)),
        (429, grpc_failure(GrpcCode::UNAVAILABLE, None)),
        (502, grpc_failure(GrpcCode::UNAVAILABLE, None)),
        (503, grpc_failure(GrpcCode::UNAVAILABLE, None)),
        (504, grpc_failure(GrpcCode::UNAVAILABLE, None)),
        (500, grpc_failure(GrpcCode::UNKNOWN, None)),
    ];
    for (status, expected) in cases {
        let (outcome, needed_eos) = grpc_outcome(default, &response(status, &[]), None);
        assert!(!needed_eos, "{status} decides from the head");
        assert_eq!(outcome, expected, "HTTP {status}");
    }
    // A grpc-status, when present, wins over the HTTP status.
    let res = response(503, &[("grpc-status", b"0")]);
    assert_eq!(grpc_outcome(default, &res, None).0, Outcome::Success);
    let all = GrpcClassifier::new().with_failure_codes(GrpcCodeSet::ALL_ERRORS);
    assert_eq!(
        grpc_outcome(all, &response(401, &[]), None).0,
        grpc_failure(GrpcCode::UNAUTHENTICATED, None)
    );
}

#[test]
fn grpc_retry_pushback() {
    let default = GrpcClassifier::new();
    let ms = |m| Some(Pushback::Delay(Duration::from_millis(m)));
    let cases: Vec<(&[u8], Option<Pushback>)> = vec![
        (b"0", ms(0)),
        (b"250", ms(250)),
        (b" 40 ", ms(40)),
        (b"99999999999999999999999", ms(u64::MAX)),
        (b"-1", Some(Pushback::DoNotRetry)),
        (b"-100", Some(Pushback::DoNotRetry)),
        (b"", Some(Pushback::DoNotRetry)),
        (b"1.5", Some(Pushback::DoNotRetry)),
        (b"soon", Some(Pushback::DoNotRetry)),
        (b"\xff", Some(Pushback::DoNotRetry)),
    ];
    for (value, expected) in cases {
        // Trailers-only: status and pushback both in the headers.
        let res = response(
            200,
            &[("grpc-status", b"14"), ("grpc-retry-pushback-ms", value)],
        );
        let (outcome, _) = grpc_outcome(default, &res, None);
        assert_eq!(
            outcome,
            grpc_failure(GrpcCode::UNAVAILABLE, expected),
            "{value:?}"
        );
        // In the trailers.
        let trailers = headers(&[("grpc-status", b"14"), ("grpc-retry-pushback-ms", value)]);
        let (outcome, _) = grpc_outcome(default, &response(200, &[]), Some(&trailers));
        assert_eq!(
            outcome,
            grpc_failure(GrpcCode::UNAVAILABLE, expected),
            "{value:?}"
        );
    }

    // Pushback in the headers, status in the trailers: the header pushback is kept.
    let res = response(200, &[("grpc-retry-pushback-ms", b"10")]);
    let trailers = headers(&[("grpc-status", b"14")]);
    assert_eq!(
        grpc_outcome(default, &res, Some(&trailers)).0,
        grpc_failure(GrpcCode::UNAVAILABLE, ms(10))
    );
    // ... unless the trailers carry their own.
    let trailers = headers(&[("grpc-status", b"14"), ("grpc-retry-pushback-ms", b"-1")]);
    assert_eq!(
        grpc_outcome(default, &res, Some(&trailers)).0,
        grpc_failure(GrpcCode::UNAVAILABLE, Some(Pushback::DoNotRetry))
    );

    // The outcome exposes the advice.
    let delayed = grpc_failure(GrpcCode::UNAVAILABLE, ms(250));
    assert_eq!(
        delayed.retry_after(SystemTime::now()),
        Some(Duration::from_millis(250))
    );
    assert!(!delayed.retry_forbidden());
    assert!(!delayed.is_overloaded());
    let forbidden = grpc_failure(GrpcCode::UNAVAILABLE, Some(Pushback::DoNotRetry));
    assert!(forbidden.retry_forbidden());
    assert_eq!(forbidden.retry_after(SystemTime::now()), None);
}

#[test]
fn grpc_web_without_trailers_is_not_a_protocol_violation() {
    let web = GrpcClassifier::new().for_grpc_web();
    assert_eq!(
        grpc_outcome(web, &response(200, &[]), None).0,
        Outcome::Success
    );
    let trailers = headers(&[("grpc-status", b"14")]);
    assert_eq!(
        grpc_outcome(web, &response(200, &[]), Some(&trailers)).0,
        grpc_failure(GrpcCode::UNAVAILABLE, None)
    );
    let res = response(200, &[("grpc-status", b"13")]);
    assert_eq!(
        grpc_outcome(web, &res, None).0,
        grpc_failure(GrpcCode::INTERNAL, None)
    );
}

// ---------------------------------------------------------------------------------------------
// Errors instead of responses

#[test]
fn classify_error_finds_the_kind() {
    let boxed = |e: BoxError| e;
    let cases: Vec<(BoxError, ErrorKind)> = vec![
        (boxed(Box::new(Timeout::new())), ErrorKind::Timeout),
        (
            boxed(Box::new(ConnectError::new(Timeout::new()))),
            ErrorKind::Connect,
        ),
        (
            boxed(Box::new(ConnectError::new(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused,
            )))),
            ErrorKind::Connect,
        ),
        (
            boxed(Box::new(UpstreamError::new("reset"))),
            ErrorKind::Upstream { request_sent: true },
        ),
        (
            boxed(Box::new(UpstreamError::unsent("refused stream"))),
            ErrorKind::Upstream {
                request_sent: false,
            },
        ),
        (boxed(Box::new(CircuitOpen::new())), ErrorKind::CircuitOpen),
        (
            boxed(Box::new(std::io::Error::from(std::io::ErrorKind::TimedOut))),
            ErrorKind::Timeout,
        ),
        // An io::Error wrapping a mesh failure is looked through.
        (
            boxed(Box::new(std::io::Error::other(Timeout::new()))),
            ErrorKind::Timeout,
        ),
        (
            boxed(Box::new(std::io::Error::from(
                std::io::ErrorKind::BrokenPipe,
            ))),
            ErrorKind::Transport,
        ),
        (boxed("something else".into()), ErrorKind::Transport),
    ];
    for (err, kind) in cases {
        let msg = err.to_string();
        assert_eq!(ErrorKind::of(&err), kind, "{msg}");
        let class = HttpClassifier::new().classify_error(&err);
        assert_eq!(class, FailureClass::Error(kind), "{msg}");
        let class = GrpcClassifier::new().classify_error(&err);
        assert_eq!(class, FailureClass::Error(kind), "{msg}");
    }

    // Concrete error types are recognised without boxing.
    assert_eq!(
        HttpClassifier::new().classify_error(&Timeout::new()),
        FailureClass::Error(ErrorKind::Timeout)
    );
    assert_eq!(
        HttpClassifier::new().classify_error(&ConnectError::new("refused")),
        FailureClass::Error(ErrorKind::Connect)
    );
    // A type we do not know is a transport error, and nothing is allocated to say so.
    assert_eq!(
        HttpClassifier::new().classify_error(&"plain string"),
        FailureClass::Error(ErrorKind::Transport)
    );
}

#[tokio::test(start_paused = true)]
async fn classify_error_recognises_tokio_elapsed() {
    let elapsed = tokio::time::timeout(Duration::from_millis(1), std::future::pending::<()>())
        .await
        .expect_err("pending never completes");
    assert_eq!(ErrorKind::of(&elapsed), ErrorKind::Timeout);
}

#[test]
fn eos_classifier_classifies_errors_too() {
    let ClassifiedResponse::RequiresEos(eos) =
        GrpcClassifier::new().classify_response(&response(200, &[]))
    else {
        panic!("status must come from the trailers");
    };
    let err: BoxError = Box::new(UpstreamError::new("stream reset"));
    assert_eq!(
        eos.classify_error(&err),
        FailureClass::Error(ErrorKind::Upstream { request_sent: true })
    );
}

#[test]
fn failure_kinds_and_display() {
    let cases = [
        (
            status_failure(500),
            "http_status",
            "failure: HTTP status 500 Internal Server Error",
        ),
        (
            overloaded(429, Some(RetryAfter::Delay(Duration::from_secs(3)))),
            "overloaded",
            "failure: overloaded (HTTP status 429 Too Many Requests, retry after 3s)",
        ),
        (
            overloaded(503, Some(RetryAfter::Date(example_date()))),
            "overloaded",
            "failure: overloaded (HTTP status 503 Service Unavailable, retry after Sun, 06 Nov 1994 08:49:37 GMT)",
        ),
        (
            grpc_failure(
                GrpcCode::UNAVAILABLE,
                Some(Pushback::Delay(Duration::from_millis(5))),
            ),
            "grpc_status",
            "failure: gRPC status UNAVAILABLE (14), pushback 5 ms",
        ),
        (
            Outcome::Failure(FailureClass::Error(ErrorKind::CircuitOpen)),
            "circuit_open",
            "failure: error: circuit_open",
        ),
        (Outcome::Success, "success", "success"),
    ];
    for (outcome, kind, display) in cases {
        assert_eq!(outcome.kind(), kind);
        assert_eq!(outcome.to_string(), display);
    }
    let class = FailureClass::Overloaded {
        status: StatusCode::TOO_MANY_REQUESTS,
        retry_after: None,
    };
    assert_eq!(class.status(), Some(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(class.grpc_code(), None);
    assert_eq!(class.error_kind(), None);
    let outcome = Outcome::from(Err(class.clone()));
    assert_eq!(outcome.failure(), Some(&class));
    assert_eq!(outcome.into_result(), Err(class));
    assert_eq!(Outcome::from(Ok(())).into_result(), Ok(()));
}

// ---------------------------------------------------------------------------------------------
// The per-request choice

#[test]
fn mesh_classifier_picks_by_content_type() {
    let cases: Vec<(Option<&[u8]>, Option<bool>)> = vec![
        // (content-type, Some(web?) for gRPC, None for HTTP)
        (None, None),
        (Some(b"application/json"), None),
        (Some(b"text/html"), None),
        (Some(b"application/grpc"), Some(false)),
        (Some(b"application/grpc+proto"), Some(false)),
        (Some(b"application/grpc+json"), Some(false)),
        (Some(b"application/grpc; charset=utf-8"), Some(false)),
        (Some(b"Application/GRPC"), Some(false)),
        (Some(b"application/grpc-web"), Some(true)),
        (Some(b"application/grpc-web+proto"), Some(true)),
        (Some(b"application/grpc-web-text"), Some(true)),
        (Some(b"application/grpc-web-text+proto"), Some(true)),
        (Some(b"application/grpcx"), None),
        (Some(b"application/grpc-webby"), None),
        (Some(b"application/gr"), None),
        (Some(b"\xff\xfe"), None),
    ];
    let mesh = MeshClassifier::new();
    for (content_type, expected) in cases {
        // gRPC calls are POSTs; any other method is HTTP whatever its content type.
        let mut req = Request::post("/").body(()).unwrap();
        if let Some(ct) = content_type {
            req.headers_mut()
                .insert("content-type", HeaderValue::from_bytes(ct).unwrap());
        }
        let mut get = Request::get("/").body(()).unwrap();
        *get.headers_mut() = req.headers().clone();
        assert!(
            !mesh.make_classifier(&get).is_grpc(),
            "GET {content_type:?}"
        );
        let classifier = mesh.make_classifier(&req);
        assert_eq!(classifier.is_grpc(), expected.is_some(), "{content_type:?}");

        // Behaviour matches: a 200 without grpc-status waits for EOS only for gRPC; at EOS without
        // trailers, native gRPC fails and gRPC-Web succeeds.
        match (classifier.classify_response(&response(200, &[])), expected) {
            (ClassifiedResponse::Ready(Ok(())), None) => {}
            (ClassifiedResponse::RequiresEos(eos), Some(web)) => {
                assert_eq!(eos.classify_eos(None).is_ok(), web, "{content_type:?}");
            }
            (other, _) => panic!("{content_type:?}: unexpected {other:?}"),
        }
    }
}

#[test]
fn mesh_classifier_uses_the_configured_grpc_classifier() {
    let grpc =
        GrpcClassifier::new().with_failure_codes(GrpcCodeSet::EMPTY.with(GrpcCode::NOT_FOUND));
    let mesh = MeshClassifier::new().with_grpc(grpc);
    assert_eq!(mesh.grpc(), &grpc);
    let req = Request::post("/pkg.Svc/Get")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let res = response(200, &[("grpc-status", b"5")]);
    assert!(matches!(
        mesh.make_classifier(&req).classify_response(&res),
        ClassifiedResponse::Ready(Err(FailureClass::Grpc {
            code: GrpcCode::NOT_FOUND,
            ..
        }))
    ));
    // HTTP requests are unaffected.
    let req = Request::get("/").body(()).unwrap();
    let classifier = mesh.make_classifier(&req);
    assert!(matches!(
        classifier.classify_response(&response(503, &[("retry-after", b"1")])),
        ClassifiedResponse::Ready(Err(FailureClass::Overloaded { .. }))
    ));
    let err: BoxError = Box::new(Timeout::new());
    assert_eq!(
        classifier.classify_error(&err),
        FailureClass::Error(ErrorKind::Timeout)
    );
}

// ---------------------------------------------------------------------------------------------
// Arbitrary input never panics

proptest! {
    #[test]
    fn arbitrary_header_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        status in 100u16..1000,
        grpc in any::<bool>(),
    ) {
        let _ = RetryAfter::parse(&bytes);
        let _ = Pushback::parse(&bytes);
        let _ = GrpcCode::parse(&bytes);
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let mut map = HeaderMap::new();
            map.insert("retry-after", value.clone());
            map.insert("grpc-status", value.clone());
            map.insert("grpc-retry-pushback-ms", value.clone());
            let mut res = Response::new(());
            *res.status_mut() = StatusCode::from_u16(status).unwrap();
            *res.headers_mut() = map.clone();

            let mut req = Request::new(());
            req.headers_mut().insert("content-type", if grpc {
                HeaderValue::from_static("application/grpc")
            } else {
                value
            });
            let outcome = match MeshClassifier::new().make_classifier(&req).classify_response(&res) {
                ClassifiedResponse::Ready(result) => Outcome::from(result),
                ClassifiedResponse::RequiresEos(eos) => Outcome::from(eos.classify_eos(Some(&map))),
            };
            let _ = outcome.retry_after(SystemTime::now());
            let _ = outcome.to_string();
            // 5xx on plain HTTP always fails.
            if !grpc && status >= 500 && !MeshClassifier::new().make_classifier(&req).is_grpc() {
                prop_assert!(outcome.is_failure());
            }
        }
    }

    #[test]
    fn delta_seconds_round_trip(secs in 0u64..(1 << 31)) {
        prop_assert_eq!(
            RetryAfter::parse(secs.to_string().as_bytes()),
            Some(RetryAfter::Delay(Duration::from_secs(secs)))
        );
    }

    #[test]
    fn http_dates_round_trip(secs in 0u64..253_402_300_799) {
        let at = UNIX_EPOCH + Duration::from_secs(secs);
        let text = httpdate_fmt(at);
        prop_assert_eq!(RetryAfter::parse(text.as_bytes()), Some(RetryAfter::Date(at)));
    }
}

/// IMF-fixdate formatting through the Display of the failure class (keeps httpdate out of the
/// test's dependencies).
fn httpdate_fmt(at: SystemTime) -> String {
    let class = FailureClass::Overloaded {
        status: StatusCode::SERVICE_UNAVAILABLE,
        retry_after: Some(RetryAfter::Date(at)),
    };
    let text = class.to_string();
    let start = text.find("retry after ").expect("date shown") + "retry after ".len();
    text[start..text.len() - 1].to_owned()
}
