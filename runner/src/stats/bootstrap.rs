//! Bootstrap resampling for quality metrics: a percentile 95% confidence interval of a mean, and the paired
//! bootstrap of the mean difference between two runs on the same samples (interval and two-sided p-value).
//! Resampling draws from runner's portable seeded generator, so the same values give the same interval on
//! every machine and every run.

use super::percentile;
use crate::rng::SplitMix64;

/// Resamples per interval: enough for stable 2.5% / 97.5% percentiles (the usual recommendation is ≥ 1000).
pub const RESAMPLES: usize = 2000;
/// The fixed seed of every bootstrap in runner: an interval is a function of the data alone.
pub const SEED: u64 = 0x5EED_B007;

/// A percentile bootstrap 95% confidence interval of the mean of `values`; `None` for no values.
pub fn mean_ci95(values: &[f64]) -> Option<(f64, f64)> {
    if values.is_empty() {
        return None;
    }
    let mut rng = SplitMix64::new(SEED);
    let mut means = resampled_means(values, 0.0, &mut rng);
    Some(percentile_interval(&mut means))
}

/// The paired bootstrap of mean(b − a) over paired values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedBootstrap {
    /// Percentile 95% interval of the mean difference.
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// Two-sided p-value of "the mean difference is zero": the differences are shifted to mean zero (the
    /// null hypothesis made true), resampled, and p is the share of resampled means at least as far from
    /// zero as the observed mean, with the usual +1 correction so p is never exactly 0.
    pub p_value: f64,
    pub resamples: usize,
}

/// `differences` are per-sample b − a; `None` for no pairs.
pub fn paired_difference(differences: &[f64]) -> Option<PairedBootstrap> {
    if differences.is_empty() {
        return None;
    }
    let n = differences.len() as f64;
    let observed = differences.iter().sum::<f64>() / n;
    let mut rng = SplitMix64::new(SEED);
    let mut means = resampled_means(differences, 0.0, &mut rng);
    let (ci95_low, ci95_high) = percentile_interval(&mut means);
    let null_means = resampled_means(differences, observed, &mut rng);
    // A tolerance keeps all-identical differences (every resample equals the observed mean) at p = 1.
    let tolerance = 1e-12 * observed.abs().max(1.0);
    let extreme = null_means.iter().filter(|m| m.abs() >= observed.abs() - tolerance).count();
    let p_value = ((extreme + 1) as f64 / (RESAMPLES + 1) as f64).min(1.0);
    Some(PairedBootstrap { ci95_low, ci95_high, p_value, resamples: RESAMPLES })
}

/// `RESAMPLES` means of `values − shift`, each over a resample with replacement of the same size.
fn resampled_means(values: &[f64], shift: f64, rng: &mut SplitMix64) -> Vec<f64> {
    let n = values.len();
    (0..RESAMPLES)
        .map(|_| {
            let sum: f64 = (0..n).map(|_| values[pick(rng, n)] - shift).sum();
            sum / n as f64
        })
        .collect()
}

/// A uniform index below `n` (multiply-shift: no modulo bias worth a thought at these sizes).
fn pick(rng: &mut SplitMix64, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// The 2.5th and 97.5th percentiles, interpolated as every other percentile runner reports.
fn percentile_interval(values: &mut [f64]) -> (f64, f64) {
    values.sort_by(f64::total_cmp);
    (percentile(values, 2.5), percentile(values, 97.5))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interval_of_a_mean_is_deterministic_and_plausible() {
        // 60 of 100 right: the normal-approximation interval is 0.60 ± 0.096.
        let values: Vec<f64> = (0..100).map(|i| if i < 60 { 1.0 } else { 0.0 }).collect();
        let (low, high) = mean_ci95(&values).unwrap();
        assert_eq!(mean_ci95(&values).unwrap(), (low, high));
        assert!((low - 0.504).abs() < 0.02 && (high - 0.696).abs() < 0.02, "{low} {high}");
        assert_eq!(mean_ci95(&[3.0; 5]).unwrap(), (3.0, 3.0));
        assert!(mean_ci95(&[]).is_none());
    }

    #[test]
    fn paired_interval_covers_the_true_difference() {
        // b = a + 0.5 + noise: a true difference of 0.5, far from zero relative to its spread.
        let mut rng = SplitMix64::new(11);
        let differences: Vec<f64> = (0..200).map(|_| 0.5 + (rng.next_f64() - 0.5)).collect();
        let result = paired_difference(&differences).unwrap();
        assert!(result.ci95_low < 0.5 && 0.5 < result.ci95_high, "{result:?}");
        assert!(result.ci95_high - result.ci95_low < 0.1, "{result:?}");
        assert!(result.p_value < 0.001, "{result:?}");
    }

    #[test]
    fn no_difference_is_not_significant() {
        let mut rng = SplitMix64::new(5);
        let differences: Vec<f64> = (0..200).map(|_| rng.next_f64() - 0.5).collect();
        let result = paired_difference(&differences).unwrap();
        assert!(result.ci95_low < 0.0 && 0.0 < result.ci95_high, "{result:?}");
        assert!(result.p_value > 0.05, "{result:?}");
        assert_eq!(paired_difference(&[0.0; 10]).unwrap().p_value, 1.0);
    }
}
