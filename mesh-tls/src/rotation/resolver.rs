//! A rustls certificate resolver that presents the current SVID of an [`IdentityWatch`].

use std::fmt;
use std::sync::Arc;

use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{SignatureScheme, sign};

use super::IdentityWatch;

/// Presents whatever SVID the watch holds when the handshake asks for it.
pub(crate) struct CurrentSvid(pub(crate) IdentityWatch);

impl CurrentSvid {
    fn key(&self) -> Arc<CertifiedKey> {
        self.0.current().svid().certified_key().clone()
    }
}

impl ResolvesClientCert for CurrentSvid {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<sign::CertifiedKey>> {
        Some(self.key())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

impl ResolvesServerCert for CurrentSvid {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<sign::CertifiedKey>> {
        Some(self.key())
    }
}

impl fmt::Debug for CurrentSvid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CurrentSvid").field(&self.0).finish()
    }
}
