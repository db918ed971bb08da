//! DnsDiscover against a real DNS server (hickory-server) on 127.0.0.1, over the DNS wire
//! protocol. Real time: the resolver's UDP I/O and a paused clock's auto-advance race each other
//! (the clock could jump to the resolver's own timeout while a reply is in the socket), so these
//! tests use small TTL bounds and wait on stream events, never on sleeps.
#![cfg(feature = "dns")]

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use futures_core::Stream;
use hickory_server::Server;
use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType, RrKey};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneHandler, ZoneType};
use mesh_balance::discover::hickory_resolver::TokioResolver;
use mesh_balance::discover::hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig,
};
use mesh_balance::discover::hickory_resolver::net::runtime::TokioRuntimeProvider;
use mesh_balance::discover::{DiscoverError, DnsDiscover, DnsDiscoverConfig, DnsTarget};
use mesh_core::{Endpoint, EndpointKey};
use tokio::net::UdpSocket;
use tower::discover::Change;

/// Upper bound on how long one expected event may take; a safety net, not a wait.
const PATIENCE: Duration = Duration::from_secs(20);
/// Records carry TTL 0 so every round re-resolves after `MIN_TTL`.
const MIN_TTL: Duration = Duration::from_millis(150);

type Item = Result<Change<EndpointKey, Endpoint>, DiscoverError>;

/// A zone `example.` served over UDP on 127.0.0.1, whose records the test can change.
struct TestDns {
    zone: Arc<InMemoryZoneHandler>,
    server: Server<Catalog>,
    addr: SocketAddr,
    serial: u32,
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn origin() -> Name {
    name("example.")
}

impl TestDns {
    async fn start() -> Self {
        Self::start_on("127.0.0.1:0".parse().unwrap(), None).await
    }

    async fn start_on(addr: SocketAddr, zone: Option<Arc<InMemoryZoneHandler>>) -> Self {
        let zone = zone.unwrap_or_else(|| {
            let mut zone =
                InMemoryZoneHandler::empty(origin(), ZoneType::Primary, AxfrPolicy::Deny);
            let soa = SOA::new(
                name("ns.example."),
                name("admin.example."),
                1,
                60,
                60,
                60,
                0,
            );
            assert!(zone.upsert_mut(Record::from_rdata(origin(), 0, RData::SOA(soa)), 1));
            Arc::new(zone)
        });
        let mut catalog = Catalog::new();
        catalog.upsert(
            LowerName::new(&origin()),
            vec![zone.clone() as Arc<dyn ZoneHandler>],
        );
        let socket = UdpSocket::bind(addr).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let mut server = Server::new(catalog);
        server.register_socket(socket);
        Self {
            zone,
            server,
            addr,
            serial: 1,
        }
    }

    /// Replaces the `record_type` records of `owner` (none: delete the name's records of that type).
    async fn set(&mut self, owner: &str, record_type: RecordType, data: Vec<RData>) {
        self.serial += 1;
        let key = RrKey::new(LowerName::new(&name(owner)), record_type);
        self.zone.records_mut().await.remove(&key);
        for rdata in data {
            assert!(
                self.zone
                    .upsert(Record::from_rdata(name(owner), 0, rdata), self.serial)
                    .await
            );
        }
    }

    async fn stop(mut self) -> (SocketAddr, Arc<InMemoryZoneHandler>) {
        self.server.shutdown_gracefully().await.unwrap();
        (self.addr, self.zone)
    }
}

fn a(ip: [u8; 4]) -> RData {
    RData::A(A(Ipv4Addr::from(ip)))
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> RData {
    RData::SRV(SRV::new(priority, weight, port, name(target)))
}

fn config() -> DnsDiscoverConfig {
    DnsDiscoverConfig::default().ttl_bounds(MIN_TTL, Duration::from_secs(2))
}

async fn next(discover: &mut DnsDiscover) -> Item {
    let item = tokio::time::timeout(
        PATIENCE,
        std::future::poll_fn(|cx| Pin::new(&mut *discover).poll_next(cx)),
    )
    .await
    .expect("the stream produced nothing in time");
    item.expect("discovery streams never end")
}

/// Takes `n` successful changes, as insert/remove maps keyed by address.
async fn changes(
    discover: &mut DnsDiscover,
    n: usize,
) -> (BTreeMap<SocketAddr, u32>, Vec<SocketAddr>) {
    let (mut inserted, mut removed) = (BTreeMap::new(), Vec::new());
    for _ in 0..n {
        match next(discover).await {
            Ok(Change::Insert(key, ep)) => {
                assert_eq!(key, ep.key());
                inserted.insert(key.0, ep.weight().get());
            }
            Ok(Change::Remove(key)) => removed.push(key.0),
            Err(e) => panic!("unexpected error item: {e}"),
        }
    }
    removed.sort();
    (inserted, removed)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

#[tokio::test]
async fn a_and_aaaa_records_follow_the_zone() {
    let mut dns = TestDns::start().await;
    dns.set(
        "web.example.",
        RecordType::A,
        vec![a([10, 0, 0, 1]), a([10, 0, 0, 2])],
    )
    .await;
    dns.set(
        "web.example.",
        RecordType::AAAA,
        vec![RData::AAAA(AAAA(Ipv6Addr::LOCALHOST))],
    )
    .await;

    let target = DnsTarget::host("web.example.", 8080).unwrap();
    let mut discover = DnsDiscover::with_nameserver(target, dns.addr, config()).unwrap();
    let (inserted, removed) = changes(&mut discover, 3).await;
    assert_eq!(
        inserted.keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.1:8080"), sa("10.0.0.2:8080"), sa("[::1]:8080")]
    );
    assert!(inserted.values().all(|&w| w == 1));
    assert!(removed.is_empty());

    // 10.0.0.2 leaves, 10.0.0.3 arrives: exactly one insert and one remove, 10.0.0.1 untouched.
    dns.set(
        "web.example.",
        RecordType::A,
        vec![a([10, 0, 0, 1]), a([10, 0, 0, 3])],
    )
    .await;
    let (inserted, removed) = changes(&mut discover, 2).await;
    assert_eq!(
        inserted.keys().copied().collect::<Vec<_>>(),
        vec![sa("10.0.0.3:8080")]
    );
    assert_eq!(removed, vec![sa("10.0.0.2:8080")]);
    assert_eq!(discover.endpoints().len(), 3);
}

#[tokio::test]
async fn srv_weights_ports_and_priorities() {
    let mut dns = TestDns::start().await;
    dns.set(
        "_http._tcp.example.",
        RecordType::SRV,
        vec![
            srv(10, 5, 9001, "a.example."),
            srv(10, 0, 9002, "b.example."),
            srv(20, 1, 9003, "backup.example."),
        ],
    )
    .await;
    dns.set("a.example.", RecordType::A, vec![a([10, 1, 0, 1])])
        .await;
    dns.set("b.example.", RecordType::A, vec![a([10, 1, 0, 2])])
        .await;
    dns.set("backup.example.", RecordType::A, vec![a([10, 9, 0, 1])])
        .await;

    let target: DnsTarget = "_http._tcp.example.".parse().unwrap();
    assert!(target.is_srv());
    let mut discover = DnsDiscover::with_nameserver(target, dns.addr, config()).unwrap();
    let (inserted, _) = changes(&mut discover, 2).await;
    // Only priority 10 is used; SRV weight 0 becomes 1.
    assert_eq!(
        inserted,
        BTreeMap::from([(sa("10.1.0.1:9001"), 5), (sa("10.1.0.2:9002"), 1)])
    );

    // A weight change is an Insert that replaces the endpoint, never a Remove.
    dns.set(
        "_http._tcp.example.",
        RecordType::SRV,
        vec![
            srv(10, 7, 9001, "a.example."),
            srv(10, 0, 9002, "b.example."),
            srv(20, 1, 9003, "backup.example."),
        ],
    )
    .await;
    let (inserted, removed) = changes(&mut discover, 1).await;
    assert_eq!(inserted, BTreeMap::from([(sa("10.1.0.1:9001"), 7)]));
    assert!(removed.is_empty());

    // The priority-10 targets vanish from DNS: the backup priority takes over.
    dns.set("a.example.", RecordType::A, vec![]).await;
    dns.set("b.example.", RecordType::A, vec![]).await;
    let (inserted, removed) = changes(&mut discover, 3).await;
    assert_eq!(inserted, BTreeMap::from([(sa("10.9.0.1:9003"), 1)]));
    assert_eq!(removed, vec![sa("10.1.0.1:9001"), sa("10.1.0.2:9002")]);
}

#[tokio::test]
async fn nxdomain_empties_the_set_only_when_confirmed() {
    let mut dns = TestDns::start().await;
    dns.set("gone.example.", RecordType::A, vec![a([10, 2, 0, 1])])
        .await;
    let target = DnsTarget::host("gone.example.", 80).unwrap();
    let mut discover =
        DnsDiscover::with_nameserver(target, dns.addr, config().empty_after(2)).unwrap();
    let (inserted, _) = changes(&mut discover, 1).await;
    assert_eq!(inserted.len(), 1);

    dns.set("gone.example.", RecordType::A, vec![]).await;
    let emptied_at = tokio::time::Instant::now();
    let (inserted, removed) = changes(&mut discover, 1).await;
    assert!(inserted.is_empty());
    assert_eq!(removed, vec![sa("10.2.0.1:80")]);
    // The first empty answer was only a warning; a confirming lookup came `MIN_TTL` later.
    assert!(
        emptied_at.elapsed() >= MIN_TTL,
        "removed after {:?}",
        emptied_at.elapsed()
    );
}

#[tokio::test]
async fn failed_lookups_keep_the_last_set_and_report() {
    let mut dns = TestDns::start().await;
    dns.set(
        "svc.example.",
        RecordType::A,
        vec![a([10, 3, 0, 1]), a([10, 3, 0, 2])],
    )
    .await;

    // A resolver that gives up quickly, so the outage shows within the test's patience.
    let mut udp = ConnectionConfig::udp();
    udp.port = dns.addr.port();
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(vec![NameServerConfig::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            true,
            vec![udp],
        )]),
        TokioRuntimeProvider::default(),
    );
    builder.options_mut().timeout = Duration::from_millis(300);
    builder.options_mut().attempts = 1;
    builder.options_mut().use_hosts_file = ResolveHosts::Never;
    let resolver = builder.build().unwrap();
    let target = DnsTarget::host("svc.example.", 443).unwrap();
    let mut discover = DnsDiscover::new(target, resolver, config());
    let (inserted, _) = changes(&mut discover, 2).await;
    assert_eq!(inserted.len(), 2);

    // The server goes away: a typed error naming the query, and no removals.
    let (addr, zone) = dns.stop().await;
    match next(&mut discover).await {
        Err(e @ DiscoverError::DnsLookup { .. }) => {
            assert_eq!(e.source_kind(), "dns");
            assert!(e.to_string().contains("svc.example."), "{e}");
        }
        other => panic!("expected a lookup error, got {other:?}"),
    }
    assert_eq!(discover.endpoints().len(), 2);

    // It comes back on the same port with one address fewer: only that one is removed.
    let mut dns = TestDns::start_on(addr, Some(zone)).await;
    dns.set("svc.example.", RecordType::A, vec![a([10, 3, 0, 1])])
        .await;
    loop {
        match next(&mut discover).await {
            // More failures may be reported while the server restarts.
            Err(DiscoverError::DnsLookup { .. }) => continue,
            Ok(Change::Remove(key)) => {
                assert_eq!(key.0, sa("10.3.0.2:443"));
                break;
            }
            other => panic!("expected the removal of 10.3.0.2, got {other:?}"),
        }
    }
    assert_eq!(discover.endpoints().len(), 1);
}

#[test]
fn targets_parse_and_reject() {
    let host: DnsTarget = "web.example.:8080".parse().unwrap();
    assert!(!host.is_srv());
    assert_eq!(host.to_string(), "web.example.:8080");
    assert!(matches!(
        "web.example.".parse::<DnsTarget>(),
        Err(DiscoverError::DnsTarget { .. })
    ));
    assert!(matches!(
        "web.example.:http".parse::<DnsTarget>(),
        Err(DiscoverError::DnsTarget { .. })
    ));
    assert!(DnsTarget::host("", 80).is_err());
}
