//! `runner merge`: unions sweep folders (shards run on different machines and copied together) into one
//! sweep. Every input must hold the same plan; each run is taken from the input where it got furthest
//! (complete over aborted over failed over running over pending), its results folder copied over.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{RunState, SWEEP_CSV, SWEEP_FILE, SweepFile, load_folder, write_csv};

/// Merges `inputs` into `out` (which may be one of the inputs) and returns the merged sweep.
pub fn merge(inputs: &[PathBuf], out: &Path) -> Result<SweepFile> {
    if inputs.is_empty() {
        bail!("runner merge: give the sweep folders to merge");
    }
    let mut sweeps = Vec::with_capacity(inputs.len());
    for input in inputs {
        let sweep = load_folder(input)?
            .with_context(|| format!("{} holds no sweep ({SWEEP_FILE} or sweep.shard-I-of-N.json)", input.display()))?;
        sweeps.push((input.clone(), sweep));
    }
    let (first_dir, first) = &sweeps[0];
    for (dir, sweep) in &sweeps[1..] {
        if let Some(diff) = first.plan_difference(sweep) {
            bail!("{} and {} are not shards of one sweep: {diff}", first_dir.display(), dir.display());
        }
    }
    let mut merged = first.clone();
    let mut source: Vec<&Path> = vec![first_dir.as_path(); merged.runs.len()];
    for (dir, sweep) in &sweeps[1..] {
        for (i, run) in sweep.runs.iter().enumerate() {
            if run.status > merged.runs[i].status {
                merged.runs[i] = run.clone();
                source[i] = dir.as_path();
            }
        }
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    let out_canonical = out.canonicalize().with_context(|| format!("cannot resolve {}", out.display()))?;
    for (run, from) in merged.runs.iter().zip(&source) {
        let from_canonical = from.canonicalize().with_context(|| format!("cannot resolve {}", from.display()))?;
        if from_canonical == out_canonical {
            continue;
        }
        // The run's folder and, for adapter runs, its base run's.
        for dir in [run.dir.clone(), format!("{}-base", run.dir)] {
            let src = from.join(&dir);
            if !src.is_dir() {
                continue;
            }
            let dest = out.join(&dir);
            if dest.exists() {
                bail!(
                    "{} already exists; merge into a new folder (--out) so no run's results are overwritten",
                    dest.display()
                );
            }
            copy_dir(&src, &dest)?;
        }
    }
    merged.shard = None;
    merged.updated_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    for run in &mut merged.runs {
        if run.status != RunState::Complete {
            // Kept for the merged sweep's readers: which shard still owes this run.
            continue;
        }
        run.shard = None;
    }
    merged.write(&out.join(SWEEP_FILE))?;
    write_csv(&merged, &out.join(SWEEP_CSV))?;
    Ok(merged)
}

/// Each run of `sweep` that is not complete, as "gsm8k-int8 (shard 1, running)": the shard that owes it
/// (when it was sharded) and how far it got, so a user knows which array task to rerun.
pub fn incomplete_runs(sweep: &SweepFile) -> Vec<String> {
    sweep
        .runs
        .iter()
        .filter(|run| run.status != RunState::Complete)
        .map(|run| {
            let shard = run.shard.map_or(String::new(), |index| format!("shard {index}, "));
            format!("{} ({shard}{})", run.name, run.status.as_str())
        })
        .collect()
}

fn copy_dir(src: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir_all(dest).with_context(|| format!("cannot create {}", dest.display()))?;
    for entry in std::fs::read_dir(src).with_context(|| format!("cannot read {}", src.display()))? {
        let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
        let path = entry.path();
        let target = dest.join(entry.file_name());
        if path.is_dir() {
            copy_dir(&path, &target)?;
        } else {
            std::fs::copy(&path, &target)
                .with_context(|| format!("cannot copy {} to {}", path.display(), target.display()))?;
        }
    }
    Ok(())
}
