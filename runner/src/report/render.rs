//! The exporters: one per format behind the `Exporter` trait. Markdown and HTML go through the minijinja
//! templates in `templates/` (embedded, or a directory given with `--templates`), with strict undefined
//! variables (a template naming a field that does not exist fails with the template and the name) and
//! HTML auto-escaping for `.html` templates, so run names and paths can never inject markup. The terminal
//! exporter prints comfy-table tables; JSON is the model as is; CSV is one line per row.

use std::path::{Path, PathBuf};

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use minijinja::{Environment, UndefinedBehavior, Value};

use super::model::{Comparison, Report, ReportError, SpeedBasis};
use crate::files::human_bytes;

/// The templates runner ships, by file name.
pub const BUILTIN_TEMPLATES: [(&str, &str); 3] = [
    ("report.md.jinja", include_str!("../../../templates/report.md.jinja")),
    ("report.html.jinja", include_str!("../../../templates/report.html.jinja")),
    ("index.md.jinja", include_str!("../../../templates/index.md.jinja")),
];

/// The formats `runner report --format` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Md,
    Html,
    Json,
    Csv,
}

/// Where templates come from: the built-in set, or every `*.jinja` file of a directory (a copy of
/// `templates/` restyled), which must then hold all three.
#[derive(Debug, Clone, Default)]
pub struct Templates {
    pub dir: Option<PathBuf>,
}

impl Templates {
    pub fn from_dir(dir: impl Into<PathBuf>) -> Self {
        Templates { dir: Some(dir.into()) }
    }

    /// A minijinja environment with the report filters, strict undefined behaviour and the templates loaded.
    pub fn environment(&self) -> Result<Environment<'static>, ReportError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        add_filters(&mut env);
        for (name, builtin) in BUILTIN_TEMPLATES {
            let source = match &self.dir {
                None => builtin.to_string(),
                Some(dir) => {
                    let path = dir.join(name);
                    std::fs::read_to_string(&path).map_err(|err| ReportError::Read {
                        path: path.display().to_string(),
                        message: format!("{err} (a --templates folder needs {name})"),
                    })?
                }
            };
            env.add_template_owned(name.to_string(), source).map_err(|err| template_error(name, &err))?;
        }
        Ok(env)
    }

    pub fn render(&self, name: &str, context: Value) -> Result<String, ReportError> {
        let env = self.environment()?;
        let template = env.get_template(name).map_err(|err| template_error(name, &err))?;
        let mut text = template.render(context).map_err(|err| template_error(name, &err))?;
        // minijinja drops a template's final newline; files end with one.
        if !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// A template error with the template's name, the line and minijinja's account of what was undefined.
pub fn template_error(name: &str, err: &minijinja::Error) -> ReportError {
    let mut message = err.to_string();
    if let Some(line) = err.line() {
        message = format!("line {line}: {message}");
    }
    let mut source = std::error::Error::source(err);
    while let Some(inner) = source {
        message.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    if let Some(detail) = err.display_debug_info().to_string().lines().find(|l| l.contains("undefined")) {
        message.push_str(&format!(" ({})", detail.trim()));
    }
    ReportError::Template { name: name.to_string(), message }
}

fn optional(value: &Value) -> Option<f64> {
    if value.is_none() || value.is_undefined() { None } else { f64::try_from(value.clone()).ok() }
}

fn add_filters(env: &mut Environment<'static>) {
    // `{{ x|fixed(2) }}`: a number with fixed digits, "–" for none (a measurement a run did not make).
    env.add_filter("fixed", |value: Value, digits: usize| {
        optional(&value).map_or_else(|| "–".to_string(), |v| format!("{v:.digits$}"))
    });
    env.add_filter("bytes", |value: Value| optional(&value).map_or_else(|| "–".to_string(), |v| human_bytes(v as u64)));
    // `{{ share|pct(2) }}`: 0.0123 as "1.23%".
    env.add_filter("pct", |value: Value, digits: usize| {
        optional(&value).map_or_else(|| "–".to_string(), |v| format!("{:.digits$}%", v * 100.0))
    });
    // A Markdown table cell: pipes and angle brackets escaped, one line.
    env.add_filter("cell", |text: String| {
        text.replace('|', "\\|").replace('<', "&lt;").replace('>', "&gt;").replace(['\n', '\r'], " ")
    });
    env.add_filter("short_hash", |text: String| {
        let hex = text.trim_start_matches("sha256:");
        if hex.len() > 16 { format!("{}…{}", &hex[..8], &hex[hex.len() - 5..]) } else { hex.to_string() }
    });
}

/// One exporter per format: it renders the whole report to text.
pub trait Exporter {
    /// The file extension of what it writes.
    fn extension(&self) -> &'static str;
    fn render(&self, report: &Report) -> Result<String, ReportError>;
}

/// The context every page template gets: the comparisons to show and the runs left out as duplicates.
pub fn page_context(comparisons: &[&Comparison], report: &Report) -> Value {
    minijinja::context! {
        comparisons => Value::from(minijinja::value::Serde(comparisons)),
        duplicates => Value::from(minijinja::value::Serde(&report.duplicates)),
    }
}

pub struct MarkdownExporter {
    pub templates: Templates,
}

impl Exporter for MarkdownExporter {
    fn extension(&self) -> &'static str {
        "md"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let all: Vec<&Comparison> = report.comparisons.iter().collect();
        self.templates.render("report.md.jinja", page_context(&all, report))
    }
}

pub struct HtmlExporter {
    pub templates: Templates,
}

impl Exporter for HtmlExporter {
    fn extension(&self) -> &'static str {
        "html"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let all: Vec<&Comparison> = report.comparisons.iter().collect();
        self.templates.render("report.html.jinja", page_context(&all, report))
    }
}

pub struct JsonExporter;

impl Exporter for JsonExporter {
    fn extension(&self) -> &'static str {
        "json"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut text = serde_json::to_string_pretty(report).map_err(|err| ReportError::Json(err.to_string()))?;
        text.push('\n');
        Ok(text)
    }
}

/// One line per row of every comparison: the configuration, every metric with its interval, the timings.
pub struct CsvExporter;

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(String::new, |v| format!("{v:.digits$}"))
}

impl Exporter for CsvExporter {
    fn extension(&self) -> &'static str {
        "csv"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut metric_names: Vec<&String> = report.comparisons.iter().flat_map(|c| &c.metric_names).collect();
        metric_names.sort();
        metric_names.dedup();
        let mut writer = csv::Writer::from_writer(Vec::new());
        let mut header: Vec<String> =
            ["comparison", "row", "model", "precision", "ep", "batch_size", "adapter", "host", "samples", "failed"]
                .map(String::from)
                .to_vec();
        for m in &metric_names {
            header.extend([m.to_string(), format!("{m}_ci95_low"), format!("{m}_ci95_high")]);
        }
        header.extend(
            [
                "ttft_p50_ms",
                "ttft_p99_ms",
                "itl_p50_ms",
                "itl_p99_ms",
                "decode_tokens_per_s",
                "decode_tokens_per_s_std",
                "prefill_tokens_per_s",
                "peak_rss_bytes",
                "joules_per_token",
                "scenario_overhead",
                "speed_vs_baseline",
                "speed_vs_baseline_error",
                "baseline",
                "command",
            ]
            .map(String::from),
        );
        writer.write_record(&header).map_err(|err| ReportError::Csv(err.to_string()))?;
        for c in &report.comparisons {
            for row in &c.rows {
                let mut record = vec![
                    c.id.clone(),
                    row.name.clone(),
                    row.model.clone(),
                    row.precision.clone(),
                    row.ep.clone(),
                    row.batch_size.to_string(),
                    row.adapter.clone().unwrap_or_default(),
                    row.host.clone(),
                    row.samples.to_string(),
                    row.failed.to_string(),
                ];
                for m in &metric_names {
                    let cell = row.metrics.get(*m);
                    record.push(opt(cell.map(|c| c.mean), 6));
                    record.push(opt(cell.map(|c| c.ci95_low), 6));
                    record.push(opt(cell.map(|c| c.ci95_high), 6));
                }
                record.extend([
                    opt(row.ttft_p50_ms, 3),
                    opt(row.ttft_p99_ms, 3),
                    opt(row.itl_p50_ms, 3),
                    opt(row.itl_p99_ms, 3),
                    opt(row.decode.as_ref().map(|d| d.mean), 3),
                    opt(row.decode.as_ref().map(|d| d.std), 3),
                    opt(row.prefill.as_ref().map(|d| d.mean), 3),
                    row.peak_rss_bytes.map_or_else(String::new, |b| b.to_string()),
                    opt(row.joules_per_token, 6),
                    opt(row.scenario_overhead, 6),
                    opt(row.relative.as_ref().map(|r| r.ratio), 4),
                    opt(row.relative.as_ref().and_then(|r| r.error), 4),
                    row.is_baseline.to_string(),
                    row.command.clone(),
                ]);
                writer.write_record(&record).map_err(|err| ReportError::Csv(err.to_string()))?;
            }
        }
        let bytes = writer.into_inner().map_err(|err| ReportError::Csv(err.to_string()))?;
        String::from_utf8(bytes).map_err(|err| ReportError::Csv(err.to_string()))
    }
}

/// comfy-table tables on the terminal: per comparison, the speed table with relative speed and the metrics.
pub struct TerminalExporter;

fn right(text: String) -> Cell {
    Cell::new(text).set_alignment(CellAlignment::Right)
}

fn ms(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |v| format!("{v:.1}"))
}

impl Exporter for TerminalExporter {
    fn extension(&self) -> &'static str {
        "txt"
    }

    fn render(&self, report: &Report) -> Result<String, ReportError> {
        let mut out = String::new();
        for c in &report.comparisons {
            out.push_str(&format!("{}\n", c.title));
            let headline = c.headline.clone().unwrap_or_else(|| "metric".to_string());
            let mut table = Table::new();
            table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
            table.set_header(vec![
                "#",
                "run",
                &format!("{headline} [95% CI]"),
                "TTFT p50/p99 ms",
                "ITL p50/p99 ms",
                "decode tok/s",
                "prefill tok/s",
                "peak mem",
                "vs baseline",
            ]);
            for (i, row) in c.rows.iter().enumerate() {
                let tps = |t: &Option<super::model::Throughput>| {
                    t.as_ref().map_or_else(|| "–".to_string(), |t| format!("{:.1} ± {:.1}", t.mean, t.std))
                };
                table.add_row(vec![
                    right(i.to_string()),
                    Cell::new(&row.name),
                    Cell::new(row.headline.as_ref().map_or_else(|| "–".to_string(), |h| h.text.clone())),
                    right(format!("{} / {}", ms(row.ttft_p50_ms), ms(row.ttft_p99_ms))),
                    right(format!("{} / {}", ms(row.itl_p50_ms), ms(row.itl_p99_ms))),
                    right(tps(&row.decode)),
                    right(tps(&row.prefill)),
                    right(row.peak_rss_bytes.map_or_else(|| "–".to_string(), human_bytes)),
                    Cell::new(row.relative.as_ref().map_or_else(|| "–".to_string(), |r| r.text.clone())),
                ]);
            }
            out.push_str(&table.to_string());
            out.push('\n');
            let base = &c.rows[c.baseline].name;
            let speed = match c.speed_basis {
                SpeedBasis::Decode => "mean decode tokens/s per stream",
                SpeedBasis::Throughput => "output tokens/s of model time (batch sizes differ)",
                SpeedBasis::Scored => "mean tokens scored per second",
                SpeedBasis::ScoredThroughput => "samples/s of model time (batch sizes or sessions differ)",
            };
            out.push_str(&format!("baseline: {base} ({}); speed = {speed}\n", c.baseline_rule));
            if !c.paired.is_empty() {
                let mut paired = Table::new();
                paired.load_preset(UTF8_FULL_CONDENSED).set_header(vec![
                    "paired on the same samples",
                    "metric",
                    "n",
                    "difference [95% CI]",
                    "p",
                    "test",
                ]);
                for p in &c.paired {
                    paired.add_row(vec![
                        Cell::new(format!("{} − {}", p.row, p.baseline)),
                        Cell::new(&p.metric),
                        right(p.n.to_string()),
                        right(format!("{:+.4} [{:+.4}, {:+.4}]", p.difference, p.ci95_low, p.ci95_high)),
                        right(format!("{:.3}", p.p_value)),
                        Cell::new(&p.test),
                    ]);
                }
                out.push_str(&paired.to_string());
                out.push('\n');
            }
            for w in &c.warnings {
                out.push_str(&format!("warning: {w}\n"));
            }
            out.push('\n');
        }
        for d in &report.duplicates {
            out.push_str(&format!("skipped {} (identical to {})\n", d.dir, d.same_as));
        }
        Ok(out)
    }
}

/// The exporter for a `--format`.
pub fn exporter(format: Format, templates: Templates) -> Box<dyn Exporter> {
    match format {
        Format::Md => Box::new(MarkdownExporter { templates }),
        Format::Html => Box::new(HtmlExporter { templates }),
        Format::Json => Box::new(JsonExporter),
        Format::Csv => Box::new(CsvExporter),
    }
}

/// Whether `path` is inside `dir` (both made absolute), and the relative part.
pub fn relative_to(path: &Path, dir: &Path) -> Option<PathBuf> {
    let path = std::fs::canonicalize(path).ok()?;
    let dir = std::fs::canonicalize(dir).ok()?;
    path.strip_prefix(&dir).ok().map(Path::to_path_buf)
}
