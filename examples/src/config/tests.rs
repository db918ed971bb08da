use std::path::{Path, PathBuf};

use super::{ConfigError, Discovery, parse};

mod retry;
mod xds;

/// A directory with empty identity files (existence is all the loader checks).
fn dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mesh-sidecar-config-{}-{}",
        std::process::id(),
        next_dir_number()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    for f in ["cert.pem", "key.pem", "bundle.pem"] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    dir
}

fn next_dir_number() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

const BASE: &str = r#"
[listeners]
inbound = "127.0.0.1:4143"
outbound = "127.0.0.1:4140"
admin = "127.0.0.1:4191"

[app]
address = "127.0.0.1:8080"

[identity]
cert = "cert.pem"
key = "key.pem"
bundles = { "prod.example" = "bundle.pem" }
"#;

fn check(extra: &str) -> Result<super::Sidecar, ConfigError> {
    let dir = dir();
    let result = parse(&format!("{BASE}{extra}"), &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn invalid(extra: &str) -> (String, String) {
    match check(extra) {
        Err(ConfigError::Invalid { key, reason }) => (key, reason),
        other => panic!("expected an invalid key, got {other:?}"),
    }
}

fn syntax(text: &str) -> String {
    match parse(text, Path::new("/")) {
        Err(ConfigError::Syntax(message)) => message,
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

const SERVICE: &str = r#"
[services.orders]
authorities = ["Orders.Svc:80", "orders"]
identity = "spiffe://prod.example/orders"
discovery = { kind = "static", endpoints = [{ address = "10.0.0.1:4143", zone = "z1" }] }
"#;

#[test]
fn a_full_config_resolves() {
    let sidecar = check(&format!(
        "{SERVICE}\n[[authorization.rules]]\naction = \"allow\"\ntrust_domains = [\"prod.example\"]\nmethods = [\"GET\"]\n"
    ))
    .unwrap();
    assert_eq!(sidecar.inbound.port(), 4143);
    assert_eq!(sidecar.services.len(), 1);
    let orders = &sidecar.services[0];
    assert_eq!(orders.authorities, ["orders.svc:80", "orders"]);
    let Discovery::Static(endpoints) = &orders.discovery else {
        panic!("static discovery expected");
    };
    assert_eq!(
        endpoints[0].identity().map(|id| id.as_str()),
        Some("spiffe://prod.example/orders")
    );
    assert_eq!(orders.timeout.as_millis(), 15_000);
}

#[test]
fn recheck_connections_on_bundle_change_is_off_unless_set() {
    assert!(
        !check("")
            .unwrap()
            .identity
            .recheck_connections_on_bundle_change
    );
    let on = check("recheck_connections_on_bundle_change = true\n").unwrap();
    assert!(on.identity.recheck_connections_on_bundle_change);
    let message = syntax(&format!(
        "{BASE}recheck_connections_on_bundle_change = \"yes\"\n"
    ));
    assert!(
        message.contains("recheck_connections_on_bundle_change"),
        "{message}"
    );
}

#[test]
fn an_unknown_key_is_named() {
    let message = syntax(&format!("{BASE}\n[app2]\nx = 1\n"));
    assert!(message.contains("unknown field `app2`"), "{message}");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn a_missing_key_is_named() {
    let message = syntax("[listeners]\ninbound = \"127.0.0.1:1\"\n");
    assert!(message.contains("missing field"), "{message}");
}

#[test]
fn a_bad_address_names_the_key() {
    let dir = dir();
    let text = BASE.replace("127.0.0.1:8080", "localhost");
    match parse(&text, &dir) {
        Err(ConfigError::Invalid { key, reason }) => {
            assert_eq!(key, "app.address");
            assert!(reason.contains("\"localhost\""), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_missing_identity_file_names_the_key() {
    let dir = dir();
    std::fs::remove_file(dir.join("key.pem")).unwrap();
    let err = parse(BASE, &dir).unwrap_err();
    assert_eq!(err.key(), Some("identity.key"));
    assert!(err.to_string().contains("does not exist"), "{err}");
}

#[test]
fn an_unknown_discovery_kind_is_refused() {
    let message = syntax(&format!(
        "{BASE}\n[services.a]\nauthorities = [\"a\"]\ndiscovery = {{ kind = \"consul\" }}\n"
    ));
    assert!(message.contains("unknown variant `consul`"), "{message}");
}

#[test]
fn semantic_errors_name_the_key_path() {
    let cases = [
        (
            SERVICE.replace("10.0.0.1:4143", "nope"),
            "services.orders.discovery.endpoints[0].address",
        ),
        (
            format!("{SERVICE}[services.orders.retry]\nmax_attempts = 0\n"),
            "services.orders.retry",
        ),
        (
            format!("{SERVICE}[services.orders.budget]\nratio = -1.0\n"),
            "services.orders.budget.ratio",
        ),
        (
            format!("{SERVICE}[services.orders.ejection]\nmax_ejected_share = 2.0\n"),
            "services.orders.ejection.max_ejected_share",
        ),
        (
            SERVICE.replace("spiffe://prod.example/orders", "orders"),
            "services.orders.identity",
        ),
        (
            format!("{SERVICE}[services.orders.pool]\nmax_connections = 0\n"),
            "services.orders.pool.max_connections",
        ),
        (
            format!("{SERVICE}[services.orders.pool]\nwait_timeout_ms = 3000\n"),
            "services.orders.pool.wait_timeout_ms",
        ),
        (
            format!("{SERVICE}[services.copy]\nauthorities = [\"ORDERS\"]\ndiscovery = {{ kind = \"dns\", host = \"orders.internal\", port = 80, nameserver = \"127.0.0.1:53\" }}\n"),
            "services.orders.authorities[1]",
        ),
        (
            "[[authorization.rules]]\naction = \"deny\"\npath_prefix = \"admin\"\n".to_owned(),
            "authorization.rules[0].path_prefix",
        ),
        (
            "[services.a]\nauthorities = [\"a\"]\ndiscovery = { kind = \"dns\", host = \"a.internal\", port = 0, nameserver = \"127.0.0.1:53\" }\n".to_owned(),
            "services.a.discovery.port",
        ),
    ];
    for (extra, expected) in cases {
        let (key, reason) = invalid(&extra);
        assert_eq!(key, expected, "{reason}");
        assert!(!reason.is_empty());
    }
}

#[test]
fn a_plaintext_service_resolves_with_its_protocol() {
    let sidecar = check(
        "[services.web]\nauthorities = [\"web\"]\ntransport = \"plaintext\"\nprotocol = \"http1\"\n\
         discovery = { kind = \"static\", endpoints = [{ address = \"127.0.0.1:8081\" }] }\n",
    )
    .unwrap();
    let web = &sidecar.services[0];
    assert_eq!(web.transport, super::Transport::Plaintext);
    assert_eq!(web.protocol, mesh_core::client::Protocol::Http1);
    // Without the keys: mTLS over HTTP/2, what peer sidecars speak.
    let sidecar = check(SERVICE).unwrap();
    assert_eq!(sidecar.services[0].transport, super::Transport::Mtls);
    assert_eq!(
        sidecar.services[0].protocol,
        mesh_core::client::Protocol::Http2
    );
}

#[test]
fn a_plaintext_service_with_an_identity_is_refused() {
    let (key, reason) = invalid(&format!("{SERVICE}transport = \"plaintext\"\n"));
    assert_eq!(key, "services.orders.transport");
    assert!(reason.contains("identity"), "{reason}");
    let (key, _) = invalid(
        "[services.web]\nauthorities = [\"web\"]\ntransport = \"plaintext\"\n\
         discovery = { kind = \"static\", endpoints = [{ address = \"127.0.0.1:8081\", identity = \"spiffe://prod.example/web\" }] }\n",
    );
    assert_eq!(key, "services.web.transport");
    let message = syntax(&format!(
        "{BASE}[services.web]\nauthorities = [\"web\"]\ntransport = \"tls\"\n\
         discovery = {{ kind = \"static\", endpoints = [{{ address = \"127.0.0.1:8081\" }}] }}\n"
    ));
    assert!(message.contains("unknown variant `tls`"), "{message}");
}

#[test]
fn the_default_ejection_can_take_one_of_two_endpoints_out() {
    // With two endpoints, a share below 0.5 rounds down to zero ejections: a dead endpoint of a
    // small service would stay in rotation.
    let sidecar = check(SERVICE).unwrap();
    let share = sidecar.services[0].outliers.get_max_ejected_share();
    assert!((share * 2.0).floor() >= 1.0, "{share}");
}

#[test]
fn file_discovery_takes_an_interval() {
    let file = |extra: &str| {
        format!(
            "[services.a]\nauthorities = [\"a\"]\ndiscovery = {{ kind = \"file\", path = \"bundle.pem\"{extra} }}\n"
        )
    };
    let interval = |sidecar: &super::Sidecar| match &sidecar.services[0].discovery {
        Discovery::File { interval, .. } => *interval,
        other => panic!("file discovery expected, got {other:?}"),
    };
    assert_eq!(interval(&check(&file("")).unwrap()).as_millis(), 5000);
    assert_eq!(
        interval(&check(&file(", interval_ms = 250")).unwrap()).as_millis(),
        250
    );
    let (key, reason) = invalid(&file(", interval_ms = 10"));
    assert_eq!(key, "services.a.discovery.interval_ms");
    assert!(reason.contains("100"), "{reason}");
    let (key, _) = invalid(
        "[services.a]\nauthorities = [\"a\"]\ndiscovery = { kind = \"file\", path = \"missing.toml\" }\n",
    );
    assert_eq!(key, "services.a.discovery.path");
}

#[test]
fn the_inbound_limit_is_fixed_by_default() {
    use mesh_retry::limit::LimitAlgorithm;
    let sidecar = check("").unwrap();
    assert_eq!(sidecar.app.max_concurrency, 1024);
    assert_eq!(sidecar.app.limit, LimitAlgorithm::Fixed(1024));
    // The key alone, as before the adaptive option existed.
    let text = BASE.replace(
        "address = \"127.0.0.1:8080\"",
        "address = \"127.0.0.1:8080\"\nmax_concurrency = 7",
    );
    let dir = dir();
    let sidecar = parse(&text, &dir).unwrap();
    assert_eq!(sidecar.app.limit, LimitAlgorithm::Fixed(7));
}

/// `BASE` with `lines` added to its `[app]` table.
fn with_app(lines: &str) -> Result<super::Sidecar, ConfigError> {
    let dir = dir();
    let text = BASE.replace(
        "address = \"127.0.0.1:8080\"",
        &format!("address = \"127.0.0.1:8080\"\n{lines}"),
    );
    let result = parse(&text, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[test]
fn a_vegas_limit_resolves_with_its_defaults_and_bounds() {
    use mesh_retry::limit::LimitAlgorithm;
    let vegas = |sidecar: super::Sidecar| match sidecar.app.limit {
        LimitAlgorithm::Vegas(vegas) => vegas,
        other => panic!("vegas expected, got {other:?}"),
    };
    let defaults = vegas(with_app("limit = \"vegas\"").unwrap());
    assert_eq!(defaults.get_max_limit(), 1024);
    assert_eq!(
        (defaults.get_initial_limit(), defaults.get_min_limit()),
        (20, 3)
    );
    assert_eq!(defaults.get_probe_interval().as_secs(), 60);
    assert_eq!(defaults.get_probe_samples(), 50);
    // The defaults stay within a small `max_concurrency`.
    let small = vegas(with_app("limit = \"vegas\"\nmax_concurrency = 2").unwrap());
    assert_eq!(
        (
            small.get_initial_limit(),
            small.get_min_limit(),
            small.get_max_limit()
        ),
        (2, 2, 2)
    );
    let set = vegas(
        with_app(
            "limit = \"vegas\"\nmax_concurrency = 100\n[app.vegas]\ninitial_limit = 10\nmin_limit = 5\nprobe_interval_ms = 500\nprobe_samples = 7",
        )
        .unwrap(),
    );
    assert_eq!(
        (
            set.get_initial_limit(),
            set.get_min_limit(),
            set.get_max_limit()
        ),
        (10, 5, 100)
    );
    assert_eq!(set.get_probe_interval().as_millis(), 500);
    assert_eq!(set.get_probe_samples(), 7);
}

#[test]
fn a_bad_limit_names_the_key() {
    let cases = [
        ("max_concurrency = 0", "app.max_concurrency"),
        (
            "limit = \"vegas\"\nmax_concurrency = 0",
            "app.max_concurrency",
        ),
        ("[app.vegas]\nmin_limit = 2", "app.vegas"),
        (
            "limit = \"vegas\"\n[app.vegas]\nmin_limit = 0",
            "app.vegas.min_limit",
        ),
        (
            "limit = \"vegas\"\nmax_concurrency = 10\n[app.vegas]\nmin_limit = 11",
            "app.max_concurrency",
        ),
        (
            "limit = \"vegas\"\nmax_concurrency = 10\n[app.vegas]\ninitial_limit = 50",
            "app.vegas.initial_limit",
        ),
        (
            "limit = \"vegas\"\n[app.vegas]\nprobe_interval_ms = 0",
            "app.vegas.probe_interval_ms",
        ),
        (
            "limit = \"vegas\"\n[app.vegas]\nprobe_samples = 0",
            "app.vegas.probe_samples",
        ),
    ];
    for (lines, expected) in cases {
        match with_app(lines) {
            Err(ConfigError::Invalid { key, reason }) => {
                assert_eq!(key, expected, "{lines}: {reason}");
                assert!(!reason.is_empty());
            }
            other => panic!("{lines}: expected an invalid key, got {other:?}"),
        }
    }
    let dir = dir();
    let text = BASE.replace(
        "address = \"127.0.0.1:8080\"",
        "address = \"127.0.0.1:8080\"\nlimit = \"gradient\"",
    );
    match parse(&text, &dir) {
        Err(ConfigError::Syntax(message)) => {
            assert!(message.contains("unknown variant `gradient`"), "{message}");
            assert!(message.contains("limit"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_readme_sample_is_a_valid_configuration() {
    let readme = include_str!("../../README.md");
    let start = readme
        .find("```toml\n[listeners]")
        .expect("the README has a sidecar sample")
        + "```toml\n".len();
    let len = readme[start..].find("```").expect("the sample ends");
    let dir = dir();
    for f in [
        "svid.pem",
        "svid-key.pem",
        "prod-roots.pem",
        "partner-roots.pem",
    ] {
        std::fs::write(dir.join(f), "").unwrap();
    }
    // DNS discovery needs a name server; the sample leaves it to /etc/resolv.conf.
    let sample = readme[start..start + len].replace(
        "port = 4143 }",
        "port = 4143, nameserver = \"127.0.0.1:53\" }",
    );
    let sidecar = parse(&sample, &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(sidecar.services.len(), 1);
    assert_eq!(
        sidecar.services[0].authorities,
        ["orders", "orders.svc:8080"]
    );
}

#[test]
fn the_http1_pool_is_set_per_service() {
    let sidecar = check(
        "[services.web]\nauthorities = [\"web\"]\ntransport = \"plaintext\"\nprotocol = \"http1\"\n\
         discovery = { kind = \"static\", endpoints = [{ address = \"127.0.0.1:8081\" }] }\n\
         pool = { max_connections = 256, wait_timeout_ms = 250 }\n",
    )
    .unwrap();
    let web = &sidecar.services[0];
    assert_eq!(web.max_connections, 256);
    assert_eq!(web.pool_wait_timeout, std::time::Duration::from_millis(250));
    // Without the table: mesh-core's defaults.
    let sidecar = check(SERVICE).unwrap();
    assert_eq!(sidecar.services[0].max_connections, 64);
    assert_eq!(
        sidecar.services[0].pool_wait_timeout,
        std::time::Duration::from_secs(1)
    );
}

#[test]
fn an_unquoted_dotted_trust_domain_is_refused_with_the_advice_to_quote_it() {
    let text = BASE.replace(
        "bundles = { \"prod.example\" = \"bundle.pem\" }",
        "bundles = { prod.example = \"bundle.pem\" }",
    );
    let message = syntax(&text);
    assert!(message.contains("`identity.bundles`"), "{message}");
    assert!(
        message.contains("quote the trust domain: \"prod.example\" = …"),
        "{message}"
    );
    // The table form makes the same nested keys.
    let text = BASE.replace(
        "bundles = { \"prod.example\" = \"bundle.pem\" }",
        "[identity.bundles]\nprod.eu.example = \"bundle.pem\"",
    );
    let message = syntax(&text);
    assert!(message.contains("\"prod.eu.example\" = …"), "{message}");
}

#[test]
fn service_name_and_otlp_are_read() {
    let sidecar = check("").unwrap();
    assert_eq!(
        sidecar.telemetry,
        crate::telemetry::TelemetryConfig::default()
    );
    let text = format!(
        "service_name = \"orders\"\n{BASE}[otlp]\nendpoint = \"http://127.0.0.1:4318\"\ninterval_ms = 500\n"
    );
    let dir = dir();
    let sidecar = parse(&text, &dir).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(sidecar.telemetry.service_name.as_deref(), Some("orders"));
    let otlp = sidecar.telemetry.otlp.unwrap();
    assert_eq!(otlp.interval, std::time::Duration::from_millis(500));
    let (key, _) = invalid("[otlp]\nendpoint = \"localhost:4318\"\n");
    assert_eq!(key, "otlp.endpoint");
}
