//! What a DNS source resolves: a host and port (A/AAAA), or an SRV name.

use std::fmt;
use std::str::FromStr;

use hickory_resolver::proto::rr::Name;

use crate::discover::DiscoverError;

/// The name a [`DnsDiscover`](super::DnsDiscover) resolves.
///
/// Names are used as given: end them with a dot (`orders.example.`) to make them fully qualified,
/// otherwise the resolver's search domains apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsTarget {
    pub(crate) name: Name,
    pub(crate) kind: TargetKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TargetKind {
    /// A and AAAA records, every address with this port.
    Host { port: u16 },
    /// SRV records: targets, ports and weights from the records.
    Srv,
}

impl DnsTarget {
    /// Every A and AAAA address of `host`, with `port`; each endpoint has weight 1.
    pub fn host(host: &str, port: u16) -> Result<Self, DiscoverError> {
        Ok(Self {
            name: parse_name(host)?,
            kind: TargetKind::Host { port },
        })
    }

    /// The SRV records of `name` (for example `_http._tcp.orders.example.`): each target's A and
    /// AAAA addresses with the record's port and weight.
    ///
    /// Only the lowest priority value whose targets resolve to at least one address is used
    /// (RFC 2782: a client must try the lowest-numbered priority it can reach); higher priorities
    /// are backups that take over when the lower one has no addresses in DNS. SRV weight 0 becomes
    /// endpoint weight 1, since weights start at 1; a target named `.` ("service not available
    /// here") is skipped; two records for the same address add their weights.
    pub fn srv(name: &str) -> Result<Self, DiscoverError> {
        Ok(Self {
            name: parse_name(name)?,
            kind: TargetKind::Srv,
        })
    }

    /// The name to resolve.
    pub fn name(&self) -> &Name {
        &self.name
    }

    /// Whether this is an SRV target.
    pub fn is_srv(&self) -> bool {
        self.kind == TargetKind::Srv
    }
}

/// Parses `host:port` as an A/AAAA target, or a name without a port whose first label starts with
/// `_` (such as `_http._tcp.orders.example.`) as an SRV target.
impl FromStr for DnsTarget {
    type Err = DiscoverError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.rsplit_once(':') {
            Some((host, port)) => {
                let port = port
                    .parse()
                    .map_err(|_| bad_target(s, "port is not a number"))?;
                Self::host(host, port)
            }
            None if s.starts_with('_') => Self::srv(s),
            None => Err(bad_target(
                s,
                "expected host:port, or an SRV name such as _http._tcp.example.",
            )),
        }
    }
}

impl fmt::Display for DnsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            TargetKind::Host { port } => write!(f, "{}:{port}", self.name),
            TargetKind::Srv => write!(f, "SRV {}", self.name),
        }
    }
}

fn parse_name(name: &str) -> Result<Name, DiscoverError> {
    if name.is_empty() {
        return Err(bad_target(name, "empty name"));
    }
    Name::from_str(name).map_err(|e| bad_target(name, e))
}

fn bad_target(target: &str, reason: impl fmt::Display) -> DiscoverError {
    DiscoverError::DnsTarget {
        target: target.into(),
        reason: reason.to_string().into(),
    }
}
