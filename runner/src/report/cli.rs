//! `runner report`: compare results folders on the terminal (comfy-table tables), write one file in a
//! chosen format, publish a reports folder, or archive run folders into the dated publishing layout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::Args;

use super::model::{BaselineChoice, build, read_published};
use super::render::{Exporter, Format, Templates, TerminalExporter, exporter};
use super::{archive, load_runs, publish};

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Results folders, or folders to search for them (every folder below holding a summary.json: run
    /// folders, sweep folders, a reports/data tree).
    #[arg(required = true, value_name = "RESULTS")]
    pub results: Vec<PathBuf>,
    /// Write one file in this format instead of printing tables: md, html (self-contained, inline SVG
    /// charts), json (the comparison model) or csv (one line per run).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Where --format writes; `-` is standard output (default: report.<format> in the current folder).
    #[arg(long, value_name = "FILE", requires = "format")]
    pub out: Option<PathBuf>,
    /// The row other rows' speed is compared against: a row number (0-based, as in the table) or a row
    /// name (or a unique part of one). Default: the fp32 row, else the slowest row (by decode tokens/s;
    /// across batch sizes, by output tokens/s).
    #[arg(long, value_name = "NAME|INDEX")]
    pub baseline: Option<String>,
    /// A folder of templates to use instead of the built-in ones (a restyled copy of `templates/`; it
    /// must hold report.md.jinja, report.html.jinja and index.md.jinja).
    #[arg(long, value_name = "DIR")]
    pub templates: Option<PathBuf>,
    /// Write a reports folder: README.md (index) plus a Markdown and an HTML page per comparison.
    #[arg(long, value_name = "DIR", conflicts_with_all = ["format", "out"])]
    pub publish: Option<PathBuf>,
    /// Copy the results folders into DIR/<YYYY-MM-DD>/<run folder>-<host>/ (the publishing layout), then
    /// report on them.
    #[arg(long, value_name = "DIR")]
    pub archive: Option<PathBuf>,
    /// Figures published elsewhere (model cards, papers) to show beside runner's, a YAML list of
    /// {scenario, model, source, figure, value, differs}; each comparison of that scenario shows its own.
    #[arg(long, value_name = "FILE")]
    pub published: Option<PathBuf>,
}

pub fn run(args: ReportArgs) -> Result<()> {
    if let Some(dir) = &args.templates
        && !dir.is_dir()
    {
        bail!("--templates {}: not a folder", dir.display());
    }
    let templates = args.templates.clone().map(Templates::from_dir).unwrap_or_default();
    let baseline = args.baseline.as_deref().map_or(BaselineChoice::Auto, BaselineChoice::parse);
    let mut inputs = load_runs(&args.results)?;
    if let Some(data_dir) = &args.archive {
        let runs: Vec<(PathBuf, _)> = inputs.iter().map(|i| (i.dir.clone(), i.summary.clone())).collect();
        let placed = archive(&runs, data_dir).with_context(|| format!("--archive {}", data_dir.display()))?;
        for input in &mut inputs {
            if let Some(target) = placed.get(&input.dir) {
                eprintln!("{} -> {}", input.dir.display(), target.display());
                input.dir = target.clone();
            }
        }
    }
    let mut report = build(inputs, &baseline)?;
    if let Some(path) = &args.published {
        report.attach_published(&read_published(path).context("--published")?);
    }
    if let Some(out) = &args.publish {
        let published = publish(report, out, &templates)?;
        for path in published.written {
            eprintln!("wrote {}", path.display());
        }
        for path in published.removed {
            eprintln!("removed {} (its comparison has no runs left)", path.display());
        }
        return Ok(());
    }
    let Some(format) = args.format else {
        print!("{}", crate::terminal::escape_block(&TerminalExporter.render(&report)?));
        return Ok(());
    };
    let exporter: Box<dyn Exporter> = exporter(format, templates);
    let text = exporter.render(&report)?;
    let out = args.out.unwrap_or_else(|| PathBuf::from(format!("report.{}", exporter.extension())));
    if out.as_os_str() == "-" {
        std::io::stdout().write_all(text.as_bytes()).context("writing the report to standard output")?;
    } else {
        std::fs::write(&out, text).with_context(|| format!("--out {}: cannot write", out.display()))?;
        eprintln!("wrote {}", out.display());
    }
    Ok(())
}
