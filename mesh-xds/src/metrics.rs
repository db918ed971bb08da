//! OpenTelemetry instruments of the xDS client.
//!
//! The table of instruments is in the [crate docs](crate#metrics).
//!
//! Every series is recorded at 0 when the client is built, so the first increment shows in
//! Prometheus' `increase()`. The instruments come from [`XdsConfig::meter`](crate::XdsConfig::meter),
//! by default the global provider's `mesh-xds` meter (a no-op until the application installs one).

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Meter, UpDownCounter};

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
        let kind = match type_url {
            CLUSTER_TYPE_URL => 0,
            ENDPOINT_TYPE_URL => 1,
            _ => 2,
        };
        let result = usize::from(!accepted);
        self.updates.add(1, &self.update_attributes[kind][result]);
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
