//! From a [`ClusterPolicy`] to mesh-balance's settings: what of a CDS cluster a client can apply
//! when its stack is built.
//!
//! The mapping, and what is left out, is in the [crate docs](crate#applying-a-policy).

use mesh_balance::{BalanceConfig, OutlierConfig};

use crate::ClusterPolicy;

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

    /// `base` with this cluster's load strategy, outlier settings and pending-request bound
    /// applied (see the [module table](crate#applying-a-policy)).
    pub fn balance_config(&self, base: BalanceConfig) -> BalanceConfig {
        let outliers = self.outlier_config(*base.get_outliers());
        let mut config = base.outliers(outliers);
        if let Some(load) = self.lb_policy.load_strategy() {
            config = config.load(load);
        }
        if let Some(pending) = self.circuit_breakers.max_pending_requests {
            config = config.max_waiters(usize::try_from(pending).unwrap_or(usize::MAX));
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use mesh_balance::LoadStrategy;

    use super::*;
    use crate::{CircuitBreakerThresholds, LbPolicy, OutlierPolicy};

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
        assert_eq!(config.get_outliers(), base.get_outliers());
    }
}
