//! The exact McNemar test for two runs scored right/wrong on the same samples. Only the discordant pairs
//! carry information: under "both runs are equally accurate" each of the `a_only + b_only` discordant samples
//! is equally likely to favour either run, so the count favouring one is Binomial(n, 1/2). The exact
//! binomial p-value is used rather than the chi-square approximation because benchmark comparisons often
//! have few discordant pairs, exactly where the approximation is poor.

/// Two-sided exact McNemar p-value: twice the smaller binomial tail, capped at 1. `a_only`: pairs where run
/// a was right and run b wrong; `b_only`: the reverse. No discordant pairs gives 1.
pub fn exact_p_value(a_only: usize, b_only: usize) -> f64 {
    let n = a_only + b_only;
    if n == 0 {
        return 1.0;
    }
    let smaller = a_only.min(b_only);
    // ln C(n, k) − n ln 2, term by term: stays finite for any n where 0.5^n underflows.
    let ln_half_n = -(n as f64) * std::f64::consts::LN_2;
    let mut ln_choose = 0.0f64;
    let mut tail = 0.0f64;
    for k in 0..=smaller {
        if k > 0 {
            ln_choose += ((n - k + 1) as f64).ln() - (k as f64).ln();
        }
        tail += (ln_choose + ln_half_n).exp();
    }
    (2.0 * tail).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_textbook_values() {
        // b = 2, c = 9: 2 · (C(11,0) + C(11,1) + C(11,2)) / 2^11 = 134 / 2048.
        assert!((exact_p_value(2, 9) - 134.0 / 2048.0).abs() < 1e-12);
        assert_eq!(exact_p_value(9, 2), exact_p_value(2, 9));
        // scipy.stats.binomtest(0, 10).pvalue == 0.001953125
        assert!((exact_p_value(0, 10) - 0.001953125).abs() < 1e-12);
        // Balanced discordance is no evidence at all.
        assert_eq!(exact_p_value(5, 5), 1.0);
        assert_eq!(exact_p_value(0, 0), 1.0);
        // scipy.stats.binomtest(21, 59).pvalue == 0.036343...
        assert!((exact_p_value(21, 38) - 0.036_343_18).abs() < 1e-7, "{}", exact_p_value(21, 38));
    }

    #[test]
    fn stays_finite_for_large_counts() {
        let p = exact_p_value(600, 700);
        assert!(p > 0.0 && p < 0.01, "{p}");
        assert!((exact_p_value(2000, 2000) - 1.0).abs() < 1e-9);
    }
}
