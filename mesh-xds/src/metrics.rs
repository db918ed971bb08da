//! OpenTelemetry instruments of the xDS client.
//!
//! The table of instruments is in the [crate docs](crate#metrics).
//!
//! Every series is recorded at 0 when the client is built, so the first increment shows in
//! Prometheus' `increase()`. The instruments come from [`XdsConfig::meter`](crate::XdsConfig::meter),
//! by default the global provider's `mesh-xds` meter (a no-op until the application installs one).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use mesh_core::Endpoint;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Meter, UpDownCounter};

use crate::{CLUSTER_TYPE_URL, ENDPOINT_TYPE_URL};

const TYPES: [&str; 3] = ["cds", "eds", "other"];
const RESULTS: [&str; 2] = ["accepted", "rejected"];

#[derive(Debug)]
pub(crate) struct XdsMetrics {
    connected: UpDownCounter<i64>,
    streams: Counter<u64>,
    updates: Counter<u64>,
    /// `[type][result]`, built once.
    update_attributes: [[[KeyValue; 2]; 2]; 3],
    version: Gauge<u64>,
    update_time: Gauge<u64>,
    endpoints: Gauge<u64>,
    ignored_fields: Counter<u64>,
    /// What the gauges last said, to zero a series that is no longer current.
    last: Mutex<LastRecorded>,
}

#[derive(Debug, Default)]
struct LastRecorded {
    /// The current version, by type index.
    versions: HashMap<usize, String>,
    /// The priorities recorded, by cluster.
    priorities: HashMap<String, BTreeSet<u32>>,
    /// The digest of the last resource version whose ignored fields were counted, by resource
    /// kind (CDS or EDS) and name.
    ignored_versions: HashMap<(Resource, String), u64>,
}

/// The kind of resource whose ignored fields are counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Resource {
    Cluster,
    Assignment,
}

impl XdsMetrics {
    pub(crate) fn new(meter: Option<&Meter>) -> Self {
        let global;
        let meter = match meter {
            Some(meter) => meter,
            None => {
                global = opentelemetry::global::meter("mesh-xds");
                &global
            }
        };
        let metrics = Self {
            connected: meter
                .i64_up_down_counter("mesh.xds.stream.connected")
                .with_description("1 while the ADS stream to the control plane is open")
                .with_unit("{stream}")
                .build(),
            streams: meter
                .u64_counter("mesh.xds.streams")
                .with_description("ADS streams opened (reconnects included)")
                .with_unit("{stream}")
                .build(),
            updates: meter
                .u64_counter("mesh.xds.updates")
                .with_description("xDS responses, by resource type and ACK/NACK")
                .with_unit("{update}")
                .build(),
            version: meter
                .u64_gauge("mesh.xds.version")
                .with_description(
                    "1 for the accepted version_info of each resource type, 0 for earlier ones",
                )
                .with_unit("{version}")
                .build(),
            update_time: meter
                .u64_gauge("mesh.xds.update.time")
                .with_description("Unix time of the last accepted update, by resource type")
                .with_unit("s")
                .build(),
            endpoints: meter
                .u64_gauge("mesh.xds.endpoints")
                .with_description("Usable endpoints of each subscribed cluster, by priority")
                .with_unit("{endpoint}")
                .build(),
            ignored_fields: meter
                .u64_counter("mesh.xds.ignored_fields")
                .with_description(
                    "Unsupported fields set in accepted xDS resources, once per resource version",
                )
                .with_unit("{field}")
                .build(),
            last: Mutex::new(LastRecorded::default()),
            update_attributes: TYPES.map(|kind| {
                RESULTS.map(|result| {
                    [
                        KeyValue::new("mesh.xds.type", kind),
                        KeyValue::new("mesh.xds.result", result),
                    ]
                })
            }),
        };
        metrics.connected.add(0, &[]);
        metrics.streams.add(0, &[]);
        for attributes in metrics.update_attributes.iter().flatten() {
            metrics.updates.add(0, attributes);
        }
        metrics
    }

    /// Counts a new stream; the stream counts as connected until the guard is dropped (also when
    /// the client is dropped mid-stream).
    pub(crate) fn connected(&self) -> ConnectedGuard<'_> {
        self.streams.add(1, &[]);
        self.connected.add(1, &[]);
        ConnectedGuard(self)
    }

    pub(crate) fn update(&self, type_url: &str, accepted: bool) {
        let kind = type_index(type_url);
        let result = usize::from(!accepted);
        self.updates.add(1, &self.update_attributes[kind][result]);
    }

    /// Records `version` as the current one of `type_url`, accepted now.
    pub(crate) fn accepted_version(&self, type_url: &str, version: &str) {
        let kind = type_index(type_url);
        let type_attribute = KeyValue::new("mesh.xds.type", TYPES[kind]);
        let attributes = |version: &str| {
            [
                type_attribute.clone(),
                KeyValue::new("mesh.xds.version", version.to_owned()),
            ]
        };
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(previous) = last.versions.insert(kind, version.to_owned())
            && previous != version
        {
            self.version.record(0, &attributes(&previous));
        }
        self.version.record(1, &attributes(version));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.update_time.record(now, &[type_attribute]);
    }

    /// Counts each of `fields` once for `name`, unless this version of the resource (`digest`)
    /// was counted already; returns whether it counted (a new version with ignored fields).
    pub(crate) fn ignored_fields(
        &self,
        kind: Resource,
        name: &str,
        digest: u64,
        fields: &[&'static str],
    ) -> bool {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let previous = last
            .ignored_versions
            .insert((kind, name.to_owned()), digest);
        if previous == Some(digest) || fields.is_empty() {
            return false;
        }
        for field in fields {
            self.ignored_fields.add(
                1,
                &[
                    KeyValue::new("mesh.xds.cluster", name.to_owned()),
                    KeyValue::new("mesh.xds.field", *field),
                ],
            );
        }
        true
    }

    /// Forgets the counted version of a removed resource, so its return counts again.
    pub(crate) fn forget_resource(&self, kind: Resource, name: &str) {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        last.ignored_versions.remove(&(kind, name.to_owned()));
    }

    /// Records `cluster`'s endpoints that take new requests (draining ones are left out) by
    /// priority; a priority that emptied is recorded at 0.
    pub(crate) fn cluster_endpoints(&self, cluster: &str, endpoints: &[Endpoint]) {
        let mut counts: BTreeMap<u32, u64> = BTreeMap::new();
        for endpoint in endpoints.iter().filter(|e| !e.is_draining()) {
            *counts.entry(endpoint.priority()).or_default() += 1;
        }
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        let before = last.priorities.remove(cluster).unwrap_or_default();
        for priority in before.iter().filter(|p| !counts.contains_key(*p)) {
            self.endpoints
                .record(0, &endpoint_attributes(cluster, *priority));
        }
        for (priority, count) in &counts {
            self.endpoints
                .record(*count, &endpoint_attributes(cluster, *priority));
        }
        last.priorities
            .insert(cluster.to_owned(), counts.into_keys().collect());
    }
}

fn endpoint_attributes(cluster: &str, priority: u32) -> [KeyValue; 2] {
    [
        KeyValue::new("mesh.xds.cluster", cluster.to_owned()),
        KeyValue::new("mesh.xds.priority", priority.to_string()),
    ]
}

fn type_index(type_url: &str) -> usize {
    match type_url {
        CLUSTER_TYPE_URL => 0,
        ENDPOINT_TYPE_URL => 1,
        _ => 2,
    }
}

/// Takes the stream's "connected" contribution back when dropped.
#[derive(Debug)]
pub(crate) struct ConnectedGuard<'a>(&'a XdsMetrics);

impl Drop for ConnectedGuard<'_> {
    fn drop(&mut self) {
        self.0.connected.add(-1, &[]);
    }
}

#[cfg(test)]
mod tests {
    use mesh_test::TestMetrics;

    use super::*;

    #[test]
    fn ignored_fields_count_once_per_resource_version() {
        let test = TestMetrics::new();
        let metrics = XdsMetrics::new(Some(&test.meter()));
        let fields = ["lb_subset_config", "health_checks"];
        assert!(metrics.ignored_fields(Resource::Cluster, "orders", 1, &fields));
        // The same version again (a resend), and an assignment of the same name: no new count
        // for the cluster.
        assert!(!metrics.ignored_fields(Resource::Cluster, "orders", 1, &fields));
        assert!(metrics.ignored_fields(Resource::Assignment, "orders", 1, &["named_endpoints"]));
        // A new version without ignored fields counts nothing; the next one with them counts.
        assert!(!metrics.ignored_fields(Resource::Cluster, "orders", 2, &[]));
        assert!(metrics.ignored_fields(Resource::Cluster, "orders", 3, &fields[..1]));
        // A removed cluster that comes back unchanged counts again.
        metrics.forget_resource(Resource::Cluster, "orders");
        assert!(metrics.ignored_fields(Resource::Cluster, "orders", 3, &fields[..1]));

        let counter = test.counter("mesh.xds.ignored_fields", "{field}");
        let count = |field: &str| {
            counter.value(&[("mesh.xds.cluster", "orders"), ("mesh.xds.field", field)])
        };
        assert_eq!(count("lb_subset_config"), 3);
        assert_eq!(count("health_checks"), 1);
        assert_eq!(count("named_endpoints"), 1);
    }

    #[test]
    fn endpoints_gauge_counts_non_draining_endpoints_per_priority() {
        let test = TestMetrics::new();
        let metrics = XdsMetrics::new(Some(&test.meter()));
        let endpoint = |port: u16, priority: u32, draining: bool| {
            Endpoint::builder(([10, 0, 0, 1], port).into())
                .priority(priority)
                .draining(draining)
                .build()
                .unwrap()
        };
        metrics.cluster_endpoints(
            "orders",
            &[
                endpoint(1, 0, false),
                endpoint(2, 0, true),
                endpoint(3, 2, false),
                endpoint(4, 2, false),
            ],
        );
        let gauge = test.gauge("mesh.xds.endpoints", "{endpoint}");
        let at = |p: &str| gauge.value(&[("mesh.xds.cluster", "orders"), ("mesh.xds.priority", p)]);
        assert_eq!((at("0"), at("2")), (1, 2));
        // Priority 2 empties: its series drops to 0.
        metrics.cluster_endpoints("orders", &[endpoint(1, 0, false)]);
        let gauge = test.gauge("mesh.xds.endpoints", "{endpoint}");
        let at = |p: &str| gauge.value(&[("mesh.xds.cluster", "orders"), ("mesh.xds.priority", p)]);
        assert_eq!((at("0"), at("2")), (1, 0));
    }
}
