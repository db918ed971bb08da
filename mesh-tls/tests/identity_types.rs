//! Trust bundles, SVID loading and error plumbing, without handshakes.

use std::sync::Arc;

use mesh_tls::test_ca::TestCa;
use mesh_tls::{
    BundleError, SvidError, SvidLoadError, SvidVerifier, TrustBundleSet, TrustDomain, X509Svid,
    crypto_provider,
};
use rustls_pki_types::{CertificateDer, UnixTime};

fn td(name: &str) -> TrustDomain {
    TrustDomain::new(name).unwrap()
}

#[test]
fn bundles_refuse_empty_and_unparseable_roots() {
    let mut set = TrustBundleSet::new();
    assert!(matches!(
        set.insert(td("a"), vec![]),
        Err(BundleError::Empty { .. })
    ));
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    let error = set.insert(td("a"), vec![garbage]).unwrap_err();
    assert!(
        matches!(error, BundleError::BadRoot { index: 0, .. }),
        "{error:?}"
    );
    assert!(matches!(
        set.insert_pem(td("a"), b"no pem here"),
        Err(BundleError::Empty { .. })
    ));
    assert!(set.is_empty());

    let ca = TestCa::new("a");
    set.insert_pem(td("a"), ca.root_pem().as_bytes()).unwrap();
    assert_eq!(set.get(&td("a")).unwrap().roots(), ca.roots());
    assert!(set.remove(&td("a")).is_some());
    assert!(set.is_empty());
}

#[test]
fn svids_check_chain_id_and_key() {
    let provider = crypto_provider();
    let ca = TestCa::new("prod.example");
    let web = ca.issue("/web");
    let svid = X509Svid::from_pem(
        web.chain_pem().as_bytes(),
        web.key_pem().as_bytes(),
        &provider,
    )
    .unwrap();
    assert_eq!(svid.id().as_str(), "spiffe://prod.example/web");
    assert_eq!(svid.chain(), web.chain());
    assert!(!format!("{svid:?}").contains("PRIVATE"));

    assert!(matches!(
        X509Svid::new(vec![], web.key(), &provider),
        Err(SvidLoadError::EmptyChain)
    ));
    let other = ca.issue("/web");
    assert!(matches!(
        X509Svid::new(web.chain().to_vec(), other.key(), &provider),
        Err(SvidLoadError::Key(_))
    ));
    let anonymous = ca.svid("/x").uri_sans(Vec::<String>::new()).build();
    assert!(matches!(
        anonymous.try_svid(),
        Err(SvidLoadError::Id(SvidError::NoUriSan))
    ));
    assert!(matches!(
        X509Svid::from_pem(b"", web.key_pem().as_bytes(), &provider),
        Err(SvidLoadError::EmptyChain)
    ));
    assert!(matches!(
        X509Svid::from_pem(web.chain_pem().as_bytes(), b"", &provider),
        Err(SvidLoadError::Pem { .. })
    ));
}

#[test]
fn verifier_follows_intermediates_and_roles() {
    let ca = TestCa::new("prod.example");
    let verifier = SvidVerifier::new(TestCa::bundles([&ca]), &crypto_provider());
    let deep = ca.intermediate().intermediate().issue("/deep");
    let id = verifier
        .verify_client(&deep.chain()[0], &deep.chain()[1..], UnixTime::now())
        .unwrap();
    assert_eq!(id.path(), "/deep");
    // Without its intermediates the leaf does not chain.
    assert!(matches!(
        verifier.verify_client(&deep.chain()[0], &[], UnixTime::now()),
        Err(SvidError::UnknownIssuer { .. })
    ));

    let client_only = ca.svid("/c").extended_key_usage(true, false).build();
    let leaf = &client_only.chain()[0];
    assert!(verifier.verify_client(leaf, &[], UnixTime::now()).is_ok());
    assert_eq!(
        verifier.verify_server(leaf, &[], UnixTime::now()),
        Err(SvidError::MissingExtendedKeyUsage {
            purpose: "serverAuth"
        })
    );
    // No extended key usage at all: allowed for both roles.
    let no_eku = ca.svid("/n").extended_key_usage(false, false).build();
    assert!(
        verifier
            .verify_server(&no_eku.chain()[0], &[], UnixTime::now())
            .is_ok()
    );
    assert!(
        verifier
            .verify_client(&no_eku.chain()[0], &[], UnixTime::now())
            .is_ok()
    );
}

#[test]
fn svid_errors_are_found_through_rustls_io_and_connect_errors() {
    let error = SvidError::LeafIsCa;
    let tls: rustls::Error = error.clone().into();
    let io = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
    let connect = mesh_core::error::ConnectError::new(io);
    assert_eq!(SvidError::find(&connect), Some(&error));
    let unrelated = std::io::Error::other("nope");
    assert_eq!(SvidError::find(&unrelated), None);
    let _: Arc<TrustBundleSet> = TestCa::bundles([]);
}
