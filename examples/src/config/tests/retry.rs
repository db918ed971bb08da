//! The `[services.NAME.retry]` keys that decide which methods are retried.

use http::{Method, Request};

use super::{SERVICE, check, invalid};

/// The orders service's retry policy with `lines` in its retry table.
fn retry(lines: &str) -> mesh_retry::retry::RetryPolicy {
    let sidecar = check(&format!("{SERVICE}[services.orders.retry]\n{lines}")).unwrap();
    sidecar.services[0].retry.clone()
}

fn request(method: Method) -> Request<()> {
    Request::builder().method(method).body(()).unwrap()
}

#[test]
fn idempotent_methods_only_by_default() {
    let policy = retry("");
    assert!(policy.get_idempotent_only());
    assert!(policy.get_retryable_methods().is_empty());
    assert!(policy.is_retryable(&request(Method::PUT)));
    assert!(!policy.is_retryable(&request(Method::POST)));
}

#[test]
fn idempotent_only_false_retries_every_method() {
    let policy = retry("idempotent_only = false\n");
    assert!(!policy.get_idempotent_only());
    assert!(policy.is_retryable(&request(Method::POST)));
    assert!(policy.is_retryable(&request(Method::PATCH)));
}

#[test]
fn listed_methods_are_retried_too() {
    let policy = retry("methods = [\"POST\", \"PURGE\"]\n");
    assert!(policy.get_idempotent_only());
    assert!(policy.is_retryable(&request(Method::POST)));
    assert!(policy.is_retryable(&request(Method::from_bytes(b"PURGE").unwrap())));
    assert!(policy.is_retryable(&request(Method::GET)));
    assert!(!policy.is_retryable(&request(Method::PATCH)));
}

#[test]
fn bad_methods_name_the_key() {
    let cases = [
        (
            "methods = [\"GET\", \"NOT A METHOD\"]\n",
            "services.orders.retry.methods[1]",
            "not an HTTP method",
        ),
        (
            "methods = [\"post\"]\n",
            "services.orders.retry.methods[0]",
            "case-sensitive",
        ),
        (
            "idempotent_only = false\nmethods = [\"POST\"]\n",
            "services.orders.retry.methods",
            "idempotent_only = false",
        ),
    ];
    for (lines, expected_key, expected_reason) in cases {
        let (key, reason) = invalid(&format!("{SERVICE}[services.orders.retry]\n{lines}"));
        assert_eq!(key, expected_key, "{reason}");
        assert!(reason.contains(expected_reason), "{reason}");
    }
}

#[test]
fn a_mistyped_retry_key_is_named() {
    let err = check(&format!(
        "{SERVICE}[services.orders.retry]\nidempotent = false\n"
    ))
    .unwrap_err();
    assert!(err.to_string().contains("idempotent"), "{err}");
}
