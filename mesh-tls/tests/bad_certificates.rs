//! The bad-certificate matrix: real TLS handshakes on loopback, each broken certificate refused
//! with its own typed error.

mod common;

use std::time::{Duration, SystemTime};

use common::{accept_one, connect_one, raw_client_config, raw_server_config};
use mesh_tls::test_ca::{TestCa, TestSvid};
use mesh_tls::{
    Authorizer, HandshakeError, SpiffeId, SpiffeIdError, SvidError, TlsAcceptor, TlsConnector,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const HOUR: Duration = Duration::from_secs(3600);

/// The server side of the matrix: an acceptor trusting `ca`, and a client presenting `client`.
async fn server_refuses(ca: &TestCa, client: TestSvid) -> SvidError {
    let acceptor = TlsAcceptor::new(ca.issue("/server").svid(), TestCa::bundles([ca]));
    let config = raw_client_config(&client, TestCa::bundles([ca]));
    match accept_one(acceptor, config).await {
        Err(HandshakeError::Svid(error)) => error,
        other => panic!("expected an SVID error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_client_is_accepted_with_its_identity() {
    let ca = TestCa::new("prod.example");
    let acceptor = TlsAcceptor::new(ca.issue("/server").svid(), TestCa::bundles([&ca]));
    let client = ca.issue("/ns/shop/sa/web");
    let extensions = accept_one(acceptor, raw_client_config(&client, TestCa::bundles([&ca])))
        .await
        .unwrap();
    let peer = extensions.get::<mesh_core::PeerIdentity>().unwrap();
    assert_eq!(peer.as_str(), "spiffe://prod.example/ns/shop/sa/web");
    assert_eq!(
        extensions.get::<SpiffeId>().unwrap().as_str(),
        peer.as_str()
    );
}

#[tokio::test]
async fn expired() {
    let ca = TestCa::new("prod.example");
    let now = SystemTime::now();
    let client = ca
        .svid("/web")
        .not_before(now - 3 * HOUR)
        .not_after(now - HOUR)
        .build();
    let error = server_refuses(&ca, client).await;
    assert!(matches!(error, SvidError::Expired { .. }), "{error:?}");
}

#[tokio::test]
async fn not_yet_valid() {
    let ca = TestCa::new("prod.example");
    let now = SystemTime::now();
    let client = ca
        .svid("/web")
        .not_before(now + HOUR)
        .not_after(now + 3 * HOUR)
        .build();
    let error = server_refuses(&ca, client).await;
    assert!(matches!(error, SvidError::NotYetValid { .. }), "{error:?}");
}

#[tokio::test]
async fn unknown_root() {
    let ca = TestCa::new("prod.example");
    let impostor = TestCa::new("prod.example");
    let error = server_refuses(&ca, impostor.issue("/web")).await;
    assert_eq!(
        error,
        SvidError::UnknownIssuer {
            trust_domain: "prod.example".parse().unwrap()
        }
    );
}

#[tokio::test]
async fn id_of_domain_b_signed_by_root_of_domain_a() {
    let a = TestCa::new("a.example");
    let b = TestCa::new("b.example");
    let acceptor = TlsAcceptor::new(a.issue("/server").svid(), TestCa::bundles([&a, &b]));
    let forged = a.svid("/web").uri_sans(["spiffe://b.example/web"]).build();
    let config = raw_client_config(&forged, TestCa::bundles([&a]));
    let error = accept_one(acceptor, config).await.unwrap_err();
    let Some(SvidError::WrongTrustDomain { id, signed_by }) = error.svid_error() else {
        panic!("{error:?}");
    };
    assert_eq!(id.as_str(), "spiffe://b.example/web");
    assert_eq!(signed_by.as_str(), "a.example");
}

#[tokio::test]
async fn domain_without_bundle() {
    let a = TestCa::new("a.example");
    let forged = a.svid("/web").uri_sans(["spiffe://c.example/web"]).build();
    let error = server_refuses(&a, forged).await;
    assert!(
        matches!(error, SvidError::UnknownTrustDomain { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn no_uri_san() {
    let ca = TestCa::new("prod.example");
    let client = ca.svid("/web").uri_sans(Vec::<String>::new()).build();
    assert_eq!(server_refuses(&ca, client).await, SvidError::NoUriSan);
}

#[tokio::test]
async fn two_uri_sans() {
    let ca = TestCa::new("prod.example");
    let client = ca
        .svid("/web")
        .uri_sans(["spiffe://prod.example/web", "spiffe://prod.example/admin"])
        .build();
    assert_eq!(
        server_refuses(&ca, client).await,
        SvidError::MultipleUriSans { count: 2 }
    );
}

#[tokio::test]
async fn non_spiffe_uri() {
    let ca = TestCa::new("prod.example");
    let client = ca
        .svid("/web")
        .uri_sans(["https://prod.example/web"])
        .build();
    let error = server_refuses(&ca, client).await;
    assert!(matches!(error, SvidError::NotSpiffeUri { .. }), "{error:?}");
}

#[tokio::test]
async fn invalid_spiffe_id() {
    let ca = TestCa::new("prod.example");
    let client = ca
        .svid("/web")
        .uri_sans(["spiffe://prod.example/a/../b"])
        .build();
    let error = server_refuses(&ca, client).await;
    assert!(
        matches!(error, SvidError::InvalidSpiffeId { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn leaf_with_ca_true() {
    let ca = TestCa::new("prod.example");
    let client = ca.svid("/web").ca(true).build();
    assert_eq!(server_refuses(&ca, client).await, SvidError::LeafIsCa);
}

#[tokio::test]
async fn leaf_with_key_cert_sign() {
    let ca = TestCa::new("prod.example");
    let client = ca.svid("/web").key_cert_sign(true).build();
    assert_eq!(
        server_refuses(&ca, client).await,
        SvidError::SigningKeyUsage
    );
}

#[tokio::test]
async fn leaf_with_crl_sign() {
    let ca = TestCa::new("prod.example");
    let client = ca.svid("/web").crl_sign(true).build();
    assert_eq!(
        server_refuses(&ca, client).await,
        SvidError::SigningKeyUsage
    );
}

#[tokio::test]
async fn leaf_without_digital_signature() {
    let ca = TestCa::new("prod.example");
    // Key usage with only keyEncipherment-free nothing: the extension is then absent.
    let client = ca.svid("/web").digital_signature(false).build();
    assert_eq!(
        server_refuses(&ca, client).await,
        SvidError::MissingKeyUsage
    );
}

#[tokio::test]
async fn leaf_with_crl_sign_only_lacks_digital_signature() {
    let ca = TestCa::new("prod.example");
    let client = ca
        .svid("/web")
        .digital_signature(false)
        .crl_sign(true)
        .build();
    assert_eq!(
        server_refuses(&ca, client).await,
        SvidError::MissingDigitalSignature
    );
}

#[tokio::test]
async fn client_cert_without_client_auth_eku() {
    let ca = TestCa::new("prod.example");
    let client = ca.svid("/web").extended_key_usage(false, true).build();
    assert_eq!(
        server_refuses(&ca, client).await,
        SvidError::MissingExtendedKeyUsage {
            purpose: "clientAuth"
        }
    );
}

#[tokio::test]
async fn self_signed_leaf() {
    let ca = TestCa::new("prod.example");
    let client = ca.svid("/web").self_signed().build();
    assert_eq!(server_refuses(&ca, client).await, SvidError::SelfSigned);
}

#[tokio::test]
async fn client_refused_by_the_authorizer() {
    let ca = TestCa::new("prod.example");
    let acceptor = TlsAcceptor::new(ca.issue("/server").svid(), TestCa::bundles([&ca])).authorizer(
        Authorizer::path_prefix(ca.trust_domain().clone(), "/ns/shop"),
    );
    let client = ca.issue("/ns/shopping/sa/web");
    let error = accept_one(acceptor, raw_client_config(&client, TestCa::bundles([&ca])))
        .await
        .unwrap_err();
    assert!(
        matches!(error.svid_error(), Some(SvidError::NotAuthorized { id }) if id.path() == "/ns/shopping/sa/web"),
        "{error:?}"
    );
}

#[tokio::test]
async fn expected_id_mismatch() {
    let ca = TestCa::new("prod.example");
    let connector = TlsConnector::new(ca.issue("/client").svid(), TestCa::bundles([&ca]));
    let server = raw_server_config(&ca.issue("/ns/billing"), TestCa::bundles([&ca]));
    let error = connect_one(connector, server, Some("spiffe://prod.example/ns/orders"))
        .await
        .unwrap_err();
    let Some(SvidError::IdentityMismatch { expected, found }) = error.svid_error() else {
        panic!("{error:?}");
    };
    assert_eq!(expected.as_str(), "spiffe://prod.example/ns/orders");
    assert_eq!(found.as_str(), "spiffe://prod.example/ns/billing");
}

#[tokio::test]
async fn expected_id_with_upper_case_scheme_or_trust_domain_is_refused() {
    let ca = TestCa::new("prod.example");
    // A listener that never accepts: the connector must refuse before any handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for (expected, reason) in [
        (
            "SPIFFE://prod.example/ns/orders",
            SpiffeIdError::UppercaseScheme,
        ),
        (
            "spiffe://Prod.Example/ns/orders",
            SpiffeIdError::UppercaseTrustDomain { byte: b'P' },
        ),
    ] {
        let connector = TlsConnector::new(ca.issue("/client").svid(), TestCa::bundles([&ca]));
        let error = tower::ServiceExt::oneshot(connector, common::endpoint(addr, Some(expected)))
            .await
            .map(drop)
            .unwrap_err();
        let HandshakeError::InvalidEndpointIdentity(source) = common::handshake_error(error) else {
            panic!("{expected}: not an invalid endpoint identity");
        };
        assert_eq!(source, reason, "{expected}");
    }
}

#[tokio::test]
async fn server_cert_without_server_auth_eku() {
    let ca = TestCa::new("prod.example");
    let connector = TlsConnector::new(ca.issue("/client").svid(), TestCa::bundles([&ca]));
    let bad = ca.svid("/orders").extended_key_usage(true, false).build();
    let server = raw_server_config(&bad, TestCa::bundles([&ca]));
    let error = connect_one(connector, server, Some("spiffe://prod.example/orders"))
        .await
        .unwrap_err();
    assert_eq!(
        error.svid_error(),
        Some(&SvidError::MissingExtendedKeyUsage {
            purpose: "serverAuth"
        })
    );
}

#[tokio::test]
async fn expired_server_cert() {
    let ca = TestCa::new("prod.example");
    let connector = TlsConnector::new(ca.issue("/client").svid(), TestCa::bundles([&ca]));
    let now = SystemTime::now();
    let bad = ca
        .svid("/orders")
        .not_before(now - 3 * HOUR)
        .not_after(now - HOUR)
        .build();
    let server = raw_server_config(&bad, TestCa::bundles([&ca]));
    let error = connect_one(connector, server, Some("spiffe://prod.example/orders"))
        .await
        .unwrap_err();
    assert!(
        matches!(error.svid_error(), Some(SvidError::Expired { .. })),
        "{error:?}"
    );
}

#[tokio::test]
async fn endpoint_without_identity_is_refused_before_connecting() {
    let ca = TestCa::new("prod.example");
    let connector = TlsConnector::new(ca.issue("/client").svid(), TestCa::bundles([&ca]));
    let endpoint = common::endpoint("127.0.0.1:9".parse().unwrap(), None);
    let error = tower::ServiceExt::oneshot(connector, endpoint)
        .await
        .unwrap_err();
    assert!(matches!(
        common::handshake_error(error),
        HandshakeError::MissingEndpointIdentity
    ));
}

#[tokio::test]
async fn plaintext_client_to_the_tls_port() {
    use mesh_core::server::{Acceptor, ConnectionInfo};

    let ca = TestCa::new("prod.example");
    let acceptor = TlsAcceptor::new(ca.issue("/server").svid(), TestCa::bundles([&ca]));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let _ = tcp.read_to_end(&mut rest).await;
    });
    let (tcp, peer) = listener.accept().await.unwrap();
    let error = acceptor
        .accept(tcp, &ConnectionInfo::new(peer, addr))
        .await
        .map(drop)
        .expect_err("a plaintext client must be refused");
    assert!(matches!(
        common::handshake_error(error),
        HandshakeError::NotTls
    ));
    client.await.unwrap();
}
