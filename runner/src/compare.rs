//! `runner compare RUN_A RUN_B`: two results folders compared sample by sample (paired tests on quality,
//! ratios on speed), as a table or JSON.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::results::folder::RunFolder;
use crate::results::paired_table::render_terminal;
use crate::stats::paired::{PairedComparison, compare};

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The reference run's results folder (differences are B − A).
    pub run_a: PathBuf,
    /// The run compared against it.
    pub run_b: PathBuf,
    /// Print the comparison as JSON instead of tables.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: CompareArgs) -> Result<()> {
    let comparison = load_and_compare(&args.run_a, &args.run_b)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&comparison).context("cannot serialise the comparison")?);
    } else {
        print!("{}", render_terminal(&comparison));
    }
    Ok(())
}

/// Loads both folders and compares them; two runs with nothing in common are an error naming both.
pub fn load_and_compare(run_a: &std::path::Path, run_b: &std::path::Path) -> Result<PairedComparison> {
    let a = RunFolder::load(run_a).context("RUN_A")?;
    let b = RunFolder::load(run_b).context("RUN_B")?;
    let comparison = compare(&a, &b);
    if comparison.shared_samples == 0 {
        bail!(
            "{} ({} samples) and {} ({} samples) share no sample ids: a paired comparison needs runs over the same \
             samples (same scenario, dataset and selection)",
            run_a.display(),
            a.samples.len(),
            run_b.display(),
            b.samples.len()
        );
    }
    if comparison.metrics.is_empty() {
        bail!(
            "{} and {} share {} samples but no metric both scored (a sample counts when both runs scored it; \
             failed samples are not compared)",
            run_a.display(),
            run_b.display(),
            comparison.shared_samples
        );
    }
    Ok(comparison)
}
