//! `mesh-sidecar identity …`: the command line of the identity tool
//! ([`mesh_examples::identity::tool`]).

use std::path::PathBuf;
use std::time::Duration;

use mesh_examples::args::{ArgError, Args};
use mesh_examples::identity::tool;
use mesh_tls::{SpiffeId, TrustDomain};

pub(crate) const USAGE: &str = "\
mesh-sidecar identity: a local test trust domain, its SVIDs and bundles (not for production)

USAGE:
    mesh-sidecar identity init --trust-domain <TD> --out <DIR>
        a root CA: DIR/ca-cert.pem, DIR/ca-key.pem (0600), DIR/bundle.pem (its roots file)
    mesh-sidecar identity issue --ca <DIR> --spiffe-id <spiffe://TD/PATH> --out <DIR> [--days <N>]
        an SVID from that CA: DIR/svid.pem (chain) and DIR/svid-key.pem (0600), valid N days
        (default 30)
    mesh-sidecar identity bundle --ca <DIR> [--ca <DIR>...] --out <FILE>
        a roots file with the certificate of each CA (old and new during a CA rotation)

Every file is written beside its place and renamed into it, so a running sidecar never reads
half a file. CA rotation: see the examples README.";

/// Default SVID lifetime of `issue`: 30 days, long enough for a local setup to keep working for a
/// while, short enough that a forgotten test certificate dies on its own.
const DEFAULT_DAYS: u64 = 30;

/// Runs the tool on the arguments after `identity`; the process exit code (0, 1 when the work
/// failed, 2 for a usage error).
pub(crate) fn main(args: Vec<String>) -> i32 {
    let mut args = args.into_iter();
    let command = args.next().unwrap_or_default();
    let result = match command.as_str() {
        "init" => parse(args, |a| {
            let td: TrustDomain = required(a, "--trust-domain")?;
            let out: PathBuf = required(a, "--out")?;
            Ok(move || tool::init(&td, &out))
        }),
        "issue" => parse(args, |a| {
            let ca: PathBuf = required(a, "--ca")?;
            let id: SpiffeId = required(a, "--spiffe-id")?;
            let out: PathBuf = required(a, "--out")?;
            let days: u64 = a.value("--days", DEFAULT_DAYS)?;
            let lifetime = Duration::from_secs(days.saturating_mul(24 * 3600));
            Ok(move || tool::issue(&ca, &id, lifetime, &out))
        }),
        "bundle" => parse(args, |a| {
            let mut cas = Vec::new();
            while let Some(ca) = a.value("--ca", Required::<PathBuf>::default())?.0 {
                cas.push(ca);
            }
            if cas.is_empty() {
                return Err(ArgError::MissingValue("--ca".into()));
            }
            let out: PathBuf = required(a, "--out")?;
            Ok(move || tool::bundle(&cas, &out))
        }),
        "--help" | "-h" | "help" => {
            println!("{USAGE}");
            return 0;
        }
        other => {
            eprintln!("mesh-sidecar identity: unknown command {other:?}\n\n{USAGE}");
            return 2;
        }
    };
    let work = match result {
        Ok(work) => work,
        Err(ArgError::Help) => {
            println!("{USAGE}");
            return 0;
        }
        Err(e) => {
            eprintln!("mesh-sidecar identity {command}: {e}\n\n{USAGE}");
            return 2;
        }
    };
    match work() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mesh-sidecar identity {command}: {e}");
            1
        }
    }
}

type Work = Box<dyn FnOnce() -> Result<(), tool::ToolError>>;

fn parse<F, W>(args: impl Iterator<Item = String>, read: F) -> Result<Work, ArgError>
where
    F: FnOnce(&mut Args) -> Result<W, ArgError>,
    W: FnOnce() -> Result<(), tool::ToolError> + 'static,
{
    let mut parsed = Args::parse(args)?;
    let work = read(&mut parsed)?;
    parsed.finish()?;
    Ok(Box::new(work))
}

/// A flag value with no default: absent is `None`, reported by [`get`](Self::get).
#[derive(Debug)]
struct Required<T>(Option<T>);

impl<T> Default for Required<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T> Required<T> {
    fn get(self, flag: &str) -> Result<T, ArgError> {
        self.0.ok_or_else(|| ArgError::MissingValue(flag.into()))
    }
}

impl<T: std::str::FromStr> std::str::FromStr for Required<T> {
    type Err = T::Err;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse().map(|value| Self(Some(value)))
    }
}

/// The value of `flag`, which must be given.
fn required<T>(args: &mut Args, flag: &str) -> Result<T, ArgError>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    args.value(flag, Required::default())?.get(flag)
}
