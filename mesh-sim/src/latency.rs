//! Latency distributions: [`Latency`].

use std::time::Duration;

use crate::SimError;

/// The σ used by [`Latency::log_normal`]: with σ = 0.5 the p99 is about 3.2 × the median and the
/// p99.9 about 4.7 ×, a tail in the range commonly measured for RPC services that do a little work
/// per request (a 5 ms median gives a p99 near 16 ms).
pub const DEFAULT_SIGMA: f64 = 0.5;

/// The longest latency a sample can take; larger draws are clamped to it, so an extreme σ never
/// overflows a `Duration`.
pub const MAX_LATENCY: Duration = Duration::from_secs(3600);

/// How long a healthy endpoint takes to answer one request.
///
/// Each request draws one sample, independently of every other (the endpoint does not queue: its
/// latency does not grow with its load).
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Latency {
    /// Always this long.
    Fixed(Duration),
    /// Log-normal: `median × e^(σ·Z)` with `Z` standard normal.
    ///
    /// `sigma` (σ) is the standard deviation of the *logarithm* of the latency: `median × e^σ` is
    /// the 84th percentile, `median × e^(2.326 σ)` the 99th and `median × e^(3.090 σ)` the
    /// 99.9th. σ = 0 is a fixed latency; σ must be finite and not negative.
    LogNormal {
        /// The 50th percentile.
        median: Duration,
        /// The standard deviation of `ln(latency)`.
        sigma: f64,
    },
}

impl Latency {
    /// Log-normal around `median` with σ = [`DEFAULT_SIGMA`].
    pub fn log_normal(median: Duration) -> Self {
        Latency::LogNormal {
            median,
            sigma: DEFAULT_SIGMA,
        }
    }

    /// Checks the parameters: σ finite and not negative.
    pub fn validate(&self) -> Result<(), SimError> {
        match *self {
            Latency::Fixed(_) => Ok(()),
            Latency::LogNormal { sigma, .. } if sigma.is_finite() && sigma >= 0.0 => Ok(()),
            Latency::LogNormal { .. } => Err(SimError::config(
                "latency.sigma",
                "must be finite and not negative",
            )),
        }
    }

    /// Draws one latency from `rng`, clamped to [`MAX_LATENCY`].
    ///
    /// Log-normal draws use the Box–Muller transform (one normal per two uniforms; the second
    /// normal is not kept, so every sample costs the same two draws from `rng`). An invalid σ
    /// gives the median.
    pub fn sample(&self, rng: &mut fastrand::Rng) -> Duration {
        match *self {
            Latency::Fixed(d) => d.min(MAX_LATENCY),
            Latency::LogNormal { median, sigma } => {
                // u1 in (0, 1] so that ln(u1) is finite; u2 in [0, 1).
                let u1 = 1.0 - rng.f64();
                let u2 = rng.f64();
                if !(sigma.is_finite() && sigma >= 0.0) {
                    return median.min(MAX_LATENCY);
                }
                let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                scale(median, (sigma * z).exp())
            }
        }
    }
}

/// `d × factor`, clamped to `[0, MAX_LATENCY]`; a NaN factor gives `d`.
pub(crate) fn scale(d: Duration, factor: f64) -> Duration {
    if factor.is_nan() {
        return d.min(MAX_LATENCY);
    }
    let secs = d.as_secs_f64() * factor.max(0.0);
    if secs >= MAX_LATENCY.as_secs_f64() {
        MAX_LATENCY
    } else {
        Duration::from_secs_f64(secs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quantile(sorted: &[Duration], q: f64) -> Duration {
        sorted[((q * sorted.len() as f64).ceil() as usize).max(1) - 1]
    }

    #[test]
    fn log_normal_quantiles_match_the_formula() {
        let median = Duration::from_millis(5);
        let latency = Latency::log_normal(median);
        let mut rng = fastrand::Rng::with_seed(11);
        let mut samples: Vec<Duration> = (0..200_000).map(|_| latency.sample(&mut rng)).collect();
        samples.sort();
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let check = |q: f64, z: f64, tolerance: f64| {
            let expected = 5.0 * (DEFAULT_SIGMA * z).exp();
            let got = ms(quantile(&samples, q));
            assert!(
                (got / expected - 1.0).abs() < tolerance,
                "q{q}: {got:.3} ms, expected {expected:.3} ms"
            );
        };
        check(0.5, 0.0, 0.01);
        check(0.84134, 1.0, 0.02);
        check(0.99, 2.326, 0.03);
        check(0.999, 3.090, 0.06);
        // Symmetric in the logarithm: the 1st percentile is median ÷ e^(2.326 σ).
        check(0.01, -2.326, 0.03);
    }

    #[test]
    fn fixed_and_zero_sigma_are_exact_and_bad_sigma_is_refused() {
        let mut rng = fastrand::Rng::with_seed(1);
        let d = Duration::from_millis(7);
        assert_eq!(Latency::Fixed(d).sample(&mut rng), d);
        let flat = Latency::LogNormal {
            median: d,
            sigma: 0.0,
        };
        assert!((0..100).all(|_| flat.sample(&mut rng) == d));
        for sigma in [-0.1, f64::NAN, f64::INFINITY] {
            let bad = Latency::LogNormal { median: d, sigma };
            assert!(bad.validate().is_err());
            assert_eq!(bad.sample(&mut rng), d);
        }
        assert!(flat.validate().is_ok());
    }

    #[test]
    fn extreme_draws_are_clamped() {
        let huge = Latency::LogNormal {
            median: Duration::from_secs(3000),
            sigma: 50.0,
        };
        let mut rng = fastrand::Rng::with_seed(3);
        assert!((0..1000).all(|_| huge.sample(&mut rng) <= MAX_LATENCY));
        assert_eq!(scale(Duration::from_secs(1), f64::INFINITY), MAX_LATENCY);
        assert_eq!(scale(Duration::from_secs(1), -3.0), Duration::ZERO);
    }
}
