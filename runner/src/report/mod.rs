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

use std::path::PathBuf;

pub use model::{BaselineChoice, Comparison, Report, ReportError, Row, SpeedBasis, build};
pub use publish::{Published, archive, archive_path, publish};
pub use render::{Exporter, Format, Templates, TerminalExporter, exporter};

pub use crate::results::folder::RunFolder;
use crate::results::folder::find_runs;

/// Finds and reads every run under `paths`.
pub fn load_runs(paths: &[PathBuf]) -> Result<Vec<RunFolder>, ReportError> {
    let dirs = find_runs(paths)?;
    if dirs.is_empty() {
        let shown = paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(ReportError::NoRuns(shown));
    }
    dirs.iter().map(|d| RunFolder::load(d).map_err(ReportError::from)).collect()
}
