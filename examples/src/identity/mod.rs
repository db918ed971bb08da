//! Identity files for the proxies: the startup check of `[identity]` ([`check`]) and the
//! `mesh-sidecar identity` tool that makes a local test trust domain ([`tool`]).
//!
//! The check exists because an identity problem found at startup is a configuration problem: the
//! operator needs the key and the file, and the process exits 2 like for any other bad key,
//! instead of a generic failure from deep inside the TLS setup. The tool exists so that trying
//! the sidecar, or a CA rotation, needs no PKI of one's own.

pub mod check;
pub mod tool;
