//! Reports: runs compared side by side. `model` groups results folders into comparisons (one per scenario,
//! dataset and sample selection) with a row per run and speed relative to a baseline row; `charts` turns
//! rows into SVG geometry; `render` holds one exporter per format (terminal tables, Markdown and HTML through
//! the minijinja templates in `templates/`, JSON, CSV); `cli` is `runner report`; `publish` writes a reports folder (index plus a
//! Markdown and an HTML page per comparison) and the dated results layout; `reproduce` rebuilds the
//! `runner exec` line that reproduces a run.

pub mod charts;
pub mod cli;
pub mod model;
mod paired;
pub mod publish;
pub mod render;
pub mod reproduce;

use std::fs;
use std::path::{Path, PathBuf};

pub use model::{BaselineChoice, Comparison, Report, ReportError, Row, RunInput, build};
pub use publish::{archive, archive_path, publish};
pub use render::{Exporter, Format, Templates, TerminalExporter, exporter};

use crate::results::{RunSummary, SampleRecord};

/// Every folder holding a summary.json under `paths` (a path may be a run folder itself), sorted.
pub fn find_runs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, ReportError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), ReportError> {
        if dir.join("summary.json").is_file() {
            out.push(dir.to_path_buf());
        }
        let entries = fs::read_dir(dir)
            .map_err(|err| ReportError::Read { path: dir.display().to_string(), message: err.to_string() })?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out)?;
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    for path in paths {
        if !path.is_dir() {
            return Err(ReportError::Read { path: path.display().to_string(), message: "not a folder".into() });
        }
        walk(path, &mut out)?;
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Reads a run folder's summary.json and, when present, its samples.jsonl (a torn last line is dropped).
pub fn load_run(dir: &Path) -> Result<RunInput, ReportError> {
    let summary_path = dir.join("summary.json");
    let read_err = |path: &Path, message: String| ReportError::Read { path: path.display().to_string(), message };
    let text = fs::read_to_string(&summary_path).map_err(|e| read_err(&summary_path, e.to_string()))?;
    let summary: RunSummary = serde_json::from_str(&text).map_err(|e| read_err(&summary_path, e.to_string()))?;
    let samples_path = dir.join("samples.jsonl");
    let mut samples = Vec::new();
    if let Ok(text) = fs::read_to_string(&samples_path) {
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_str::<SampleRecord>(line) {
                Ok(record) => samples.push(record),
                Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
                Err(err) => return Err(read_err(&samples_path, format!("line {}: {err}", i + 1))),
            }
        }
    }
    Ok(RunInput { dir: dir.to_path_buf(), summary, samples })
}

/// Finds and reads every run under `paths`.
pub fn load_runs(paths: &[PathBuf]) -> Result<Vec<RunInput>, ReportError> {
    let dirs = find_runs(paths)?;
    if dirs.is_empty() {
        let shown = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(ReportError::NoRuns(shown));
    }
    dirs.iter().map(|d| load_run(d)).collect()
}
