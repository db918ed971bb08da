//! The endpoint file format (TOML or JSON) and its validation.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use mesh_core::{Endpoint, Identity, Locality, Weight};
use serde::Deserialize;
use serde::de::{Deserializer, Error as _};

use crate::discover::DiscoverError;

/// The syntax of an endpoint file.
///
/// Both describe the same document: a list named `endpoints`, each entry with `addr` (required,
/// `IP:port`), `weight` (≥ 1, default 1), `locality` (`region`, `zone`, `subzone`, each optional),
/// `identity` (an expected SPIFFE ID) and `labels` (a string map). Unknown keys are rejected, so a
/// misspelt `wieght` is an error rather than a silent default. JSON also accepts a bare array of
/// entries.
///
/// ```toml
/// [[endpoints]]
/// addr = "10.0.0.1:8080"
/// weight = 2
/// identity = "spiffe://prod.example/ns/shop/sa/orders"
/// locality = { region = "eu-west", zone = "eu-west-1a" }
/// labels = { version = "v2" }
///
/// [[endpoints]]
/// addr = "[2001:db8::1]:8080"
/// ```
///
/// ```json
/// { "endpoints": [ { "addr": "10.0.0.1:8080", "weight": 2,
///                    "locality": { "region": "eu-west", "zone": "eu-west-1a" } } ] }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FileFormat {
    /// TOML (`.toml`).
    Toml,
    /// JSON (`.json`).
    Json,
}

impl FileFormat {
    /// The format named by the file's extension (`toml` or `json`, any case), if any.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?;
        if ext.eq_ignore_ascii_case("toml") {
            Some(Self::Toml)
        } else if ext.eq_ignore_ascii_case("json") {
            Some(Self::Json)
        } else {
            None
        }
    }

    /// Parses and validates a whole file; `path` only names the file in errors.
    ///
    /// Every entry must be valid and every address unique, or the whole file is rejected: a
    /// partly applied file would silently drop endpoints.
    pub fn parse(self, path: &Path, bytes: &[u8]) -> Result<Vec<Endpoint>, DiscoverError> {
        let invalid =
            |line, column, field: Option<String>, reason: String| DiscoverError::FileInvalid {
                path: path.to_owned(),
                line,
                column,
                field: field.map(Into::into),
                reason: reason.into(),
            };
        let text = std::str::from_utf8(bytes)
            .map_err(|e| invalid(None, None, None, format!("not UTF-8: {e}")))?;
        let entries = match self {
            Self::Toml => toml::from_str::<Document>(text)
                .map(|doc| doc.endpoints)
                .map_err(|e| {
                    let (line, column) = match e.span() {
                        Some(span) => line_column(text, span.start),
                        None => (None, None),
                    };
                    invalid(line, column, None, e.message().to_owned())
                })?,
            Self::Json => parse_json(text).map_err(|e| {
                let known = e.line() > 0;
                invalid(
                    known.then(|| e.line()),
                    known.then(|| e.column()),
                    None,
                    json_message(&e),
                )
            })?,
        };
        let mut seen = HashSet::with_capacity(entries.len());
        let mut endpoints = Vec::with_capacity(entries.len());
        for (index, entry) in entries.into_iter().enumerate() {
            if !seen.insert(entry.addr.0) {
                return Err(invalid(
                    None,
                    None,
                    Some(format!("endpoints[{index}].addr")),
                    format!("address {} is listed twice", entry.addr.0),
                ));
            }
            endpoints.push(entry.into_endpoint());
        }
        Ok(endpoints)
    }
}

impl fmt::Display for FileFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Toml => "TOML",
            Self::Json => "JSON",
        })
    }
}

fn parse_json(text: &str) -> Result<Vec<Entry>, serde_json::Error> {
    if text.trim_start().starts_with('[') {
        serde_json::from_str(text)
    } else {
        serde_json::from_str::<Document>(text).map(|doc| doc.endpoints)
    }
}

/// serde_json appends " at line L column C" to its message; the location has its own fields.
fn json_message(e: &serde_json::Error) -> String {
    let full = e.to_string();
    match full.rfind(" at line ") {
        Some(at) => full[..at].to_owned(),
        None => full,
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (Option<usize>, Option<usize>) {
    let Some(before) = text.get(..offset) else {
        return (None, None);
    };
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (Some(line), Some(column))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    #[serde(default)]
    endpoints: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    addr: Addr,
    #[serde(default)]
    weight: EntryWeight,
    #[serde(default)]
    locality: EntryLocality,
    #[serde(default)]
    identity: Option<EntryIdentity>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl Entry {
    fn into_endpoint(self) -> Endpoint {
        let mut builder = Endpoint::builder(self.addr.0)
            .weight(self.weight.0.get())
            .locality(Locality::new(
                &self.locality.region,
                &self.locality.zone,
                &self.locality.subzone,
            ));
        if let Some(id) = &self.identity {
            builder = builder.identity(id.0.as_str());
        }
        for (name, value) in &self.labels {
            builder = builder.label(name, value);
        }
        // Weight and identity were validated while deserializing, so the builder cannot fail;
        // fall back to the bare address rather than panic if mesh-core ever adds a rule.
        builder
            .build()
            .unwrap_or_else(|_| Endpoint::new(self.addr.0))
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EntryLocality {
    #[serde(default)]
    region: String,
    #[serde(default)]
    zone: String,
    #[serde(default)]
    subzone: String,
}

struct Addr(SocketAddr);

impl<'de> Deserialize<'de> for Addr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(Addr).map_err(|_| {
            D::Error::custom(format!(
                "invalid `addr` {text:?}: expected IP:port such as 10.0.0.1:8080 or [::1]:8080 \
                 (names are resolved by the DNS source, not here)"
            ))
        })
    }
}

#[derive(Default)]
struct EntryWeight(Weight);

impl<'de> Deserialize<'de> for EntryWeight {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let weight = u32::deserialize(d)?;
        Weight::new(weight)
            .map(EntryWeight)
            .map_err(|_| D::Error::custom("invalid `weight` 0: weights start at 1"))
    }
}

struct EntryIdentity(Identity);

impl<'de> Deserialize<'de> for EntryIdentity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Identity::new(&text)
            .map(EntryIdentity)
            .map_err(|e| D::Error::custom(format!("invalid `identity` {text:?}: {e}")))
    }
}
