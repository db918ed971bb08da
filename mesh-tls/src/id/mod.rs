//! SPIFFE IDs and trust domains: [`SpiffeId`], [`TrustDomain`], [`SpiffeIdError`].
//!
//! Both types follow the SPIFFE-ID specification: the scheme is `spiffe://`; the trust domain uses
//! `[a-z0-9._-]` only and is at most 255 bytes (so no port, user info or percent-encoding); the
//! path is case-sensitive, made of segments of `[a-zA-Z0-9._-]` that are neither empty, `.` nor
//! `..`, with no trailing `/`, query or fragment; a whole ID is at most 2048 bytes (the length every
//! implementation must accept, and the limit of [`mesh_core::Identity`]).
//!
//! # Upper case in the scheme or trust domain is refused, not folded
//!
//! The specification calls the scheme and trust domain case-insensitive, but it also limits trust
//! domain characters to lower case, and go-spiffe (hence SPIRE) refuses `SPIFFE://` and
//! `spiffe://Prod.Example` outright. Parsing here does the same, with its own errors
//! ([`SpiffeIdError::UppercaseScheme`], [`SpiffeIdError::UppercaseTrustDomain`]): an ID accepted by
//! this crate is then accepted by every other implementation, has exactly one spelling (so it can be
//! compared as text, as policies and logs do), and a configuration typo shows up when it is loaded
//! rather than as a peer that never matches. Upper case stays valid in the path, which is
//! case-sensitive.
//!
//! # Why not the `spiffe` crate
//!
//! The `spiffe` crate (0.19, with default features off) has equivalent types. This crate keeps its
//! own for three reasons: the verified peer ID is cloned into every request's extensions, so a clone
//! here is one reference count where `spiffe::SpiffeId` copies two `String`s; third-party types
//! in our public API would tie our semver to theirs; and the errors here name the exact rule that
//! failed, which is what the SVID verifier reports. The rules are short and the tests below use
//! the specification's examples.

mod spiffe_id;
mod trust_domain;

pub use spiffe_id::{MAX_SPIFFE_ID_LEN, SpiffeId};
pub use trust_domain::{MAX_TRUST_DOMAIN_LEN, TrustDomain};

/// Why a text is not a valid SPIFFE ID or trust domain; each variant names one rule of the spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpiffeIdError {
    /// The text does not start with `spiffe://` in any case.
    #[error("not a SPIFFE ID: the scheme must be `spiffe://`")]
    WrongScheme,
    /// The scheme has upper-case letters (`SPIFFE://`); only lower-case `spiffe://` is accepted
    /// (see the [module docs](self)).
    #[error("the scheme must be lower-case `spiffe://`")]
    UppercaseScheme,
    /// The trust domain has an upper-case ASCII letter; trust domains are lower-case (see the
    /// [module docs](self)).
    #[error("the trust domain contains {:?}; trust domains are lower-case", char::from(*byte))]
    UppercaseTrustDomain {
        /// The first upper-case byte.
        byte: u8,
    },
    /// The trust domain is empty.
    #[error("the trust domain is empty")]
    EmptyTrustDomain,
    /// The trust domain is longer than 255 bytes.
    #[error("the trust domain is {len} bytes long; at most 255 are allowed")]
    TrustDomainTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// The trust domain has a byte outside `[a-zA-Z0-9._-]` (a port, user info, percent-encoding…);
    /// an upper-case letter is [`UppercaseTrustDomain`](Self::UppercaseTrustDomain).
    #[error("the trust domain contains {:?}; only [a-z0-9._-] are allowed", char::from(*byte))]
    BadTrustDomainChar {
        /// The first offending byte.
        byte: u8,
    },
    /// The ID is longer than 2048 bytes.
    #[error("the SPIFFE ID is {len} bytes long; at most 2048 are allowed")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A path segment is empty (`//`), or the path ends with `/`.
    #[error("the path has an empty segment or a trailing `/`")]
    EmptySegment,
    /// A path segment is `.` or `..`.
    #[error("the path has a `.` or `..` segment")]
    DotSegment,
    /// The path has a byte outside `[a-zA-Z0-9._-]` and `/` (a query, a fragment, percent-encoding…).
    #[error("the path contains {:?}; only [a-zA-Z0-9._-] and `/` are allowed", char::from(*byte))]
    BadPathChar {
        /// The first offending byte.
        byte: u8,
    },
}

#[cfg(test)]
mod tests;
