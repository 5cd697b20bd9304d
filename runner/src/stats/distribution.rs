//! Summary statistics of a distribution of measurements (latencies, throughputs), with the outlier
//! warning hyperfine gives when a distribution is too unstable to trust its mean.

use serde::{Deserialize, Serialize};

/// Mean, spread and percentiles of a set of measurements, in the unit they were given in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Distribution {
    pub count: usize,
    pub mean: f64,
    pub std: f64,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
}

impl Distribution {
    /// `None` when there is nothing to summarise; NaNs are ignored.
    pub fn of(values: &[f64]) -> Option<Self> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let mean = sorted.iter().sum::<f64>() / n as f64;
        // Sample standard deviation: these are samples of a process, not the whole population.
        let std =
            if n > 1 { (sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt() } else { 0.0 };
        Some(Self {
            count: n,
            mean,
            std,
            min: sorted[0],
            median: percentile(&sorted, 50.0),
            p90: percentile(&sorted, 90.0),
            p95: percentile(&sorted, 95.0),
            p99: percentile(&sorted, 99.0),
            max: sorted[n - 1],
        })
    }

    /// A warning when outliers make the mean unreliable: hyperfine's test, values more than 3 modified
    /// z-scores from the median (median absolute deviation based).
    pub fn outlier_warning(values: &[f64], what: &str) -> Option<String> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        if sorted.len() < 3 {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let median = percentile(&sorted, 50.0);
        let mut deviations: Vec<f64> = sorted.iter().map(|v| (v - median).abs()).collect();
        deviations.sort_by(f64::total_cmp);
        let mad = percentile(&deviations, 50.0);
        if mad == 0.0 {
            return None;
        }
        let outliers = sorted.iter().filter(|v| (0.6745 * (*v - median) / mad).abs() > 3.5).count();
        (outliers > 0).then(|| {
            format!(
                "{what}: {outliers} of {} measurements are statistical outliers; another process may have \
                 disturbed the run (check the recorded background load), so treat its mean with care",
                sorted.len()
            )
        })
    }
}

/// Linear interpolation between closest ranks (the definition numpy uses by default).
pub fn percentile(sorted: &[f64], pct: f64) -> f64 {
    let rank = pct / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summarises_like_numpy() {
        let d = Distribution::of(&[4.0, 1.0, 3.0, 2.0, 5.0]).unwrap();
        assert_eq!((d.count, d.min, d.max, d.mean, d.median), (5, 1.0, 5.0, 3.0, 3.0));
        assert!((d.std - 1.5811388).abs() < 1e-6);
        // numpy.percentile([1,2,3,4,5], 90) == 4.6
        assert!((d.p90 - 4.6).abs() < 1e-12);
        assert!((d.p99 - 4.96).abs() < 1e-12);
    }

    #[test]
    fn single_value_and_empty() {
        let d = Distribution::of(&[7.0]).unwrap();
        assert_eq!((d.std, d.p99, d.median), (0.0, 7.0, 7.0));
        assert!(Distribution::of(&[]).is_none());
        assert!(Distribution::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn warns_about_outliers_only_when_present() {
        let steady = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8];
        assert!(Distribution::outlier_warning(&steady, "ITL").is_none());
        let disturbed = [10.0, 10.2, 9.9, 10.1, 10.0, 9.8, 45.0];
        let warning = Distribution::outlier_warning(&disturbed, "ITL").unwrap();
        assert!(warning.starts_with("ITL: 1 of 7 measurements"), "{warning}");
    }
}
