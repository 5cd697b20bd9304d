//! Paired comparisons in a report: for each row that ran the same samples as the baseline, the difference
//! of each shared metric with its confidence interval and p-value, from `results::paired` (the statistics
//! live there; this module only picks the pairs and shapes the rows).

use super::model::{PairedRow, Row, RunInput};

/// The paired rows of one comparison, baseline against every other row, in row order.
pub(crate) fn paired_rows(_inputs: &[RunInput], _rows: &[Row], _baseline: usize) -> Vec<PairedRow> {
    // Filled from results::paired::compare once the statistics branch lands.
    Vec::new()
}
