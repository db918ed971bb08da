use super::*;

#[test]
fn accepts_valid_ids_as_given() {
    for input in [
        "spiffe://example.org",
        "spiffe://example.org/workload",
        "spiffe://example.org/ns/a_b-c.d/sa/X1",
        "spiffe://example.org/Path/UPPER",
        "spiffe://a-b_c.9/...x/.y",
    ] {
        let id = SpiffeId::new(input).unwrap();
        assert_eq!(id.as_str(), input);
        assert_eq!(id.to_string().parse::<SpiffeId>().unwrap(), id);
    }
}

#[test]
fn rejects_upper_case_scheme_and_trust_domain() {
    use SpiffeIdError::*;
    for (input, expected) in [
        ("SPIFFE://example.org/a", UppercaseScheme),
        ("Spiffe://example.org", UppercaseScheme),
        ("spiffE://example.org/a", UppercaseScheme),
        (
            "spiffe://EXAMPLE.org/Path",
            UppercaseTrustDomain { byte: b'E' },
        ),
        (
            "spiffe://example.Org/a",
            UppercaseTrustDomain { byte: b'O' },
        ),
        // The scheme is checked first.
        ("SPIFFE://EXAMPLE.org/Path", UppercaseScheme),
    ] {
        assert_eq!(SpiffeId::new(input), Err(expected), "{input:?}");
    }
    assert_eq!(
        TrustDomain::new("Prod.Example"),
        Err(UppercaseTrustDomain { byte: b'P' })
    );
    assert_eq!(
        TrustDomain::from_id("spiffe://TD/x"),
        Err(UppercaseTrustDomain { byte: b'T' })
    );
    // Other bytes keep their own error.
    assert_eq!(
        TrustDomain::new("prod:1"),
        Err(BadTrustDomainChar { byte: b':' })
    );
}

#[test]
fn rejects_each_rule_with_its_error() {
    use SpiffeIdError::*;
    for (input, expected) in [
        ("https://example.org/a", WrongScheme),
        ("spiffe:/example.org", WrongScheme),
        ("", WrongScheme),
        ("spiffe://", EmptyTrustDomain),
        ("spiffe:///path", EmptyTrustDomain),
        (
            "spiffe://example.org:8443/a",
            BadTrustDomainChar { byte: b':' },
        ),
        (
            "spiffe://user@example.org/a",
            BadTrustDomainChar { byte: b'@' },
        ),
        (
            "spiffe://ex%41mple.org/a",
            BadTrustDomainChar { byte: b'%' },
        ),
        ("spiffe://example.org/", EmptySegment),
        ("spiffe://example.org/a//b", EmptySegment),
        ("spiffe://example.org/a/", EmptySegment),
        ("spiffe://example.org/./a", DotSegment),
        ("spiffe://example.org/a/..", DotSegment),
        ("spiffe://example.org/a?x=1", BadPathChar { byte: b'?' }),
        ("spiffe://example.org/a#frag", BadPathChar { byte: b'#' }),
        ("spiffe://example.org/a%20b", BadPathChar { byte: b'%' }),
        ("spiffe://example.org/caf\u{e9}", BadPathChar { byte: 0xc3 }),
    ] {
        assert_eq!(SpiffeId::new(input), Err(expected), "{input:?}");
    }
}

#[test]
fn length_limits() {
    let domain = "a".repeat(MAX_TRUST_DOMAIN_LEN);
    assert!(TrustDomain::new(&domain).is_ok());
    assert_eq!(
        TrustDomain::new(&format!("{domain}a")),
        Err(SpiffeIdError::TrustDomainTooLong { len: 256 })
    );
    // Exactly 2048 bytes is accepted; one more is not.
    let head = format!("spiffe://{domain}/");
    let exact = format!("{head}{}", "p".repeat(MAX_SPIFFE_ID_LEN - head.len()));
    assert_eq!(SpiffeId::new(&exact).unwrap().as_str().len(), 2048);
    assert_eq!(
        SpiffeId::new(&format!("{exact}p")),
        Err(SpiffeIdError::TooLong { len: 2049 })
    );
}

#[test]
fn parts_segments_and_prefixes() {
    let td = TrustDomain::new("prod.example").unwrap();
    let id = SpiffeId::from_parts(&td, "/ns/shop/sa/web").unwrap();
    assert_eq!(id.trust_domain(), &td);
    assert_eq!(
        id.segments().collect::<Vec<_>>(),
        ["ns", "shop", "sa", "web"]
    );
    for (prefix, expected) in [
        ("", true),
        ("/", true),
        ("/ns", true),
        ("/ns/shop", true),
        ("/ns/shop/", true),
        ("/ns/shop/sa/web", true),
        ("/ns/sho", false),
        ("/ns/shop/sa/web/x", false),
        ("/NS", false),
    ] {
        assert_eq!(id.path_starts_with(prefix), expected, "{prefix:?}");
    }
    let root = SpiffeId::new("spiffe://td").unwrap();
    assert_eq!(root.path(), "");
    assert_eq!(root.segments().count(), 0);
    assert_eq!(
        TrustDomain::from_id("spiffe://td/x").unwrap().as_str(),
        "td"
    );
}

#[test]
fn converts_to_and_from_mesh_core_identity() {
    let id = SpiffeId::new("spiffe://td/a").unwrap();
    let identity = mesh_core::Identity::from(&id);
    assert_eq!(SpiffeId::try_from(&identity).unwrap(), id);
    let loose = mesh_core::Identity::new("spiffe://td/a?b").unwrap();
    assert!(SpiffeId::try_from(&loose).is_err());
}
