//! Paired comparisons in a report: for each row that ran samples in common with the baseline, the
//! difference of each shared metric with its confidence interval and p-value. The statistics are
//! `stats::paired::compare`'s; this module only picks the pairs and shapes the rows.

use super::model::{PairedRow, Row};
use crate::results::folder::RunFolder;
use crate::stats::paired::compare;

/// Baseline against every other row that shares samples with it, in row order.
pub(crate) fn paired_rows(runs: &[RunFolder], rows: &[Row], baseline: usize) -> Vec<PairedRow> {
    let mut out = Vec::new();
    for (i, (run, row)) in runs.iter().zip(rows).enumerate() {
        if i == baseline {
            continue;
        }
        let comparison = compare(&runs[baseline], run);
        if comparison.shared_samples == 0 {
            continue;
        }
        for m in comparison.metrics {
            out.push(PairedRow {
                row: row.name.clone(),
                baseline: rows[baseline].name.clone(),
                metric: m.metric,
                n: m.n,
                mean_baseline: m.mean_a,
                mean_row: m.mean_b,
                difference: m.difference,
                ci95_low: m.ci95_low,
                ci95_high: m.ci95_high,
                p_value: m.p_value,
                test: m.test.name().to_string(),
                verdict: if m.significant { "significant" } else { "not significant" }.to_string(),
            });
        }
    }
    out
}
