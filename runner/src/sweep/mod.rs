//! Running a sweep: every run of a plan, each in its own results folder `<sweep>/<run-name>/`, with the
//! sweep's state in `sweep.json` (the plan, each run's status, folder and headline numbers; replaced
//! atomically after every run) and `sweep.csv` (one row per run, for spreadsheets). A failing run is
//! recorded and the sweep goes on. `--resume` skips complete runs and continues the others; `--shard I/N`
//! runs a slice of the plan and keeps its statuses in `sweep.shard-I-of-N.json`, from which `sweep.json` is
//! rebuilt, so shards can share a folder or run apart and be merged (`merge`).

pub mod merge;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets::UTF8_FULL_CONDENSED};
use serde::{Deserialize, Serialize};

use crate::exec::{ExecOptions, RunOutcome};
use crate::experiment::{PlannedRun, RUN_KEYS, RunConfig, Shard};
use crate::files::human_bytes;
use crate::results::RunSummary;
use crate::results::summary::RunVerdict;

pub const SWEEP_FILE: &str = "sweep.json";
pub const SWEEP_CSV: &str = "sweep.csv";
/// The format of `sweep.json`.
pub const SWEEP_VERSION: u32 = 1;

/// Where a run of a sweep stands. Ordered by how much it tells: merging keeps the most advanced status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Not started (or run by another shard that has not reported here).
    Pending,
    /// Started; a run still `running` after its process ended was killed.
    Running,
    /// Ctrl-C or SIGTERM stopped it; its finished samples are kept and `--resume` continues it.
    Interrupted,
    /// The run could not start or broke off with an error.
    Failed,
    /// The run stopped early (too many consecutive failures); its samples are kept.
    Aborted,
    Complete,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Pending => "pending",
            RunState::Running => "running",
            RunState::Interrupted => "interrupted",
            RunState::Failed => "failed",
            RunState::Aborted => "aborted",
            RunState::Complete => "complete",
        }
    }
}

/// The numbers a sweep shows per run, taken from its summary.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// The headline metric (`accuracy` when the scenario has it, else its first metric).
    pub metric: Option<String>,
    pub mean: Option<f64>,
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    pub samples: usize,
    pub failed: usize,
    pub ttft_p50_ms: Option<f64>,
    pub decode_tokens_per_s: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    /// The precision measured from the model's graph.
    pub model_precision: Option<String>,
    pub wall_seconds: f64,
}

/// Metrics preferred as the headline, in order, when a scenario has several.
const HEADLINE_METRICS: [&str; 6] = ["accuracy", "exact_match", "pass_at_1", "f1", "rougeL", "rouge_l"];

impl Headline {
    pub fn of(summary: &RunSummary) -> Headline {
        let r = &summary.results;
        let metric = HEADLINE_METRICS
            .iter()
            .find(|m| r.metrics.contains_key(**m))
            .map(|m| m.to_string())
            .or_else(|| r.metrics.keys().next().cloned());
        let m = metric.as_ref().and_then(|name| r.metrics.get(name));
        Headline {
            mean: m.map(|m| if m.aggregation == "sum" { m.sum } else { m.mean }),
            ci95_low: m.filter(|m| m.aggregation != "sum").map(|m| m.ci95_low),
            ci95_high: m.filter(|m| m.aggregation != "sum").map(|m| m.ci95_high),
            metric,
            samples: r.samples,
            failed: r.failed,
            ttft_p50_ms: r.ttft_ms.as_ref().map(|d| d.median),
            decode_tokens_per_s: r.decode_tokens_per_s.as_ref().map(|d| d.median),
            e2e_p50_ms: r.e2e_ms.as_ref().map(|d| d.median),
            peak_rss_bytes: r.peak_rss_bytes,
            model_precision: summary.model.graph.as_ref().map(|g| g.weight_precision.clone()),
            wall_seconds: summary.wall_seconds,
        }
    }
}

/// One run in `sweep.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepRun {
    pub name: String,
    /// The effective configuration (all layers applied).
    pub config: serde_json::Value,
    pub status: RunState,
    /// The run's results folder, relative to the sweep folder.
    pub dir: String,
    /// With `--shard`: the shard that runs it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headline: Option<Headline>,
}

/// `sweep.json` (or a shard's `sweep.shard-I-of-N.json`): the plan and where each run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SweepFile {
    pub version: u32,
    /// The experiment folder, when the sweep came from one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub experiment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Set in a shard's own file: which slice it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub created_at: String,
    pub updated_at: String,
    pub runs: Vec<SweepRun>,
}

impl SweepFile {
    /// A fresh plan: every run pending.
    pub fn new(
        plan: &[PlannedRun],
        experiment: Option<&Path>,
        description: Option<String>,
        shard: Option<Shard>,
    ) -> Self {
        let now = timestamp();
        SweepFile {
            version: SWEEP_VERSION,
            experiment: experiment.map(|p| p.display().to_string()),
            description,
            shard,
            created_at: now.clone(),
            updated_at: now,
            runs: plan
                .iter()
                .enumerate()
                .map(|(i, run)| SweepRun {
                    name: run.name.clone(),
                    config: run.config.to_json(),
                    status: RunState::Pending,
                    dir: run.name.clone(),
                    shard: shard.map(|s| i % s.count),
                    started_at: None,
                    finished_at: None,
                    error: None,
                    headline: None,
                })
                .collect(),
        }
    }

    /// The file's own name: `sweep.json`, or `sweep.shard-I-of-N.json` for a shard.
    pub fn file_name(shard: Option<Shard>) -> String {
        match shard {
            Some(s) => format!("sweep.shard-{}-of-{}.json", s.index, s.count),
            None => SWEEP_FILE.to_string(),
        }
    }

    pub fn read(path: &Path) -> Result<SweepFile> {
        let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let file: SweepFile =
            serde_json::from_slice(&bytes).with_context(|| format!("{} is not a sweep file", path.display()))?;
        if file.version > SWEEP_VERSION {
            bail!("{} has format version {}; this runner reads up to {SWEEP_VERSION}", path.display(), file.version);
        }
        Ok(file)
    }

    pub fn write(&self, path: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).context("cannot serialize the sweep file")?;
        write_atomically(path, &json)
    }

    /// The first difference between two plans (names and effective configurations, in order), if any.
    pub fn plan_difference(&self, other: &SweepFile) -> Option<String> {
        let names = |f: &SweepFile| f.runs.iter().map(|r| r.name.clone()).collect::<Vec<_>>();
        if names(self) != names(other) {
            let a = names(self);
            let b = names(other);
            let only_a: Vec<&String> = a.iter().filter(|n| !b.contains(n)).collect();
            let only_b: Vec<&String> = b.iter().filter(|n| !a.contains(n)).collect();
            return Some(format!(
                "the runs differ (only in the first: {}; only in the second: {})",
                list_or_none(&only_a),
                list_or_none(&only_b)
            ));
        }
        self.runs
            .iter()
            .zip(&other.runs)
            .find(|(a, b)| a.config != b.config)
            .map(|(a, b)| format!("run `{}` has another configuration ({} vs {})", a.name, a.config, b.config))
    }

    /// Takes, for every run, the more advanced status of `self` and `other` (plans must match).
    fn absorb(&mut self, other: &SweepFile) {
        for (mine, theirs) in self.runs.iter_mut().zip(&other.runs) {
            if theirs.status > mine.status {
                let shard = mine.shard.or(theirs.shard);
                *mine = theirs.clone();
                mine.shard = shard;
            }
        }
    }
}

fn list_or_none(names: &[&String]) -> String {
    if names.is_empty() { "none".into() } else { names.iter().map(|n| n.as_str()).collect::<Vec<_>>().join(", ") }
}

/// Replaces `path` atomically; concurrent shards writing the same folder never tear or interleave a file.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_atomically(path, bytes).with_context(|| format!("cannot replace {}", path.display()))
}

fn timestamp() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// The status files in a sweep folder: `sweep.json` and every `sweep.shard-I-of-N.json`, sorted.
pub fn status_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    if !dir.is_dir() {
        return Ok(files);
    }
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot read {}", dir.display()))? {
        let path = entry.with_context(|| format!("cannot read {}", dir.display()))?.path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        if name == SWEEP_FILE || (name.starts_with("sweep.shard-") && name.ends_with(".json")) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Everything a sweep folder knows: its status files united (each run at its most advanced status).
/// `None` when the folder holds no sweep. Status files whose plans differ are an error naming both.
pub fn load_folder(dir: &Path) -> Result<Option<SweepFile>> {
    let mut united: Option<(PathBuf, SweepFile)> = None;
    for path in status_files(dir)? {
        let file = SweepFile::read(&path)?;
        match &mut united {
            None => united = Some((path, file)),
            Some((first, base)) => {
                if let Some(diff) = base.plan_difference(&file) {
                    bail!("{} and {} hold different plans: {diff}", first.display(), path.display());
                }
                base.absorb(&file);
            }
        }
    }
    Ok(united.map(|(_, mut file)| {
        file.shard = None;
        file
    }))
}

/// How a sweep runs.
#[derive(Debug, Clone)]
pub struct SweepOptions {
    /// The sweep folder.
    pub out: PathBuf,
    pub experiment: Option<PathBuf>,
    pub description: Option<String>,
    pub shard: Option<Shard>,
    /// Continue the sweep in `out`: complete runs are skipped, the others continue.
    pub resume: bool,
}

/// What a sweep did.
#[derive(Debug, Clone)]
pub struct SweepReport {
    pub dir: PathBuf,
    /// The sweep as `sweep.json` holds it at the end (every shard's statuses that were in the folder).
    pub sweep: SweepFile,
    /// Runs of this process that failed or stopped early.
    pub failed: Vec<String>,
    /// Runs skipped because they were complete (`--resume`).
    pub skipped: Vec<String>,
    /// Runs of this process that finished with some failed samples (their other samples' results stand).
    pub partial: Vec<String>,
    /// The run a signal stopped; the sweep stopped with it.
    pub interrupted: Option<String>,
}

/// Runs one run of the sweep: `options` (built by the caller from the run's configuration) with the
/// sweep's folder, name, configuration and resume flag applied. Runs with an adapter also get their base
/// run, `<sweep>/<run-name>-base`, compared with them.
fn run_one(mut options: ExecOptions, run: &PlannedRun, dir: &Path, resume: bool) -> Result<RunOutcome> {
    options.out = Some(dir.to_path_buf());
    options.run_name = Some(run.name.clone());
    options.run = run.config.clone();
    // exec keeps an interrupted run's finished samples and runs the rest (same configuration only).
    options.resume = resume;
    crate::baseline::run(&options, crate::baseline::base_out_beside)
}

/// Runs `plan` (this shard's slice of it) into `opts.out`. `options_for` builds each run's exec options from
/// its effective configuration; an error there fails that run only.
pub fn run_sweep(
    plan: &[PlannedRun],
    opts: &SweepOptions,
    options_for: &dyn Fn(&PlannedRun) -> Result<ExecOptions>,
) -> Result<SweepReport> {
    let out = &opts.out;
    std::fs::create_dir_all(out).with_context(|| format!("cannot create the sweep folder {}", out.display()))?;
    let own_path = out.join(SweepFile::file_name(opts.shard));
    let mut state = SweepFile::new(plan, opts.experiment.as_deref(), opts.description.clone(), opts.shard);
    let existing = load_folder(out)?;
    if let Some(existing) = &existing {
        if let Some(diff) = state.plan_difference(existing) {
            bail!(
                "{} holds another sweep's plan: {diff}; a sweep cannot mix two plans (choose another --out, or \
                 give the same experiment, flags and --include/--exclude as before)",
                out.display()
            );
        }
        if own_path.exists() && !opts.resume {
            bail!(
                "{} already holds this sweep ({} exists); pass --resume to continue it, or choose another --out",
                out.display(),
                own_path.display()
            );
        }
        if opts.resume {
            state.created_at = existing.created_at.clone();
            state.absorb(existing);
        }
    }
    let mut report = SweepReport {
        dir: out.clone(),
        sweep: state.clone(),
        failed: Vec::new(),
        skipped: Vec::new(),
        partial: Vec::new(),
        interrupted: None,
    };
    save(&state, &own_path, out, opts.shard)?;

    let mine: Vec<usize> = (0..plan.len()).filter(|i| opts.shard.is_none_or(|s| s.owns(*i))).collect();
    for (position, &i) in mine.iter().enumerate() {
        let run = &plan[i];
        let dir = out.join(&run.name);
        if state.runs[i].status == RunState::Complete {
            eprintln!("[{}/{}] {}: complete, skipped", position + 1, mine.len(), run.name);
            report.skipped.push(run.name.clone());
            continue;
        }
        eprintln!("[{}/{}] {} -> {}", position + 1, mine.len(), run.name, dir.display());
        let resume = opts.resume && state.runs[i].status != RunState::Pending;
        {
            let entry = &mut state.runs[i];
            entry.status = RunState::Running;
            entry.started_at = Some(timestamp());
            entry.finished_at = None;
            entry.error = None;
            entry.headline = None;
        }
        save(&state, &own_path, out, opts.shard)?;
        let outcome = options_for(run).and_then(|options| run_one(options, run, &dir, resume));
        let entry = &mut state.runs[i];
        entry.finished_at = Some(timestamp());
        match outcome {
            Ok(outcome) => {
                let headline = Headline::of(&outcome.summary);
                eprintln!("{}: {}", run.name, describe(&headline));
                let verdict = outcome.summary.verdict();
                entry.status = match verdict {
                    RunVerdict::Passed | RunVerdict::SomeSamplesFailed { .. } => RunState::Complete,
                    RunVerdict::Aborted { .. } => RunState::Aborted,
                    RunVerdict::NoSampleSucceeded { .. } => RunState::Failed,
                    RunVerdict::Interrupted { .. } => RunState::Interrupted,
                };
                if matches!(verdict, RunVerdict::SomeSamplesFailed { .. }) {
                    report.partial.push(run.name.clone());
                }
                entry.error = (verdict != RunVerdict::Passed).then(|| verdict.to_string());
                entry.headline = Some(headline);
            }
            Err(e) => {
                eprintln!("{}: failed: {e:#}", run.name);
                entry.status = RunState::Failed;
                entry.error = Some(format!("{e:#}"));
            }
        }
        if entry.status == RunState::Interrupted {
            report.interrupted = Some(run.name.clone());
            save(&state, &own_path, out, opts.shard)?;
            break;
        }
        if entry.status != RunState::Complete {
            report.failed.push(run.name.clone());
        }
        save(&state, &own_path, out, opts.shard)?;
    }
    report.sweep = load_folder(out)?.unwrap_or(state);
    Ok(report)
}

/// Writes this process's status file, then `sweep.json` (rebuilt from every shard's file when sharded) and
/// `sweep.csv`.
fn save(state: &SweepFile, own_path: &Path, out: &Path, shard: Option<Shard>) -> Result<()> {
    let mut state = state.clone();
    state.updated_at = timestamp();
    state.write(own_path)?;
    let united = if shard.is_some() {
        let mut united = load_shard_files(out)?.unwrap_or_else(|| state.clone());
        united.shard = None;
        united.write(&out.join(SWEEP_FILE))?;
        united
    } else {
        state
    };
    write_csv(&united, &out.join(SWEEP_CSV))
}

/// The shard files of a folder united (not `sweep.json`, which is rebuilt from them).
fn load_shard_files(dir: &Path) -> Result<Option<SweepFile>> {
    let mut united: Option<SweepFile> = None;
    for path in status_files(dir)?.into_iter().filter(|p| !p.ends_with(SWEEP_FILE)) {
        let file = SweepFile::read(&path)?;
        match &mut united {
            None => united = Some(file),
            Some(base) => {
                if let Some(diff) = base.plan_difference(&file) {
                    bail!("{} holds a different plan: {diff}", path.display());
                }
                base.absorb(&file);
            }
        }
    }
    Ok(united)
}

/// One line per run: `accuracy 0.500 [0.094, 0.906], TTFT p50 12.3 ms, 151 tok/s`.
pub fn describe(h: &Headline) -> String {
    let mut parts = Vec::new();
    if let (Some(metric), Some(mean)) = (&h.metric, h.mean) {
        parts.push(format!("{metric} {}", metric_cell(h).unwrap_or_else(|| format!("{mean:.3}"))));
    }
    parts.push(format!("{} samples ({} failed)", h.samples, h.failed));
    if let Some(t) = h.ttft_p50_ms {
        parts.push(format!("TTFT p50 {t:.1} ms"));
    }
    if let Some(t) = h.decode_tokens_per_s {
        parts.push(format!("{t:.1} tok/s"));
    }
    parts.join(", ")
}

fn metric_cell(h: &Headline) -> Option<String> {
    let mean = h.mean?;
    Some(match (h.ci95_low, h.ci95_high) {
        (Some(lo), Some(hi)) => format!("{mean:.3} [{lo:.3}, {hi:.3}]"),
        _ => format!("{mean:.3}"),
    })
}

/// The comparison table printed at the end of a sweep: one row per run.
pub fn render_table(sweep: &SweepFile) -> String {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_content_arrangement(ContentArrangement::Dynamic);
    let metric_name =
        sweep.runs.iter().filter_map(|r| r.headline.as_ref()?.metric.clone()).next().unwrap_or_else(|| "metric".into());
    table.set_header(vec![
        "run".to_string(),
        "status".into(),
        "scenario".into(),
        "model".into(),
        "precision".into(),
        "EP".into(),
        "batch".into(),
        format!("{metric_name} [95% CI]"),
        "TTFT p50 ms".into(),
        "decode tok/s".into(),
        "peak memory".into(),
    ]);
    for run in &sweep.runs {
        let config: RunConfig = serde_json::from_value(run.config.clone()).unwrap_or_default();
        let h = run.headline.clone().unwrap_or_default();
        let dash = || "–".to_string();
        let precision = h.model_precision.clone().or_else(|| config.precision.map(|p| p.to_string()));
        let metric = match (&h.metric, metric_cell(&h)) {
            (Some(m), Some(cell)) if *m == metric_name => cell,
            (Some(m), Some(cell)) => format!("{m} {cell}"),
            _ => dash(),
        };
        let row = vec![
            Cell::new(&run.name),
            Cell::new(run.status.as_str()),
            Cell::new(crate::experiment::label_of("scenario", &config)),
            Cell::new(crate::experiment::label_of("model", &config)),
            Cell::new(precision.unwrap_or_else(dash)),
            Cell::new(config.ep.map_or_else(dash, |e| e.to_string())),
            Cell::new(config.batch_size.map_or_else(dash, |b| b.to_string())).set_alignment(CellAlignment::Right),
            Cell::new(metric).set_alignment(CellAlignment::Right),
            Cell::new(h.ttft_p50_ms.map_or_else(dash, |t| format!("{t:.1}"))).set_alignment(CellAlignment::Right),
            Cell::new(h.decode_tokens_per_s.map_or_else(dash, |t| format!("{t:.1}")))
                .set_alignment(CellAlignment::Right),
            Cell::new(h.peak_rss_bytes.map_or_else(dash, human_bytes)).set_alignment(CellAlignment::Right),
        ];
        table.add_row(row);
    }
    format!("{table}\n")
}

/// `sweep.csv`: one row per run, its configuration (every key some run sets) and headline numbers.
pub fn write_csv(sweep: &SweepFile, path: &Path) -> Result<()> {
    let configs: Vec<BTreeMap<String, serde_json::Value>> = sweep
        .runs
        .iter()
        .map(|r| r.config.as_object().map(|m| m.clone().into_iter().collect()).unwrap_or_default())
        .collect();
    let keys: Vec<&str> =
        RUN_KEYS.iter().copied().filter(|k| *k != "name" && configs.iter().any(|c| c.contains_key(*k))).collect();
    let mut writer = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["name", "status", "dir"];
    header.extend(keys.iter().copied());
    header.extend([
        "metric",
        "mean",
        "ci95_low",
        "ci95_high",
        "samples",
        "failed",
        "ttft_p50_ms",
        "decode_tokens_per_s",
        "e2e_p50_ms",
        "peak_rss_bytes",
        "model_precision",
        "wall_seconds",
        "error",
    ]);
    writer.write_record(&header).context("cannot write sweep.csv")?;
    let opt = |v: Option<f64>| v.map_or(String::new(), |v| v.to_string());
    for (run, config) in sweep.runs.iter().zip(&configs) {
        let mut row = vec![run.name.clone(), run.status.as_str().to_string(), run.dir.clone()];
        row.extend(keys.iter().map(|k| match config.get(*k) {
            None => String::new(),
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(v) => v.to_string(),
        }));
        let h = run.headline.clone().unwrap_or_default();
        let has = run.headline.is_some();
        row.extend([
            h.metric.clone().unwrap_or_default(),
            opt(h.mean),
            opt(h.ci95_low),
            opt(h.ci95_high),
            if has { h.samples.to_string() } else { String::new() },
            if has { h.failed.to_string() } else { String::new() },
            opt(h.ttft_p50_ms),
            opt(h.decode_tokens_per_s),
            opt(h.e2e_p50_ms),
            h.peak_rss_bytes.map_or(String::new(), |b| b.to_string()),
            h.model_precision.clone().unwrap_or_default(),
            if has { h.wall_seconds.to_string() } else { String::new() },
            run.error.clone().unwrap_or_default(),
        ]);
        writer.write_record(&row).context("cannot write sweep.csv")?;
    }
    let bytes = writer.into_inner().context("cannot write sweep.csv")?;
    write_atomically(path, &bytes)
}
