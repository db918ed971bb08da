//! Two trust domains side by side, each with its own root: both accepted, neither able to vouch for
//! the other's IDs, and chains through intermediates.

mod common;

use common::{accept_one, raw_client_config};
use mesh_core::PeerIdentity;
use mesh_tls::test_ca::TestCa;
use mesh_tls::{Authorizer, SvidError, TlsAcceptor, TrustDomain};

#[tokio::test]
async fn both_trust_domains_are_accepted() {
    let prod = TestCa::new("prod.example");
    let partner = TestCa::new("partner.example");
    let bundles = TestCa::bundles([&prod, &partner]);
    for (ca, path) in [(&prod, "/ns/shop"), (&partner, "/billing")] {
        let acceptor = TlsAcceptor::new(prod.issue("/server").svid(), bundles.clone());
        let client = ca.issue(path);
        let extensions = accept_one(acceptor, raw_client_config(&client, bundles.clone()))
            .await
            .unwrap();
        let peer = extensions.get::<PeerIdentity>().unwrap();
        assert_eq!(
            peer.as_str(),
            format!("spiffe://{}{path}", ca.trust_domain())
        );
    }
}

#[tokio::test]
async fn a_root_cannot_vouch_for_the_other_domain() {
    let prod = TestCa::new("prod.example");
    let partner = TestCa::new("partner.example");
    let bundles = TestCa::bundles([&prod, &partner]);
    for (signer, claimed) in [(&partner, &prod), (&prod, &partner)] {
        let acceptor = TlsAcceptor::new(prod.issue("/server").svid(), bundles.clone());
        let forged = signer
            .svid("/x")
            .uri_sans([format!("spiffe://{}/admin", claimed.trust_domain())])
            .build();
        let error = accept_one(acceptor, raw_client_config(&forged, bundles.clone()))
            .await
            .unwrap_err();
        assert!(
            matches!(error.svid_error(), Some(SvidError::WrongTrustDomain { signed_by, .. }) if signed_by == signer.trust_domain()),
            "{error:?}"
        );
    }
}

#[tokio::test]
async fn chains_through_intermediates_and_trust_domain_authorizer() {
    let prod = TestCa::new("prod.example");
    let partner = TestCa::new("partner.example");
    let bundles = TestCa::bundles([&prod, &partner]);
    let issuing = partner.intermediate().intermediate();
    let client = issuing.issue("/billing");
    assert_eq!(client.chain().len(), 3);

    let only_prod = Authorizer::trust_domains([TrustDomain::new("prod.example").unwrap()]);
    let acceptor =
        TlsAcceptor::new(prod.issue("/server").svid(), bundles.clone()).authorizer(only_prod);
    let error = accept_one(acceptor, raw_client_config(&client, bundles.clone()))
        .await
        .unwrap_err();
    assert!(matches!(
        error.svid_error(),
        Some(SvidError::NotAuthorized { .. })
    ));

    let acceptor = TlsAcceptor::new(prod.issue("/server").svid(), bundles.clone());
    let extensions = accept_one(acceptor, raw_client_config(&client, bundles))
        .await
        .unwrap();
    assert!(extensions.get::<PeerIdentity>().is_some());
}
