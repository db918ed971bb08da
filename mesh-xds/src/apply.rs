//! From a [`ClusterPolicy`] to mesh-balance's settings: what of a CDS cluster a client can apply
//! when its stack is built.
//!
//! The mapping, and what is left out, is in the [crate docs](crate#applying-a-policy).

use mesh_balance::{BalanceConfig, LocalityConfig, OutlierConfig};
use mesh_core::{Endpoint, Locality};

use crate::{AssignmentPolicy, ClusterPolicy};

/// mesh-balance's locality [`threshold`](LocalityConfig::threshold) for an EDS
/// `overprovisioning_factor` (in percent): `100 / factor`, the healthy share at which a tier
/// stops taking all of its traffic. Envoy's default 140 gives ≈ 0.714. A factor below 100 (a tier
/// never counts as fully available in Envoy) is clamped to 1.0, mesh-balance's highest threshold;
/// 0, which validation rejects before it gets here, gives 1.0 as well.
///
/// ```
/// assert_eq!(mesh_xds::locality_threshold(200), 0.5);
/// assert_eq!(mesh_xds::locality_threshold(80), 1.0);
/// ```
pub fn locality_threshold(overprovisioning_factor: u32) -> f64 {
    if overprovisioning_factor <= 100 {
        return 1.0;
    }
    100.0 / f64::from(overprovisioning_factor)
}

impl AssignmentPolicy {
    /// This assignment's [`locality_threshold`]: apply it with
    /// [`LocalityConfig::threshold`].
    pub fn locality_threshold(&self) -> f64 {
        locality_threshold(self.overprovisioning_factor)
    }
}

impl ClusterPolicy {
    /// `base` with this cluster's outlier detection and panic threshold applied (see the
    /// [module table](crate#applying-a-policy)).
    pub fn outlier_config(&self, base: OutlierConfig) -> OutlierConfig {
        let mut config = base;
        if let Some(o) = &self.outlier_detection {
            if let Some(failures) = o.consecutive_5xx.or(o.consecutive_gateway_failure) {
                config = config.consecutive_failures(failures);
            }
            if let Some(base) = o.base_ejection_time {
                config = config.base_ejection(base);
            }
            if let Some(percent) = o.max_ejection_percent {
                config = config.max_ejected_share(f64::from(percent) / 100.0);
            }
        }
        if let Some(percent) = self.healthy_panic_threshold {
            config = config.panic_threshold(percent / 100.0);
        }
        config
    }

    /// `base` with this cluster's load strategy, outlier settings, slow start, pending-request
    /// bound and in-flight bound (`max_requests`) applied (see the [module table](crate#applying-a-policy)).
    ///
    /// Locality is left alone: it needs where this client runs, see
    /// [`locality_config`](Self::locality_config).
    pub fn balance_config(&self, base: BalanceConfig) -> BalanceConfig {
        let outliers = self.outlier_config(*base.get_outliers());
        let slow_start = self.slow_start.as_ref().map(|s| {
            let mut ramp = *base.get_slow_start();
            if let Some(window) = s.window {
                ramp = ramp.window(window);
            }
            if let Some(aggression) = s.aggression {
                ramp = ramp.aggression(aggression);
            }
            if let Some(percent) = s.min_weight_percent {
                ramp = ramp.min_weight_percent(percent);
            }
            ramp
        });
        let mut config = base.outliers(outliers);
        if let Some(slow_start) = slow_start {
            config = config.slow_start(slow_start);
        }
        if let Some(load) = self.lb_policy.load_strategy() {
            config = config.load(load);
        }
        if let Some(pending) = self.circuit_breakers.max_pending_requests {
            config = config.max_waiters(usize::try_from(pending).unwrap_or(usize::MAX));
        }
        if let Some(requests) = self.circuit_breakers.max_requests {
            // 0 would refuse every request; Envoy reads it the same way, so keep it but at
            // mesh-balance's lowest valid bound rather than failing the whole policy.
            config = config.max_in_flight(usize::try_from(requests.max(1)).unwrap_or(usize::MAX));
        }
        config
    }

    /// The locality tiers this cluster asks for, for a client running at `local` (usually
    /// [`XdsConfig::locality`](crate::XdsConfig::locality)); `None` when the cluster names no
    /// locality policy, so the caller's own settings stay.
    ///
    /// Zone-aware routing on (any `routing_enabled` but 0) gives proximity tiers around `local`;
    /// zone-aware routing off, or locality-weighted routing, gives a single tier (an unknown local
    /// locality). Other settings are mesh-balance's defaults: chain
    /// [`threshold`](LocalityConfig::threshold) with the cluster's
    /// [`AssignmentPolicy::locality_threshold`] to honour its overprovisioning factor.
    pub fn locality_config(&self, local: &Locality) -> Option<LocalityConfig> {
        let policy = self.locality.as_ref()?;
        Some(match policy.prefers_proximity() {
            true => LocalityConfig::new(local.clone()),
            false => LocalityConfig::default(),
        })
    }

    /// `endpoints` as this cluster's balancer should see them: each carries the cluster's
    /// [`expected_identity`](Self::expected_identity) when it has exactly one (replacing what the
    /// endpoint had), and is returned unchanged otherwise.
    pub fn endpoints_with_identity(&self, endpoints: Vec<Endpoint>) -> Vec<Endpoint> {
        let Some(id) = self.expected_identity() else {
            return endpoints;
        };
        endpoints
            .into_iter()
            .map(|endpoint| {
                if endpoint.identity().is_some_and(|have| have.as_str() == id) {
                    return endpoint;
                }
                // The ID was validated when the cluster was accepted, so this cannot fail; an
                // endpoint is kept as it was rather than dropped if it ever did.
                endpoint
                    .to_builder()
                    .identity(id)
                    .build()
                    .unwrap_or(endpoint)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mesh_balance::LoadStrategy;

    use super::*;
    use crate::{
        CircuitBreakerThresholds, LbPolicy, LocalityPolicy, OutlierPolicy, SlowStartPolicy,
    };

    #[test]
    fn set_fields_override_and_unset_fields_keep_the_base() {
        let policy = ClusterPolicy {
            lb_policy: LbPolicy::LeastRequest,
            outlier_detection: Some(OutlierPolicy {
                consecutive_gateway_failure: Some(3),
                base_ejection_time: Some(Duration::from_secs(7)),
                max_ejection_percent: Some(20),
                ..Default::default()
            }),
            circuit_breakers: CircuitBreakerThresholds {
                max_pending_requests: Some(64),
                max_requests: Some(200),
                ..Default::default()
            },
            healthy_panic_threshold: Some(40.0),
            ..Default::default()
        };
        let base = BalanceConfig::default()
            .load(LoadStrategy::RoundRobin)
            .outliers(OutlierConfig::default().max_ejection(Duration::from_secs(60)));
        let config = policy.balance_config(base);
        assert_eq!(config.get_load(), &LoadStrategy::PendingRequests);
        assert_eq!(config.get_max_waiters(), 64);
        assert_eq!(config.get_max_in_flight(), Some(200));
        let expected = OutlierConfig::default()
            .max_ejection(Duration::from_secs(60))
            .consecutive_failures(3)
            .base_ejection(Duration::from_secs(7))
            .max_ejected_share(0.2)
            .panic_threshold(0.4);
        assert_eq!(config.get_outliers(), &expected);
        assert!(config.validate().is_ok());
    }

    #[test]
    fn an_empty_policy_changes_nothing_but_the_default_round_robin() {
        let base = BalanceConfig::default().max_waiters(9);
        let config = ClusterPolicy {
            lb_policy: LbPolicy::Maglev,
            ..Default::default()
        }
        .balance_config(base.clone());
        assert_eq!(config.get_load(), base.get_load());
        assert_eq!(config.get_max_waiters(), 9);
        assert_eq!(config.get_max_in_flight(), None);
        assert_eq!(config.get_outliers(), base.get_outliers());
    }

    #[test]
    fn slow_start_overrides_only_what_the_cluster_sets() {
        let base = BalanceConfig::default().slow_start(
            mesh_balance::slow_start::SlowStart::new(Duration::from_secs(5))
                .aggression(3.0)
                .cold_after(Duration::from_secs(20)),
        );
        let policy = ClusterPolicy {
            slow_start: Some(SlowStartPolicy {
                window: Some(Duration::from_secs(30)),
                min_weight_percent: Some(25.0),
                ..Default::default()
            }),
            ..Default::default()
        };
        let ramp = *policy.balance_config(base.clone()).get_slow_start();
        assert_eq!(ramp.get_window(), Duration::from_secs(30));
        assert_eq!(ramp.get_aggression(), 3.0);
        assert_eq!(ramp.get_min_weight_percent(), 25.0);
        assert_eq!(ramp.get_cold_after(), Duration::from_secs(20));
        let untouched = ClusterPolicy::default().balance_config(base.clone());
        assert_eq!(untouched.get_slow_start(), base.get_slow_start());
    }

    #[test]
    fn overprovisioning_becomes_the_locality_threshold() {
        assert!((locality_threshold(140) - 100.0 / 140.0).abs() < 1e-12);
        assert_eq!(locality_threshold(200), 0.5);
        assert_eq!(locality_threshold(100), 1.0);
        assert_eq!(locality_threshold(50), 1.0);
        assert_eq!(locality_threshold(0), 1.0);
        let threshold = AssignmentPolicy::default().locality_threshold();
        let config = LocalityConfig::default().threshold(threshold);
        assert!(BalanceConfig::default().locality(config).validate().is_ok());
    }

    #[test]
    fn zone_aware_routing_gives_proximity_tiers_and_the_rest_one_tier() {
        let local = Locality::new("eu", "eu-1a", "");
        let with = |locality| ClusterPolicy {
            locality,
            ..Default::default()
        };
        assert_eq!(with(None).locality_config(&local), None);
        let zone_aware = |routing_enabled| {
            Some(LocalityPolicy::ZoneAware {
                routing_enabled,
                min_cluster_size: None,
            })
        };
        assert_eq!(
            with(zone_aware(None)).locality_config(&local),
            Some(LocalityConfig::new(local.clone()))
        );
        assert_eq!(
            with(zone_aware(Some(0.0))).locality_config(&local),
            Some(LocalityConfig::default())
        );
        assert_eq!(
            with(Some(LocalityPolicy::LocalityWeighted)).locality_config(&local),
            Some(LocalityConfig::default())
        );
    }

    #[test]
    fn one_expected_identity_is_put_on_every_endpoint_several_on_none() {
        let id = "spiffe://cluster.local/ns/shop/sa/reviews";
        let endpoints = vec![
            Endpoint::new("10.0.0.1:80".parse().unwrap()),
            Endpoint::builder("10.0.0.2:80".parse().unwrap())
                .identity("spiffe://cluster.local/ns/shop/sa/old")
                .weight(3)
                .priority(1)
                .build()
                .unwrap(),
        ];
        let one = ClusterPolicy {
            expected_identities: vec![id.to_owned()],
            ..Default::default()
        };
        let applied = one.endpoints_with_identity(endpoints.clone());
        for endpoint in &applied {
            assert_eq!(endpoint.identity().map(|i| i.as_str()), Some(id));
        }
        assert_eq!(applied[1].weight().get(), 3);
        assert_eq!(applied[1].priority(), 1);
        let several = ClusterPolicy {
            expected_identities: vec![id.to_owned(), "spiffe://cluster.local/ns/x/sa/y".into()],
            ..Default::default()
        };
        assert_eq!(
            several.endpoints_with_identity(endpoints.clone()),
            endpoints
        );
    }
}
