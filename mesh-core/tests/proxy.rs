//! Table tests of `mesh_core::proxy`.

use std::net::{IpAddr, SocketAddr};

use http::header::{HOST, HeaderMap, HeaderName, HeaderValue};
use http::uri::Scheme;
use http::{Request, Version};
use mesh_core::proxy::{
    ForwardedElement, ForwardedNode, ViaName, append_via, remove_hop_by_hop_headers,
    set_endpoint_authority, socket_authority,
};

/// A header map from `(name, value)` lines, repeated names appended in order.
fn headers(lines: RawLines<'_>) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in lines {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_bytes(value).unwrap(),
        );
    }
    map
}

/// The remaining `(name, value)` lines, sorted by name for comparison.
fn lines(map: &HeaderMap) -> Vec<(String, String)> {
    let mut out: Vec<_> = map
        .iter()
        .map(|(n, v)| {
            (
                n.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

/// Header lines as given: name and raw value.
type RawLines<'a> = &'a [(&'a str, &'a [u8])];

/// One hop-by-hop case: what it checks, the headers before, the headers expected after.
type HopCase<'a> = (&'a str, RawLines<'a>, &'a [(&'a str, &'a str)]);

#[test]
fn hop_by_hop_removal() {
    let cases: &[HopCase<'_>] = &[
        (
            "Connection names custom headers, any case, with spaces and empty tokens",
            &[
                ("connection", b" X-Trace-Hop ,, KEEP-ALIVE , x-other"),
                ("x-trace-hop", b"1"),
                ("x-other", b"2"),
                ("keep-alive", b"timeout=5"),
                ("accept", b"*/*"),
            ],
            &[("accept", "*/*")],
        ),
        (
            "several Connection lines",
            &[
                ("connection", b"x-a"),
                ("connection", b"x-b"),
                ("x-a", b"1"),
                ("x-b", b"2"),
                ("x-c", b"3"),
            ],
            &[("x-c", "3")],
        ),
        (
            "garbage tokens are skipped, valid ones still honoured",
            &[
                ("connection", b"bad header, \"quoted\", x-a, \xff\xfe"),
                ("x-a", b"1"),
                ("bad", b"kept"),
            ],
            &[("bad", "kept")],
        ),
        (
            "TE: trailers is kept for gRPC",
            &[("te", b"trailers"), ("content-type", b"application/grpc")],
            &[("content-type", "application/grpc"), ("te", "trailers")],
        ),
        (
            "TE: trailers is kept, normalised, even when Connection names it",
            &[("connection", b"TE"), ("te", b" Trailers ")],
            &[("te", "trailers")],
        ),
        (
            "TE with other codings is removed",
            &[("te", b"trailers, deflate")],
            &[],
        ),
        (
            "TE over several lines is removed",
            &[("te", b"trailers"), ("te", b"gzip")],
            &[],
        ),
        (
            "nothing to remove",
            &[("accept", b"*/*")],
            &[("accept", "*/*")],
        ),
    ];
    for (case, input, expected) in cases {
        let mut map = headers(input);
        remove_hop_by_hop_headers(&mut map);
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert_eq!(lines(&map), expected, "{case}");
    }
}

/// The headers removed whether or not `Connection` names them, with a value each.
const FIXED_HOP_BY_HOP: [(&str, &[u8]); 9] = [
    ("connection", b"close"),
    ("keep-alive", b"timeout=5"),
    ("proxy-connection", b"keep-alive"),
    ("proxy-authenticate", b"Basic"),
    ("proxy-authorization", b"Basic Zm9vOmJhcg=="),
    ("trailer", b"grpc-status"),
    ("transfer-encoding", b"chunked"),
    ("upgrade", b"websocket"),
    ("te", b"gzip"),
];

/// The fixed set goes even when not named: all together, and each on its own beside end-to-end
/// headers only (the removal first scans the names, and returns early when it finds none of
/// them).
#[test]
fn hop_by_hop_removal_of_the_fixed_set() {
    let end_to_end: [(&str, &[u8]); 2] = [("accept", b"*/*"), ("x-end", b"1")];
    let want = [("accept", "*/*"), ("x-end", "1")].map(|(n, v)| (n.to_string(), v.to_string()));

    let mut map = headers(&[&end_to_end[..1], &FIXED_HOP_BY_HOP, &end_to_end[1..]].concat());
    remove_hop_by_hop_headers(&mut map);
    assert_eq!(lines(&map), want, "all together");

    for line in FIXED_HOP_BY_HOP {
        let mut map = headers(&[end_to_end[0], line, end_to_end[1]]);
        remove_hop_by_hop_headers(&mut map);
        assert_eq!(lines(&map), want, "{} alone", line.0);
    }
}

/// One authority-rewrite case.
struct AuthorityCase {
    case: &'static str,
    uri: &'static str,
    host: Option<&'static str>,
    endpoint: &'static str,
    scheme: Scheme,
    want_uri: &'static str,
    want_host: Option<&'static str>,
}

#[test]
fn endpoint_authority_rewrite() {
    let cases = [
        AuthorityCase {
            case: "origin form with query, Host kept",
            uri: "/v1/orders?page=2&sort=asc",
            host: Some("shop.example"),
            endpoint: "10.0.0.5:8080",
            scheme: Scheme::HTTP,
            want_uri: "http://10.0.0.5:8080/v1/orders?page=2&sort=asc",
            want_host: Some("shop.example"),
        },
        AuthorityCase {
            case: "origin form without query",
            uri: "/healthz",
            host: Some("shop.example"),
            endpoint: "10.0.0.5:80",
            scheme: Scheme::HTTPS,
            want_uri: "https://10.0.0.5:80/healthz",
            want_host: Some("shop.example"),
        },
        AuthorityCase {
            case: "absolute form without Host: the original authority becomes Host",
            uri: "https://api.example.com:8443/x?y=1",
            host: None,
            endpoint: "10.0.0.5:8080",
            scheme: Scheme::HTTP,
            want_uri: "http://10.0.0.5:8080/x?y=1",
            want_host: Some("api.example.com:8443"),
        },
        AuthorityCase {
            case: "IPv6 endpoint is bracketed",
            uri: "/a",
            host: Some("shop.example"),
            endpoint: "[2001:db8::5]:9000",
            scheme: Scheme::HTTP,
            want_uri: "http://[2001:db8::5]:9000/a",
            want_host: Some("shop.example"),
        },
        AuthorityCase {
            case: "origin form without Host stays without Host",
            uri: "/a",
            host: None,
            endpoint: "10.0.0.5:8080",
            scheme: Scheme::HTTP,
            want_uri: "http://10.0.0.5:8080/a",
            want_host: None,
        },
    ];
    for c in cases {
        let mut builder = Request::get(c.uri);
        if let Some(host) = c.host {
            builder = builder.header(HOST, host);
        }
        let mut req = builder.body(()).unwrap();
        let endpoint: SocketAddr = c.endpoint.parse().unwrap();
        set_endpoint_authority(&mut req, c.scheme, socket_authority(endpoint));
        assert_eq!(req.uri().to_string(), c.want_uri, "{}", c.case);
        let hosts: Vec<_> = req.headers().get_all(HOST).iter().collect();
        let want: Vec<_> = c.want_host.into_iter().collect();
        assert_eq!(hosts, want, "{}", c.case);
    }
}

#[test]
fn socket_authority_drops_ipv6_zone() {
    let addr: SocketAddr = "[fe80::1%2]:80".parse().unwrap();
    assert_eq!(socket_authority(addr).as_str(), "[fe80::1]:80");
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    assert_eq!(socket_authority(addr).as_str(), "127.0.0.1:9");
}

#[test]
fn forwarded_elements() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let sock = |s: &str| s.parse::<SocketAddr>().unwrap();
    let cases: Vec<(&str, ForwardedElement, &str)> = vec![
        (
            "IPv4",
            ForwardedElement::new().for_node(ip("192.0.2.43")),
            "for=192.0.2.43",
        ),
        (
            "IPv4 with port is quoted",
            ForwardedElement::new().for_node(sock("192.0.2.43:47011")),
            r#"for="192.0.2.43:47011""#,
        ),
        (
            "IPv6 is bracketed and quoted",
            ForwardedElement::new().for_node(ip("2001:db8:cafe::17")),
            r#"for="[2001:db8:cafe::17]""#,
        ),
        (
            "IPv6 with port",
            ForwardedElement::new().for_node(sock("[2001:db8:cafe::17]:4711")),
            r#"for="[2001:db8:cafe::17]:4711""#,
        ),
        (
            "IPv4-mapped IPv6 is written as IPv4",
            ForwardedElement::new().for_node(ip("::ffff:192.0.2.1")),
            "for=192.0.2.1",
        ),
        (
            "all parameters, in order",
            ForwardedElement::new()
                .host("api.example.com:8443".parse().unwrap())
                .proto(Scheme::HTTPS)
                .by_node(sock("10.0.0.1:443"))
                .for_node(ForwardedNode::unknown()),
            r#"for=unknown;by="10.0.0.1:443";proto=https;host="api.example.com:8443""#,
        ),
    ];
    for (case, element, want) in cases {
        let mut map = HeaderMap::new();
        element.append_to(&mut map);
        assert_eq!(map["forwarded"], want, "{case}");
    }
}

#[test]
fn forwarded_appends_to_the_last_line() {
    let mut map = headers(&[
        ("forwarded", b"for=192.0.2.60;proto=http"),
        ("forwarded", b"for=198.51.100.17"),
    ]);
    ForwardedElement::new()
        .for_node("2001:db8::1".parse::<IpAddr>().unwrap())
        .append_to(&mut map);
    let all: Vec<_> = map.get_all("forwarded").iter().collect();
    assert_eq!(
        all,
        [
            "for=192.0.2.60;proto=http",
            r#"for=198.51.100.17, for="[2001:db8::1]""#
        ]
    );

    // An empty element is not valid syntax and is not written.
    let mut empty = HeaderMap::new();
    ForwardedElement::new().append_to(&mut empty);
    assert!(empty.is_empty());
}

#[test]
fn via_entries() {
    let name = ViaName::new("mesh").unwrap();
    let cases = [
        (Version::HTTP_10, "1.0 mesh"),
        (Version::HTTP_11, "1.1 mesh"),
        (Version::HTTP_2, "2 mesh"),
        (Version::HTTP_3, "3 mesh"),
    ];
    for (version, want) in cases {
        let mut map = HeaderMap::new();
        append_via(&mut map, version, &name);
        assert_eq!(map["via"], want, "{version:?}");
    }

    let mut map = headers(&[("via", b"1.0 fred, 1.1 p.example.net")]);
    append_via(
        &mut map,
        Version::HTTP_11,
        &ViaName::new("proxy.internal:3128").unwrap(),
    );
    assert_eq!(
        map["via"],
        "1.0 fred, 1.1 p.example.net, 1.1 proxy.internal:3128"
    );
}

#[test]
fn via_names_are_validated() {
    assert!(ViaName::new("sidecar-7").is_ok());
    assert!(ViaName::new("[2001:db8::1]:80").is_ok());
    for bad in ["", "two words", "a,b", "quote\"", "tab\t"] {
        assert!(ViaName::new(bad).is_err(), "{bad:?}");
    }
}
