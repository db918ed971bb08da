//! Settings shared by the connector and the acceptor.

use rustls::SupportedProtocolVersion;
use rustls::version::{TLS12, TLS13};

/// ALPN protocols offered by default, most preferred first.
pub(crate) fn default_alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// TLS 1.3 only unless TLS 1.2 is allowed: mesh peers are all ours, so there is no old client to
/// accommodate, and TLS 1.3 encrypts the certificates (the SPIFFE IDs) on the wire.
pub(crate) fn versions(allow_tls12: bool) -> &'static [&'static SupportedProtocolVersion] {
    static TLS13_ONLY: [&SupportedProtocolVersion; 1] = [&TLS13];
    static BOTH: [&SupportedProtocolVersion; 2] = [&TLS13, &TLS12];
    if allow_tls12 { &BOTH } else { &TLS13_ONLY }
}
