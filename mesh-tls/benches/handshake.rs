//! Full mutual-TLS handshakes (TLS 1.3, no resumption, in memory: no sockets) with this crate's
//! SPIFFE verifiers against rustls's stock WebPKI verifiers, and the cost of one small exchange on
//! an established connection.
//!
//! `cargo bench -p towermesh-tls --bench handshake`

use std::sync::Arc;

use mesh_tls::test_ca::{TestCa, TestSvid};
use mesh_tls::{SpiffeClientVerifier, SpiffeServerVerifier, SvidVerifier, crypto_provider};
use rustls::client::{Resumption, WebPkiServerVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::version::TLS13;
use rustls::{
    ClientConfig, ClientConnection, Connection, RootCertStore, ServerConfig, ServerConnection,
};
use rustls_pki_types::ServerName;

fn main() {
    divan::main();
}

struct Setup {
    client: Arc<ClientConfig>,
    server: Arc<ServerConfig>,
    name: ServerName<'static>,
}

fn svids() -> (TestCa, TestSvid, TestSvid) {
    let ca = TestCa::new("prod.example");
    let server = ca.svid("/server").dns_sans(["server.test"]).build();
    let client = ca.issue("/client");
    (ca, server, client)
}

fn spiffe() -> Setup {
    let (ca, server, client) = svids();
    let verifier = SvidVerifier::new(TestCa::bundles([&ca]), &crypto_provider());
    let mut client_config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(SpiffeServerVerifier::new(verifier.clone())))
        .with_client_auth_cert(client.chain().to_vec(), client.key())
        .unwrap();
    client_config.resumption = Resumption::disabled();
    let mut server_config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&TLS13])
        .unwrap()
        .with_client_cert_verifier(Arc::new(SpiffeClientVerifier::new(verifier)))
        .with_single_cert(server.chain().to_vec(), server.key())
        .unwrap();
    server_config.send_tls13_tickets = 0;
    Setup {
        client: Arc::new(client_config),
        server: Arc::new(server_config),
        name: ServerName::try_from("server.test").unwrap(),
    }
}

fn stock() -> Setup {
    let (ca, server, client) = svids();
    let mut roots = RootCertStore::empty();
    roots.add(ca.roots()[0].clone()).unwrap();
    let roots = Arc::new(roots);
    let server_verifier =
        WebPkiServerVerifier::builder_with_provider(roots.clone(), crypto_provider())
            .build()
            .unwrap();
    let client_verifier = WebPkiClientVerifier::builder_with_provider(roots, crypto_provider())
        .build()
        .unwrap();
    let mut client_config = ClientConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&TLS13])
        .unwrap()
        .with_webpki_verifier(server_verifier)
        .with_client_auth_cert(client.chain().to_vec(), client.key())
        .unwrap();
    client_config.resumption = Resumption::disabled();
    let mut server_config = ServerConfig::builder_with_provider(crypto_provider())
        .with_protocol_versions(&[&TLS13])
        .unwrap()
        .with_client_cert_verifier(client_verifier)
        .with_single_cert(server.chain().to_vec(), server.key())
        .unwrap();
    server_config.send_tls13_tickets = 0;
    Setup {
        client: Arc::new(client_config),
        server: Arc::new(server_config),
        name: ServerName::try_from("server.test").unwrap(),
    }
}

/// Moves every pending TLS record from `from` to `to` and lets `to` process it.
fn transfer(from: &mut Connection, to: &mut Connection) {
    let mut buf = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut buf).unwrap();
    }
    let mut rest = &buf[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets().unwrap();
    }
}

fn handshake(setup: &Setup) -> (Connection, Connection) {
    let mut client = Connection::Client(
        ClientConnection::new(setup.client.clone(), setup.name.clone()).unwrap(),
    );
    let mut server = Connection::Server(ServerConnection::new(setup.server.clone()).unwrap());
    while client.is_handshaking() || server.is_handshaking() {
        transfer(&mut client, &mut server);
        transfer(&mut server, &mut client);
    }
    (client, server)
}

#[divan::bench(name = "mtls_handshake_spiffe_verifiers")]
fn handshake_spiffe(bencher: divan::Bencher<'_, '_>) {
    let setup = spiffe();
    bencher.bench_local(|| handshake(&setup));
}

#[divan::bench(name = "mtls_handshake_stock_webpki_verifiers")]
fn handshake_stock(bencher: divan::Bencher<'_, '_>) {
    let setup = stock();
    bencher.bench_local(|| handshake(&setup));
}

/// One 200-byte request and 200-byte answer on an established connection: what each request pays
/// for TLS once the handshake is done (the verifiers play no part any more).
#[divan::bench]
fn exchange_on_established_connection(bencher: divan::Bencher<'_, '_>) {
    use std::io::{Read, Write};
    let setup = spiffe();
    let (mut client, mut server) = handshake(&setup);
    let message = [7u8; 200];
    let mut buf = [0u8; 200];
    bencher.bench_local(|| {
        client.writer().write_all(&message).unwrap();
        transfer(&mut client, &mut server);
        server.reader().read_exact(&mut buf).unwrap();
        server.writer().write_all(&buf).unwrap();
        transfer(&mut server, &mut client);
        client.reader().read_exact(&mut buf).unwrap();
    });
}
