//! The comparison model: runs grouped into comparisons (one per scenario, dataset and sample selection,
//! because accuracy over different samples is not comparable), one row per run with its headline metric,
//! latencies, throughputs, memory and energy, and its speed relative to a baseline row, hyperfine-style.
//! Everything a renderer shows is computed here, so every format shows the same numbers.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::charts::{self, Charts};
use super::reproduce::reproduce_command;
use crate::results::folder::RunFolder;
use crate::results::{MetricSummary, ModelThroughput, RunSummary, SampleRecord};
use crate::stats::Distribution;

/// Which row the others are compared against.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum BaselineChoice {
    /// The fp32 row when a comparison has one (the reference precision), else the slowest row by the measure
    /// its speeds compare (see [`SpeedBasis`]).
    #[default]
    Auto,
    /// The row with this name (case-insensitive), or whose name contains it when exactly one does.
    Name(String),
    /// The row at this 0-based position of a comparison's table.
    Index(usize),
}

impl BaselineChoice {
    /// `--baseline` accepts a row number or a name.
    pub fn parse(text: &str) -> Self {
        match text.trim().parse::<usize>() {
            Ok(index) => BaselineChoice::Index(index),
            Err(_) => BaselineChoice::Name(text.trim().to_string()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("no results: no folder with a summary.json under {0}")]
    NoRuns(String),
    #[error("--baseline {choice}: no row of comparison `{comparison}` matches (rows: {rows})")]
    BaselineNotFound { choice: String, comparison: String, rows: String },
    #[error("--baseline {choice}: ambiguous in comparison `{comparison}`, it matches {rows}")]
    BaselineAmbiguous { choice: String, comparison: String, rows: String },
    #[error("template `{name}`: {message}")]
    Template { name: String, message: String },
    #[error("cannot read {path}: {message}")]
    Read { path: String, message: String },
    #[error("cannot write {path}: {message}")]
    Write { path: String, message: String },
    #[error(transparent)]
    Folder(#[from] crate::results::folder::FolderError),
    #[error("CSV: {0}")]
    Csv(String),
    #[error("JSON: {0}")]
    Json(String),
}

/// Every comparison the given runs make.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub comparisons: Vec<Comparison>,
    /// Folders left out because an identical run (same summary) was already read, with the one kept.
    pub duplicates: Vec<Duplicate>,
}

impl Report {
    /// Shows each published figure on the comparisons of its scenario.
    pub fn attach_published(&mut self, figures: &[PublishedFigure]) {
        for comparison in &mut self.comparisons {
            comparison.published = figures.iter().filter(|f| f.scenario == comparison.scenario).cloned().collect();
        }
    }
}

/// Reads a published-figures file (`reports/published.yaml`): a YAML list of [`PublishedFigure`]s.
pub fn read_published(path: &Path) -> Result<Vec<PublishedFigure>, ReportError> {
    let read_error = |message: String| ReportError::Read { path: path.display().to_string(), message };
    let text = std::fs::read_to_string(path).map_err(|e| read_error(e.to_string()))?;
    serde_yaml_ng::from_str(&text).map_err(|e| read_error(format!("not a list of published figures: {e}")))
}

#[derive(Debug, Clone, Serialize)]
pub struct Duplicate {
    pub dir: String,
    pub same_as: String,
}

/// Runs of one scenario on the same samples of the same dataset, side by side.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// File-name-safe identifier: scenario, dataset, sample count and a selection hash.
    pub id: String,
    pub title: String,
    pub scenario: String,
    pub scenario_description: String,
    pub dataset: String,
    pub dataset_hash: String,
    pub samples: usize,
    pub dataset_total: usize,
    /// The headline metric (accuracy when the scenario has one) and its direction.
    pub headline: Option<String>,
    pub headline_higher_is_better: bool,
    /// Every metric any row has, sorted.
    pub metric_names: Vec<String>,
    pub baseline: usize,
    /// Why that row is the baseline, in words.
    pub baseline_rule: String,
    /// What the rows' "speed vs baseline" compares, and its sentence for the pages.
    pub speed_basis: SpeedBasis,
    pub speed_basis_text: String,
    pub rows: Vec<Row>,
    /// Paired differences between the baseline and each other row that ran the same samples.
    pub paired: Vec<PairedRow>,
    pub charts: Charts,
    /// The hosts the runs come from.
    pub hosts: Vec<String>,
    pub warnings: Vec<String>,
    /// Figures others published for this benchmark (a model card, a paper), shown beside runner's with how
    /// their settings differ: see [`PublishedFigure`].
    pub published: Vec<PublishedFigure>,
}

/// A figure published elsewhere for a model on a benchmark (`runner report --published FILE`): it is not
/// runner's measurement, and the page says how its settings differ from the runs beside it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishedFigure {
    /// The scenario whose comparisons show it (`arc`, `mmlu`...).
    pub scenario: String,
    pub model: String,
    /// Who published it and how it was made ("SmolLM2-135M-Instruct model card, lighteval, zero-shot").
    pub source: String,
    /// What it measures, in their words ("ARC average (Easy and Challenge)").
    pub figure: String,
    /// In percent, as published.
    pub value: f64,
    /// How its settings differ from runner's runs of the scenario.
    pub differs: String,
}

/// A metric with its interval, pre-formatted for tables.
#[derive(Debug, Clone, Serialize)]
pub struct MetricCell {
    pub mean: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub count: usize,
    pub higher_is_better: bool,
    /// "0.4500 [0.3300, 0.5700]" (or the sum for summed metrics).
    pub text: String,
}

/// Mean throughput with its standard deviation and standard error.
#[derive(Debug, Clone, Serialize)]
pub struct Throughput {
    pub mean: f64,
    pub std: f64,
    pub count: usize,
    pub stderr: f64,
}

/// Speed relative to the baseline row, measured as the comparison's [`SpeedBasis`] says.
#[derive(Debug, Clone, Serialize)]
pub struct Relative {
    pub ratio: f64,
    /// The propagated standard error; none where the measure is one figure per run (throughput).
    pub error: Option<f64>,
    /// "1.84 ± 0.05× faster", "1.30 ± 0.04× slower", "2.63× slower", or "baseline".
    pub text: String,
}

/// What "speed vs baseline" compares in one comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SpeedBasis {
    /// Generation runs at one batch size: mean decode tokens/s of each sample's stream.
    Decode,
    /// Generation runs at different batch sizes: output tokens per second of model time, all rows of a batch
    /// together. Per-stream decode speed would rank a batch-1 run far above a batch-16 run that delivers more
    /// tokens per second.
    Throughput,
    /// Log-likelihood runs, which decode nothing, all at one batch size on one session: mean tokens scored
    /// per second.
    Scored,
    /// Log-likelihood runs that differ in batch size or in sessions side by side (`--workers`): samples per
    /// second of model time. Per-sample scored tokens/s would rank one session of two threads above two
    /// sessions of one thread that score more questions per second.
    ScoredThroughput,
}

impl SpeedBasis {
    /// The per-sample speed this basis compares, with its error: decode or scored tokens/s; none for
    /// throughput, one figure per run.
    fn per_sample(self, row: &Row) -> Option<&Throughput> {
        match self {
            SpeedBasis::Decode => row.decode.as_ref(),
            SpeedBasis::Scored => row.scored.as_ref(),
            SpeedBasis::Throughput | SpeedBasis::ScoredThroughput => None,
        }
    }

    /// The one figure of `row` this basis compares (a mean where it has an error), for ranking rows.
    fn figure(self, row: &Row) -> Option<f64> {
        match self {
            SpeedBasis::Throughput => row.output_tokens_per_s,
            SpeedBasis::ScoredThroughput => row.samples_per_s,
            _ => self.per_sample(row).map(|t| t.mean),
        }
    }

    fn figure_name(self) -> &'static str {
        match self {
            SpeedBasis::Decode => "decode tokens/s",
            SpeedBasis::Throughput => "output tokens/s (the rows differ in batch size)",
            SpeedBasis::Scored => "tokens scored/s",
            SpeedBasis::ScoredThroughput => "samples/s (the rows differ in batch size or sessions)",
        }
    }

    /// The sentence under the speed table that says what the ratio measures.
    pub fn describe(self) -> &'static str {
        match self {
            SpeedBasis::Decode => {
                "Speed is mean decode tokens/s relative to the baseline's, ± the standard errors of both means \
                 propagated (hyperfine's convention with standard errors)."
            }
            SpeedBasis::Throughput => {
                "The runs decoded at different batch sizes, so speed is output tokens per second of model time \
                 (a batch's rows together, as the throughput table gives it) relative to the baseline's: one \
                 figure per run, without an error bar. Per-stream decode tokens/s would rank the smaller batch \
                 ahead of a larger one that delivers more tokens."
            }
            SpeedBasis::Scored => {
                "Speed is mean tokens scored per second relative to the baseline's, ± the standard errors of both \
                 means propagated (hyperfine's convention with standard errors)."
            }
            SpeedBasis::ScoredThroughput => {
                "The runs scored at different batch sizes or on different numbers of sessions side by side \
                 (`--workers`), so speed is samples per second of model time (as the log-likelihood table gives \
                 it) relative to the baseline's: one figure per run, without an error bar. Per-sample scored \
                 tokens/s would rank a single session above sessions that together score more questions."
            }
        }
    }
}

/// Mean time per sample in each phase, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Phases {
    pub tokenize_ms: f64,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    pub scenario_ms: f64,
    /// Template rendering, detokenizing, sampling bookkeeping: the rest of the sample's time.
    pub other_ms: f64,
    /// False when the run's per-sample file was not available and the phases come from the summary's
    /// aggregates (prefill = mean TTFT, tokenize not recorded there).
    pub from_samples: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Provenance {
    pub dir: String,
    pub runner: String,
    pub started_at: String,
    pub finished_at: String,
    pub status: String,
    pub model_dir: String,
    pub model_hash: String,
    pub precision_label: String,
    pub scenario_path: String,
    pub scenario_hash: String,
    pub dataset: String,
    pub dataset_hash: String,
    pub onnxruntime: String,
    pub session: String,
    pub host: String,
    pub load_average: String,
    pub generation: String,
    pub wall_seconds: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub name: String,
    pub model: String,
    /// From the graph report (what the weights are), not the folder name.
    pub precision: String,
    pub ep: String,
    pub batch_size: usize,
    /// Sessions that scored side by side (`--workers`; 1 for one).
    pub sessions: usize,
    pub threads: String,
    pub adapter: Option<String>,
    pub host: String,
    pub status: String,
    pub samples: usize,
    pub failed: usize,
    pub metrics: BTreeMap<String, MetricCell>,
    pub headline: Option<MetricCell>,
    pub ttft_p50_ms: Option<f64>,
    pub ttft_p99_ms: Option<f64>,
    pub itl_p50_ms: Option<f64>,
    pub itl_p99_ms: Option<f64>,
    pub e2e_mean_ms: Option<f64>,
    /// Log-likelihood runs: tokens through the model per second of scoring, per sample.
    pub scored: Option<Throughput>,
    /// Samples, and generated tokens, per second of model time, a batch's time counted once (computed from
    /// the samples, so runs recorded before the summary kept them have them too).
    pub samples_per_s: Option<f64>,
    pub output_tokens_per_s: Option<f64>,
    pub decode: Option<Throughput>,
    pub prefill: Option<Throughput>,
    pub peak_rss_bytes: Option<u64>,
    pub joules_per_token: Option<f64>,
    pub scenario_overhead: Option<f64>,
    pub relative: Option<Relative>,
    pub is_baseline: bool,
    pub phases: Phases,
    pub provenance: Provenance,
    /// The `runner exec` command line that reproduces the run, from its recorded settings.
    pub command: String,
    /// Per-sample values for the distribution charts; not serialized.
    #[serde(skip)]
    pub(crate) ttft_values: Vec<f64>,
    #[serde(skip)]
    pub(crate) itl_values: Vec<f64>,
    #[serde(skip)]
    pub(crate) ttft_summary: Option<Distribution>,
    #[serde(skip)]
    pub(crate) itl_summary: Option<Distribution>,
}

/// The paired difference of one metric between the baseline and another row over the samples both scored.
#[derive(Debug, Clone, Serialize)]
pub struct PairedRow {
    pub row: String,
    pub baseline: String,
    pub metric: String,
    pub n: usize,
    pub mean_baseline: f64,
    pub mean_row: f64,
    /// Row minus baseline.
    pub difference: f64,
    pub ci95_low: f64,
    pub ci95_high: f64,
    pub p_value: f64,
    pub test: String,
    /// "significant" when p < 0.05, else "not significant".
    pub verdict: String,
}

/// Precision names in the order a reader expects: reference first.
fn precision_rank(precision: &str) -> usize {
    ["fp32", "bf16", "fp16", "int8", "int4"].iter().position(|p| *p == precision).unwrap_or(5)
}

fn short_hash(hash: &str) -> String {
    hash.trim_start_matches("sha256:").chars().take(8).collect()
}

fn file_stem(label: &str) -> String {
    Path::new(label).file_stem().map_or_else(|| label.to_string(), |s| s.to_string_lossy().into_owned())
}

/// Lowercase letters, digits and dashes only.
fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_string()
}

fn summary_hash(summary: &RunSummary) -> String {
    let text = serde_json::to_string(summary).unwrap_or_default();
    format!("{:x}", Sha256::digest(text.as_bytes()))
}

fn selection_hash(summary: &RunSummary) -> String {
    let mut hasher = Sha256::new();
    for id in &summary.dataset.selected_ids {
        hasher.update(id.as_bytes());
        hasher.update([0]);
    }
    format!("{:x}", hasher.finalize())
}

pub(crate) fn metric_cell(m: &MetricSummary) -> MetricCell {
    let text = if m.aggregation == "sum" {
        format!("{:.4} (sum)", m.sum)
    } else {
        format!("{:.4} [{:.4}, {:.4}]", m.mean, m.ci95_low, m.ci95_high)
    };
    MetricCell {
        mean: if m.aggregation == "sum" { m.sum } else { m.mean },
        ci95_low: m.ci95_low,
        ci95_high: m.ci95_high,
        count: m.count,
        higher_is_better: m.higher_is_better,
        text,
    }
}

fn throughput(d: &Option<Distribution>) -> Option<Throughput> {
    d.as_ref().map(|d| Throughput {
        mean: d.mean,
        std: d.std,
        count: d.count,
        stderr: if d.count > 0 { d.std / (d.count as f64).sqrt() } else { 0.0 },
    })
}

fn string_field(value: &serde_json::Value, key: &str) -> Option<String> {
    value.get(key).and_then(|v| v.as_str()).map(str::to_string)
}

fn phases(summary: &RunSummary, samples: &[SampleRecord]) -> Phases {
    // A log-likelihood run decodes nothing: its model time is the forward passes that score the choices,
    // prefill work (a context and its continuations), never decode.
    let scored: Vec<&SampleRecord> =
        samples.iter().filter(|r| r.choices.as_ref().is_some_and(|c| !c.is_empty())).collect();
    if summary.settings.scoring == "loglikelihood" && !scored.is_empty() {
        let n = scored.len() as f64;
        let mean = |f: &dyn Fn(&SampleRecord) -> f64| scored.iter().map(|r| f(r)).sum::<f64>() / n;
        let model = mean(&|r| r.timings.generate_ms);
        let scenario = mean(&|r| r.timings.prompt_ms + r.timings.score_ms);
        return Phases {
            tokenize_ms: 0.0,
            prefill_ms: model,
            decode_ms: 0.0,
            scenario_ms: scenario,
            other_ms: (mean(&|r| r.timings.e2e_ms) - model - scenario).max(0.0),
            from_samples: true,
        };
    }
    let generated: Vec<&SampleRecord> = samples.iter().filter(|r| r.output_tokens.is_some()).collect();
    if !generated.is_empty() {
        let n = generated.len() as f64;
        let mean = |f: &dyn Fn(&SampleRecord) -> f64| generated.iter().map(|r| f(r)).sum::<f64>() / n;
        let tokenize = mean(&|r| r.timings.tokenize_ms);
        let prefill = mean(&|r| r.timings.ttft_ms - r.timings.tokenize_ms - r.timings.render_ms);
        let decode = mean(&|r| r.timings.itl_ms.iter().sum::<f64>());
        let scenario = mean(&|r| r.timings.prompt_ms + r.timings.score_ms);
        let e2e = mean(&|r| r.timings.e2e_ms);
        let other = (e2e - tokenize - prefill.max(0.0) - decode - scenario).max(0.0);
        return Phases {
            tokenize_ms: tokenize,
            prefill_ms: prefill.max(0.0),
            decode_ms: decode,
            scenario_ms: scenario,
            other_ms: other,
            from_samples: true,
        };
    }
    let r = &summary.results;
    let mean = |d: &Option<Distribution>| d.as_ref().map_or(0.0, |d| d.mean);
    let prefill = mean(&r.ttft_ms);
    let scenario = mean(&r.scenario_ms);
    let decode = (mean(&r.e2e_ms) - prefill - scenario).max(0.0);
    Phases {
        tokenize_ms: 0.0,
        prefill_ms: prefill,
        decode_ms: decode,
        scenario_ms: scenario,
        other_ms: 0.0,
        from_samples: false,
    }
}

fn provenance(input: &RunFolder) -> Provenance {
    let s = &input.summary;
    let session = s.runtime.session.as_ref().map_or_else(String::new, |session| {
        format!("{} mode, graph optimisation {}", session.mode, session.graph_optimization)
    });
    let load = match (s.load_average_start, s.load_average_end) {
        (Some(a), Some(b)) => format!("{a:.2} → {b:.2}"),
        (Some(a), None) => format!("{a:.2}"),
        _ => "unknown".to_string(),
    };
    let gpus: Vec<String> = s.host.gpus.iter().map(|g| format!("{} ({})", g.name, g.driver)).collect();
    let mut host = format!(
        "{} — {}, {} logical cores, {} RAM, {}",
        s.host.hostname,
        s.host.cpu_model,
        s.host.logical_cores,
        crate::files::human_bytes(s.host.memory_bytes),
        s.host.os
    );
    if !gpus.is_empty() {
        host.push_str(&format!(", GPU {}", gpus.join(", ")));
    }
    Provenance {
        dir: input.dir.display().to_string(),
        runner: format!("{} ({})", s.runner.version, s.runner.git_commit),
        started_at: s.started_at.clone(),
        finished_at: s.finished_at.clone().unwrap_or_default(),
        status: provenance_status(s),
        // Pages travel: no path of the machine that made them (the hashes say exactly what ran).
        model_dir: super::reproduce::portable_path(&s.model.dir),
        model_hash: s.model.hash.clone(),
        precision_label: s.model.graph.as_ref().map_or_else(String::new, |g| g.label.clone()),
        scenario_path: super::reproduce::portable_path(&s.scenario.path),
        scenario_hash: s.scenario.hash.clone(),
        dataset: format!(
            "{} ({}), {} of {} samples",
            super::reproduce::portable_path(&s.dataset.label),
            s.dataset.source,
            s.dataset.selected,
            s.dataset.total
        ),
        dataset_hash: s.dataset.hash.clone(),
        onnxruntime: format!("{} {} EP", s.runtime.onnxruntime_version, s.runtime.execution_provider),
        session,
        host,
        load_average: load,
        generation: s.settings.describe_generation(),
        wall_seconds: s.wall_seconds,
    }
}

fn row(input: &RunFolder) -> Row {
    let s = &input.summary;
    let r = &s.results;
    let model = string_field(&s.model.info, "name").unwrap_or_else(|| file_stem(&s.model.dir));
    let precision = s
        .model
        .graph
        .as_ref()
        .map(|g| g.weight_precision.clone())
        .or_else(|| string_field(&s.model.info, "precision"))
        .unwrap_or_else(|| "?".to_string());
    let adapter = s.adapter.as_ref().map(|a| file_stem(&a.path.display().to_string()));
    let threads = match (s.runtime.intra_threads, s.runtime.workers.filter(|&w| w > 1)) {
        (None, _) => "default".to_string(),
        (Some(t), None) => t.to_string(),
        (Some(t), Some(w)) => format!("{} ({w} workers × {t})", t * w),
    };
    let metrics: BTreeMap<String, MetricCell> = r.metrics.iter().map(|(k, m)| (k.clone(), metric_cell(m))).collect();
    let generated = input.samples.iter().filter(|rec| rec.output_tokens.is_some());
    let ttft_values: Vec<f64> = generated.clone().map(|rec| rec.timings.ttft_ms).collect();
    let itl_values: Vec<f64> = generated.flat_map(|rec| rec.timings.itl_ms.iter().copied()).collect();
    let name = s.run_name_or_default(&model, &precision, &adapter);
    let throughput_of_model = ModelThroughput::of(&input.samples);
    Row {
        name,
        model,
        precision,
        ep: s.runtime.execution_provider.clone(),
        batch_size: s.settings.batch_size,
        sessions: s.runtime.workers.unwrap_or(1),
        threads,
        adapter,
        // A machine is its name and its CPU: machines of one kind can share a hostname and differ in CPU, and
        // their speeds are not comparable as one machine's.
        host: format!("{} ({})", s.host.hostname, s.host.cpu_model),
        status: format!("{:?}", s.status).to_lowercase(),
        samples: r.samples,
        failed: r.failed,
        headline: None,
        metrics,
        ttft_p50_ms: r.ttft_ms.as_ref().map(|d| d.median),
        ttft_p99_ms: r.ttft_ms.as_ref().map(|d| d.p99),
        itl_p50_ms: r.itl_ms.as_ref().map(|d| d.median),
        itl_p99_ms: r.itl_ms.as_ref().map(|d| d.p99),
        e2e_mean_ms: r.e2e_ms.as_ref().map(|d| d.mean),
        scored: throughput(&r.scored_tokens_per_s),
        samples_per_s: throughput_of_model.samples_per_s,
        output_tokens_per_s: throughput_of_model.output_tokens_per_s,
        decode: throughput(&r.decode_tokens_per_s),
        prefill: throughput(&r.prefill_tokens_per_s),
        peak_rss_bytes: r.peak_rss_bytes,
        joules_per_token: s.gpu.as_ref().and_then(|g| g.joules_per_token),
        scenario_overhead: r.scenario_overhead,
        relative: None,
        is_baseline: false,
        phases: phases(s, &input.samples),
        provenance: provenance(input),
        command: reproduce_command(s),
        ttft_values,
        itl_values,
        ttft_summary: r.ttft_ms.clone(),
        itl_summary: r.itl_ms.clone(),
    }
}

trait RunName {
    fn run_name_or_default(&self, model: &str, precision: &str, adapter: &Option<String>) -> String;
}

impl RunName for RunSummary {
    /// "SmolLM2-135M-Instruct int4 cpu", with the batch size and adapter when they are not the defaults, and
    /// the source of a precision runner derived ("int4 from fp32": the GGUF's own int4 blocks and an int4
    /// rounded from fp32 weights are different models); a sweep's run leads with the name the sweep gave it
    /// (`gsm8k-int4`, or the experiment's `name:`): "gsm8k-int4 (SmolLM2-135M-Instruct int4 cpu)".
    fn run_name_or_default(&self, model: &str, precision: &str, adapter: &Option<String>) -> String {
        let source = self.model.derivation.as_ref().map(|d| d.source_precision.as_str());
        let precision = crate::derive::DerivationRecord::precision_label(precision, source);
        let mut name = format!("{model} {precision} {}", self.runtime.execution_provider);
        if self.settings.batch_size != 1 {
            name.push_str(&format!(" b{}", self.settings.batch_size));
        }
        if let Some(adapter) = adapter {
            name.push_str(&format!(" +{adapter}"));
        }
        match &self.run_name {
            Some(run_name) => format!("{run_name} ({name})"),
            None => name,
        }
    }
}

/// "1.84 ± 0.05× faster" when `ratio` ≥ 1, else the inverse as "slower"; without "±" when there is no error.
pub fn relative_text(ratio: f64, error: Option<f64>) -> String {
    let (value, error, word) = if ratio >= 1.0 {
        (ratio, error, "faster")
    } else {
        // The inverse's error by the same first-order propagation: d(1/r) = dr / r².
        (1.0 / ratio, error.map(|e| e / (ratio * ratio)), "slower")
    };
    match error {
        Some(error) => format!("{value:.2} ± {error:.2}× {word}"),
        None => format!("{value:.2}× {word}"),
    }
}

fn relative(row: &Throughput, baseline: &Throughput) -> Relative {
    let ratio = row.mean / baseline.mean;
    let error = ratio * ((row.stderr / row.mean).powi(2) + (baseline.stderr / baseline.mean).powi(2)).sqrt();
    Relative { ratio, error: Some(error), text: relative_text(ratio, Some(error)) }
}

/// Decode speed compares streams, which is fair only between runs at one batch size; across batch sizes
/// the runs are compared by what they deliver. Log-likelihood rows decode nothing. (A comparison's rows share
/// one setup, so either they all decode or none does.)
fn speed_basis(rows: &[Row]) -> SpeedBasis {
    let mut decoding = rows.iter().filter(|r| r.decode.is_some());
    let mut scored = rows.iter().filter(|r| r.scored.is_some());
    let first_scored = scored.clone().next();
    match decoding.next() {
        None if first_scored
            .is_some_and(|first| scored.any(|r| (r.batch_size, r.sessions) != (first.batch_size, first.sessions))) =>
        {
            SpeedBasis::ScoredThroughput
        }
        None if first_scored.is_some() => SpeedBasis::Scored,
        None => SpeedBasis::Decode,
        Some(first) if decoding.any(|r| r.batch_size != first.batch_size) => SpeedBasis::Throughput,
        Some(_) => SpeedBasis::Decode,
    }
}

fn relative_speed(row: &Row, base: &Row, basis: SpeedBasis) -> Option<Relative> {
    let positive = |x: &f64| *x > 0.0;
    match basis {
        SpeedBasis::Throughput | SpeedBasis::ScoredThroughput => {
            let ratio = basis.figure(row).filter(positive)? / basis.figure(base).filter(positive)?;
            Some(Relative { ratio, error: None, text: relative_text(ratio, None) })
        }
        SpeedBasis::Decode | SpeedBasis::Scored => {
            let (d, b) = (basis.per_sample(row)?, basis.per_sample(base)?);
            (d.mean > 0.0 && b.mean > 0.0).then(|| relative(d, b))
        }
    }
}

fn choose_baseline(
    rows: &[Row],
    basis: SpeedBasis,
    choice: &BaselineChoice,
    comparison: &str,
) -> Result<(usize, String), ReportError> {
    let names = || rows.iter().map(|r| format!("`{}`", r.name)).collect::<Vec<_>>().join(", ");
    match choice {
        BaselineChoice::Index(i) if *i < rows.len() => Ok((*i, format!("row {i}, chosen with --baseline"))),
        BaselineChoice::Index(i) => Err(ReportError::BaselineNotFound {
            choice: i.to_string(),
            comparison: comparison.to_string(),
            rows: format!("0..{} — {}", rows.len(), names()),
        }),
        BaselineChoice::Name(name) => {
            let wanted = name.to_lowercase();
            if let Some(i) = rows.iter().position(|r| r.name.to_lowercase() == wanted) {
                return Ok((i, "chosen with --baseline".to_string()));
            }
            let hits: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].name.to_lowercase().contains(&wanted)).collect();
            match hits.as_slice() {
                [i] => Ok((*i, "chosen with --baseline".to_string())),
                [] => Err(ReportError::BaselineNotFound {
                    choice: name.clone(),
                    comparison: comparison.to_string(),
                    rows: names(),
                }),
                many => Err(ReportError::BaselineAmbiguous {
                    choice: name.clone(),
                    comparison: comparison.to_string(),
                    rows: many.iter().map(|&i| format!("`{}`", rows[i].name)).collect::<Vec<_>>().join(", "),
                }),
            }
        }
        BaselineChoice::Auto => {
            if let Some(i) = rows.iter().position(|r| r.precision == "fp32") {
                return Ok((i, "the fp32 row (the reference precision)".to_string()));
            }
            Ok(match slowest_row(rows, basis) {
                Some(i) => (i, format!("the slowest row by {} (no fp32 row)", basis.figure_name())),
                None => (0, "the first row (no speed recorded)".to_string()),
            })
        }
    }
}

/// The slowest row by the figure `basis` compares.
fn slowest_row(rows: &[Row], basis: SpeedBasis) -> Option<usize> {
    rows.iter()
        .enumerate()
        .filter_map(|(i, r)| basis.figure(r).filter(|x| *x > 0.0).map(|x| (i, x)))
        .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)))
        .map(|(i, _)| i)
}

/// The headline metric: accuracy when present, else the first metric alphabetically.
fn headline_metric(metric_names: &[String]) -> Option<String> {
    metric_names.iter().find(|m| m.as_str() == "accuracy").or_else(|| metric_names.first()).cloned()
}

/// Builds every comparison the runs make. Identical runs (same summary) are read once; rows are sorted by
/// model, precision (fp32 first), execution provider, batch size, adapter and start time, so the output does
/// not depend on the order folders were found in.
pub fn build(inputs: Vec<RunFolder>, baseline: &BaselineChoice) -> Result<Report, ReportError> {
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut duplicates = Vec::new();
    let mut groups: BTreeMap<(String, String, String, String), Vec<RunFolder>> = BTreeMap::new();
    for input in inputs {
        let hash = summary_hash(&input.summary);
        let dir = input.dir.display().to_string();
        if let Some(kept) = seen.get(&hash) {
            duplicates.push(Duplicate { dir, same_as: kept.clone() });
            continue;
        }
        seen.insert(hash, dir);
        let key = (
            input.summary.scenario.name.clone(),
            input.summary.dataset.hash.clone(),
            selection_hash(&input.summary),
            task_setup(&input.summary),
        );
        groups.entry(key).or_default().push(input);
    }
    let mut comparisons = Vec::new();
    for ((scenario, dataset_hash, selection, setup), inputs) in groups {
        comparisons.push(comparison(scenario, dataset_hash, selection, setup, inputs, baseline)?);
    }
    Ok(Report { comparisons, duplicates })
}

/// How the task was posed, beyond the scenario and the samples: log-likelihood or generation, few-shot
/// examples and how they were chosen, scenario arguments. Runs posed differently answer different questions
/// (0-shot and 5-shot MMLU are two tasks), so they are never rows of one comparison. Empty for the plain
/// zero-shot generation run.
fn task_setup(summary: &RunSummary) -> String {
    let settings = &summary.settings;
    let mut parts = Vec::new();
    match settings.scoring.as_str() {
        "generate" => {}
        "loglikelihood" => parts.push("log-likelihood".to_string()),
        other => parts.push(other.to_string()),
    }
    if settings.few_shot > 0 {
        let order = settings.few_shot_order.as_deref().map(|o| format!(" ({o})")).unwrap_or_default();
        parts.push(format!("{}-shot{order}", settings.few_shot));
    } else if summary.few_shot_chosen() {
        // A zero-shot run of a scenario that gives examples by default (MMLU) says so.
        parts.push("0-shot".to_string());
    }
    parts.extend(settings.scenario_args.iter().map(|(key, value)| format!("{key}={value}")));
    parts.join(", ")
}

fn comparison(
    scenario: String,
    dataset_hash: String,
    selection: String,
    setup: String,
    inputs: Vec<RunFolder>,
    baseline: &BaselineChoice,
) -> Result<Comparison, ReportError> {
    let first = &inputs[0].summary;
    let dataset =
        if first.dataset.source == "file" { file_stem(&first.dataset.label) } else { first.dataset.label.clone() };
    let samples = first.dataset.selected;
    // The page's name and title carry the setup when there is one, so each setup has a page of its own.
    let (id, title) = if setup.is_empty() {
        (
            slug(&format!("{scenario}-{dataset}-n{samples}-{}", short_hash(&selection))),
            format!("{scenario} on {dataset} ({samples} of {} samples)", first.dataset.total),
        )
    } else {
        (
            slug(&format!("{scenario}-{dataset}-n{samples}-{setup}-{}", short_hash(&selection))),
            format!("{scenario} on {dataset} ({samples} of {} samples), {setup}", first.dataset.total),
        )
    };
    // The scenario as its newest run describes it: a page can hold runs of older builds of the scenario, and
    // its description must say what the scenario does now, not what the first folder read happened to record.
    let newest = inputs.iter().max_by(|a, b| a.summary.started_at.cmp(&b.summary.started_at)).unwrap_or(&inputs[0]);
    let scenario_description = newest.summary.scenario.description.clone();
    let dataset_total = first.dataset.total;
    let warnings = inputs
        .iter()
        .filter(|i| i.samples.is_empty())
        // The folder's name, not its path: pages must not depend on where the data was when they were rendered.
        .map(|i| format!("{}: no samples.jsonl; distributions and phases come from its summary only", i.name()))
        .collect();
    let mut built: Vec<(Row, RunFolder)> = inputs.into_iter().map(|i| (row(&i), i)).collect();
    built.sort_by(|(a, ai), (b, bi)| {
        let key = |r: &Row| {
            (
                r.model.clone(),
                precision_rank(&r.precision),
                r.precision.clone(),
                r.ep.clone(),
                r.batch_size,
                r.adapter.clone(),
            )
        };
        key(a).cmp(&key(b)).then_with(|| ai.summary.started_at.cmp(&bi.summary.started_at))
    });
    let (mut rows, inputs): (Vec<Row>, Vec<RunFolder>) = built.into_iter().unzip();
    let hosts: Vec<String> = {
        let mut h: Vec<String> = rows.iter().map(|r| r.host.clone()).collect();
        h.sort();
        h.dedup();
        h
    };
    if hosts.len() > 1 {
        for r in &mut rows {
            r.name = format!("{} @{}", r.name, r.host);
        }
    }
    disambiguate_names(&mut rows);
    let mut metric_names: Vec<String> = rows.iter().flat_map(|r| r.metrics.keys().cloned()).collect();
    metric_names.sort();
    metric_names.dedup();
    let headline = headline_metric(&metric_names);
    let headline_higher_is_better =
        headline.as_ref().and_then(|h| rows.iter().find_map(|r| r.metrics.get(h))).is_none_or(|m| m.higher_is_better);
    for r in &mut rows {
        r.headline = headline.as_ref().and_then(|h| r.metrics.get(h).cloned());
    }
    let speed_basis = speed_basis(&rows);
    let (baseline_index, baseline_rule) = choose_baseline(&rows, speed_basis, baseline, &id)?;
    let base = rows[baseline_index].clone();
    for (i, r) in rows.iter_mut().enumerate() {
        r.is_baseline = i == baseline_index;
        r.relative = if r.is_baseline {
            Some(Relative { ratio: 1.0, error: Some(0.0), text: "baseline".to_string() })
        } else {
            relative_speed(r, &base, speed_basis)
        };
    }
    let paired = super::paired::paired_rows(&inputs, &rows, baseline_index);
    let charts = charts::build(&rows, speed_basis, headline.as_deref(), headline_higher_is_better);
    Ok(Comparison {
        id,
        title,
        scenario,
        scenario_description,
        dataset,
        dataset_hash,
        samples,
        dataset_total,
        headline,
        headline_higher_is_better,
        metric_names,
        baseline: baseline_index,
        baseline_rule,
        speed_basis,
        speed_basis_text: speed_basis.describe().to_string(),
        rows,
        paired,
        charts,
        hosts,
        warnings,
        published: Vec::new(),
    })
}

/// Two rows with one name (the same configuration run twice) get " #2", " #3".
fn disambiguate_names(rows: &mut [Row]) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for r in rows.iter_mut() {
        let n = counts.entry(r.name.clone()).or_default();
        *n += 1;
        if *n > 1 {
            r.name = format!("{} #{n}", r.name);
        }
    }
}

/// A run's status, and for a resumed run how many sittings its timings come from: each sitting may have run
/// on another machine (or beside other work), so its speed figures are a mix.
fn provenance_status(s: &RunSummary) -> String {
    let status = format!("{:?}", s.status).to_lowercase();
    match s.resumed_at.len() {
        0 => status,
        resumes => format!("{status}, resumed {resumes}× (timings from {} sittings)", resumes + 1),
    }
}
