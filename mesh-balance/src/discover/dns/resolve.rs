//! One resolution round: DNS answers to endpoints plus the TTL they are good for.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::rr::rdata::SRV;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use mesh_core::{Endpoint, Identity, Locality};

use super::target::{DnsTarget, TargetKind};
use crate::discover::DiscoverError;

/// What one round found.
#[derive(Debug)]
pub(crate) enum Resolution {
    /// At least one address; `ttl` is the smallest TTL among the records used.
    Found {
        addrs: Vec<(SocketAddr, u32)>,
        ttl: Duration,
    },
    /// The name exists with no usable records, or does not exist (NXDOMAIN).
    Empty { negative_ttl: Option<Duration> },
    /// The lookup itself failed.
    Failed(DiscoverError),
}

/// What every endpoint from a DNS source carries besides its address and weight.
#[derive(Clone, Debug, Default)]
pub(crate) struct EndpointTemplate {
    pub(crate) locality: Locality,
    pub(crate) identity: Option<Identity>,
}

impl EndpointTemplate {
    pub(crate) fn endpoint(&self, addr: SocketAddr, weight: u32) -> Endpoint {
        let mut builder = Endpoint::builder(addr)
            .weight(weight.max(1))
            .locality(self.locality.clone());
        if let Some(id) = &self.identity {
            builder = builder.identity(id.as_str());
        }
        // Weight ≥ 1 and a valid identity: cannot fail.
        builder.build().unwrap_or_else(|_| Endpoint::new(addr))
    }
}

/// Addresses of one name: A and AAAA records, or `None` when both are empty.
struct Addresses {
    ips: Vec<IpAddr>,
    ttl: Option<u32>,
    negative_ttl: Option<u32>,
}

pub(crate) async fn resolve(resolver: &TokioResolver, target: &DnsTarget) -> Resolution {
    let result = match target.kind {
        TargetKind::Host { port } => resolve_host(resolver, &target.name, port).await,
        TargetKind::Srv => resolve_srv(resolver, &target.name).await,
    };
    match result {
        Ok(resolution) => resolution,
        Err(e) => Resolution::Failed(e),
    }
}

async fn resolve_host(
    resolver: &TokioResolver,
    name: &Name,
    port: u16,
) -> Result<Resolution, DiscoverError> {
    let found = addresses(resolver, name).await?;
    if found.ips.is_empty() {
        return Ok(Resolution::Empty {
            negative_ttl: found.negative_ttl.map(secs),
        });
    }
    Ok(Resolution::Found {
        addrs: found
            .ips
            .into_iter()
            .map(|ip| (SocketAddr::new(ip, port), 1))
            .collect(),
        ttl: secs(found.ttl.unwrap_or(0)),
    })
}

async fn resolve_srv(resolver: &TokioResolver, name: &Name) -> Result<Resolution, DiscoverError> {
    let (records, srv_ttl, negative_ttl) = match lookup(resolver, name, RecordType::SRV).await? {
        Found::Records(lookup) => {
            let mut ttl = u32::MAX;
            let records: Vec<SRV> = lookup
                .answers()
                .iter()
                .filter_map(|record| match &record.data {
                    RData::SRV(srv) if !srv.target.is_root() => {
                        ttl = ttl.min(record.ttl);
                        Some(srv.clone())
                    }
                    _ => None,
                })
                .collect();
            (records, ttl, None)
        }
        Found::Nothing { negative_ttl } => (Vec::new(), u32::MAX, negative_ttl),
    };
    let mut priorities: Vec<u16> = records.iter().map(|srv| srv.priority).collect();
    priorities.sort_unstable();
    priorities.dedup();
    // The lowest priority with at least one address wins (RFC 2782 §"Usage rules").
    for priority in priorities {
        let mut weights: BTreeMap<SocketAddr, u32> = BTreeMap::new();
        let mut ttl = srv_ttl;
        for srv in records.iter().filter(|srv| srv.priority == priority) {
            let found = addresses(resolver, &srv.target).await?;
            if let Some(t) = found.ttl {
                ttl = ttl.min(t);
            }
            for ip in found.ips {
                let weight = weights.entry(SocketAddr::new(ip, srv.port)).or_default();
                *weight = weight.saturating_add(u32::from(srv.weight.max(1)));
            }
        }
        if !weights.is_empty() {
            return Ok(Resolution::Found {
                addrs: weights.into_iter().collect(),
                ttl: secs(ttl),
            });
        }
    }
    Ok(Resolution::Empty {
        negative_ttl: negative_ttl.map(secs),
    })
}

/// A and AAAA of `name`; an empty or non-existent type is not an error.
async fn addresses(resolver: &TokioResolver, name: &Name) -> Result<Addresses, DiscoverError> {
    let mut out = Addresses {
        ips: Vec::new(),
        ttl: None,
        negative_ttl: None,
    };
    for record_type in [RecordType::A, RecordType::AAAA] {
        match lookup(resolver, name, record_type).await? {
            Found::Records(lookup) => {
                for record in lookup.answers() {
                    let ip = match &record.data {
                        RData::A(a) => IpAddr::V4(a.0),
                        RData::AAAA(aaaa) => IpAddr::V6(aaaa.0),
                        // CNAME chain links: their TTL bounds the answer's too.
                        RData::CNAME(_) => {
                            out.ttl = Some(out.ttl.map_or(record.ttl, |t| t.min(record.ttl)));
                            continue;
                        }
                        _ => continue,
                    };
                    out.ttl = Some(out.ttl.map_or(record.ttl, |t| t.min(record.ttl)));
                    out.ips.push(ip);
                }
            }
            Found::Nothing { negative_ttl } => {
                out.negative_ttl = match (out.negative_ttl, negative_ttl) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }
        }
    }
    out.ips.sort_unstable();
    out.ips.dedup();
    Ok(out)
}

enum Found {
    Records(hickory_resolver::lookup::Lookup),
    Nothing { negative_ttl: Option<u32> },
}

/// One query, bypassing the resolver's cache so the TTL we get is the server's, not a cached
/// remainder measured on a different clock.
async fn lookup(
    resolver: &TokioResolver,
    name: &Name,
    record_type: RecordType,
) -> Result<Found, DiscoverError> {
    resolver.clear_lookup_cache(name.clone(), record_type);
    match resolver.lookup(name.clone(), record_type).await {
        Ok(lookup) => Ok(Found::Records(lookup)),
        Err(NetError::Dns(DnsError::NoRecordsFound(none))) => Ok(Found::Nothing {
            negative_ttl: none.negative_ttl,
        }),
        Err(e) => Err(DiscoverError::dns_lookup(
            format_args!("{name} {record_type}"),
            e,
        )),
    }
}

fn secs(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl))
}
