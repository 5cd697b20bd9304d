//! Experiments: what a sweep runs. A run configuration ([`RunConfig`]) names every setting one benchmark run
//! can vary (scenario, model, precision, execution provider, batch size, prompting, sampling, generation);
//! configurations come in layers (built-in defaults < an experiment's `defaults:` < a matrix or run entry <
//! command-line flags), and [`plan`] turns the layers into the sorted, named, filtered list of runs a sweep
//! (or one shard of it) executes. `file` reads experiment folders, `model` maps `precision` to model folders.

pub mod effective;
pub mod file;
pub mod model;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::str::FromStr;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::engine::ExecutionProvider;
use crate::import::Precision;
use crate::scenario::fewshot::FewShotOrder;

/// Why an experiment could not be read or planned. Messages name the file, the entry and the key.
#[derive(Debug, thiserror::Error)]
pub enum ExperimentError {
    #[error("{path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid {format}: {message}")]
    Syntax { path: PathBuf, format: &'static str, message: String },
    #[error("{origin}: unknown key `{key}` (known: {known})")]
    UnknownKey { origin: String, key: String, known: String },
    #[error("{origin}: key `{key}`: {message}")]
    BadValue { origin: String, key: String, message: String },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
    #[error("{dir}: no experiment file (experiment.yaml, experiment.yml or experiment.json) and no runs/*.yaml|json")]
    NoExperiment { dir: PathBuf },
    #[error("two runs are named `{name}`: {first} and {second}; give one of them another `name`")]
    DuplicateName { name: String, first: String, second: String },
    #[error("{flag} {pattern:?}: {message}")]
    BadGlob { flag: String, pattern: String, message: String },
}

/// One run's settings, every field optional so configurations can be layered. The keys are the ones
/// experiment files accept; `docs/experiments.md` documents each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// The run's name (its folder in the sweep); derived from the keys that vary when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The scenario component (`.wasm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<PathBuf>,
    /// A model folder, a folder of precision subfolders, a `.gguf` file or `hf:OWNER/REPO[/SUB][@REV]`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<Precision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ep: Option<ExecutionProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<usize>,
    /// A LoRA adapter (`.onnx_adapter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<PathBuf>,
    /// false sends prompts as plain text (`--no-chat-template`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chat_template: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// A dataset file, `hf:OWNER/NAME[:CONFIG][@REV]` or `hf`; the scenario's embedded sample when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsets: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot: Option<u32>,
    /// The split few-shot examples come from (a file or a folder, e.g. MMLU's `dev/`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot_data: Option<PathBuf>,
    /// `first` or `seeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot_order: Option<FewShotOrder>,
    /// `generate` or `loglikelihood`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scoring: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_samples: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_new_tokens: Option<usize>,
    /// Stop strings replacing the scenario's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repetition_penalty: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_eos: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threads: Option<usize>,
    /// Sessions scoring side by side, each on its share of `threads` (log-likelihood runs on the CPU).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// Samples run first and discarded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warmup: Option<usize>,
    /// Times the selection is run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeat: Option<usize>,
}

/// Every run key, in the order names are built from and documentation lists them.
pub const RUN_KEYS: [&str; 30] = [
    "name",
    "scenario",
    "model",
    "precision",
    "ep",
    "batch_size",
    "adapter",
    "chat_template",
    "system_prompt",
    "data",
    "split",
    "subsets",
    "few_shot",
    "few_shot_data",
    "few_shot_order",
    "scoring",
    "max_samples",
    "shuffle_seed",
    "max_new_tokens",
    "stop",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "repetition_penalty",
    "ignore_eos",
    "threads",
    "workers",
    "warmup",
    "repeat",
];

fn known_keys() -> impl Iterator<Item = &'static str> {
    RUN_KEYS.iter().copied()
}

/// The scoring modes `scoring` accepts.
const SCORING_MODES: [&str; 2] = ["generate", "loglikelihood"];

impl RunConfig {
    /// Built-in defaults: the values `runner exec` uses when nothing says otherwise.
    pub fn builtin() -> Self {
        RunConfig {
            ep: Some(ExecutionProvider::Cpu),
            batch_size: Some(1),
            chat_template: Some(true),
            seed: Some(0),
            repetition_penalty: Some(1.0),
            ignore_eos: Some(false),
            ..Default::default()
        }
    }

    /// `self` with every key `over` sets replaced by `over`'s value.
    pub fn layered(&self, over: &RunConfig) -> RunConfig {
        let mut base = serde_json::to_value(self).expect("a RunConfig serializes");
        let over = serde_json::to_value(over).expect("a RunConfig serializes");
        if let (Some(base), Some(over)) = (base.as_object_mut(), over.as_object()) {
            for (k, v) in over {
                base.insert(k.clone(), v.clone());
            }
        }
        serde_json::from_value(base).expect("layering keeps a valid RunConfig")
    }

    /// The configuration as a JSON object (unset keys left out): what `summary.json` records as `config`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a RunConfig serializes")
    }

    /// Reads one configuration from a map of keys (a run entry of an experiment file). `origin` names the
    /// file and entry in errors; relative paths are resolved against `base_dir`.
    pub fn from_map(
        map: &serde_json::Map<String, serde_json::Value>,
        origin: &str,
        base_dir: Option<&Path>,
    ) -> Result<RunConfig, ExperimentError> {
        let mut config = RunConfig::default();
        for (key, value) in map {
            let one = RunConfig::from_key(key, value, origin)?;
            config = config.layered(&one);
        }
        if let Some(dir) = base_dir {
            config.resolve_paths(dir);
        }
        Ok(config)
    }

    /// Reads a single key: its own error names the key and the expected type.
    fn from_key(key: &str, value: &serde_json::Value, origin: &str) -> Result<RunConfig, ExperimentError> {
        if !known_keys().any(|k| k == key) {
            return Err(ExperimentError::UnknownKey {
                origin: origin.to_string(),
                key: key.to_string(),
                known: known_keys().collect::<Vec<_>>().join(", "),
            });
        }
        let bad =
            |message: String| ExperimentError::BadValue { origin: origin.to_string(), key: key.to_string(), message };
        if value.is_null() {
            return Err(bad("has no value; leave the key out for the default".to_string()));
        }
        let mut map = serde_json::Map::new();
        map.insert(key.to_string(), value.clone());
        let config: RunConfig = serde_json::from_value(serde_json::Value::Object(map)).map_err(|e| {
            let message = e.to_string();
            // serde_json says "expected usize"; say what a user writes instead.
            let message = message
                .replace("expected usize", "expected a non-negative integer")
                .replace("expected u64", "expected a non-negative integer")
                .replace("expected u32", "expected a non-negative integer")
                .replace("expected f32", "expected a number")
                .replace("expected a boolean", "expected true or false");
            bad(message)
        })?;
        if let Some(scoring) = &config.scoring
            && !SCORING_MODES.contains(&scoring.as_str())
        {
            return Err(bad(format!("expected one of {}, got {scoring:?}", SCORING_MODES.join(", "))));
        }
        if let Some(name) = &config.name
            && name.trim().is_empty()
        {
            return Err(bad("is empty".to_string()));
        }
        if config.batch_size == Some(0) {
            return Err(bad("must be at least 1".to_string()));
        }
        if config.repeat == Some(0) {
            return Err(bad("must be at least 1".to_string()));
        }
        Ok(config)
    }

    /// Makes relative file paths relative to `dir` (the folder of the file that names them); Hub references
    /// and `hf` dataset sources are left alone.
    pub fn resolve_paths(&mut self, dir: &Path) {
        let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { normalize(&dir.join(p)) };
        let is_hub = |p: &Path| p.to_str().is_some_and(|s| s.starts_with("hf:"));
        self.scenario = self.scenario.as_deref().map(resolve);
        self.adapter = self.adapter.as_deref().map(resolve);
        self.few_shot_data = self.few_shot_data.as_deref().map(resolve);
        self.model = self.model.as_deref().map(|m| if is_hub(m) { m.to_path_buf() } else { resolve(m) });
        self.data = self.data.as_ref().map(|d| {
            if d == "hf" || d.starts_with("hf:") { d.clone() } else { resolve(Path::new(d)).display().to_string() }
        });
    }

    /// The value of one key, as JSON (`null` when unset).
    fn value_of(&self, key: &str) -> serde_json::Value {
        self.to_json().get(key).cloned().unwrap_or(serde_json::Value::Null)
    }

    /// Whether every key `pattern` sets has the same value here (an include/exclude entry).
    fn matches(&self, pattern: &RunConfig) -> bool {
        let pattern = pattern.to_json();
        pattern.as_object().is_some_and(|keys| keys.iter().all(|(k, v)| self.value_of(k) == *v))
    }
}

/// Removes `.` and folds `a/..` without touching the file system, so resolved paths read as written.
fn normalize(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() { PathBuf::from(".") } else { out.iter().collect() }
}

/// A configuration waiting for its name, and where it came from (for error messages).
#[derive(Debug, Clone)]
pub struct RunEntry {
    pub origin: String,
    pub config: RunConfig,
}

/// One run of a plan: its unique, path-safe name and its effective configuration (all layers applied).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRun {
    pub name: String,
    pub config: RunConfig,
}

/// What selects runs from the full plan: name globs and an experiment's include/exclude entries.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `--include` globs over run names; empty selects every run.
    pub include: Vec<String>,
    /// `--exclude` globs over run names.
    pub exclude: Vec<String>,
}

/// `--shard I/N`: the runs whose index in the sorted plan is I modulo N.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || format!("expected I/N with 0 <= I < N (0-based, e.g. 0/4), got {text:?}");
        let (i, n) = text.split_once('/').ok_or_else(usage)?;
        let index: usize = i.trim().parse().map_err(|_| usage())?;
        let count: usize = n.trim().parse().map_err(|_| usage())?;
        if count == 0 || index >= count {
            return Err(usage());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// The runs of the sorted plan this shard runs.
    pub fn select<T: Clone>(&self, sorted: &[T]) -> Vec<T> {
        sorted.iter().enumerate().filter(|(i, _)| i % self.count == self.index).map(|(_, r)| r.clone()).collect()
    }

    pub fn owns(&self, position: usize) -> bool {
        position % self.count == self.index
    }
}

/// Characters a run name keeps; everything else becomes `_`, so a name is always one plain path component.
pub fn sanitize_name(name: &str) -> String {
    let mut safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
    // A leading dot would make `.` or `..` (or a hidden folder): never a way out of the sweep folder.
    if safe.starts_with('.') {
        safe.replace_range(0..1, "_");
    }
    safe.truncate(120);
    if safe.is_empty() { "run".to_string() } else { safe }
}

/// A short, readable label of one key's value, for derived run names.
pub fn label_of(key: &str, config: &RunConfig) -> String {
    let stem = |p: &Path| p.file_stem().map_or_else(|| p.display().to_string(), |s| s.to_string_lossy().into_owned());
    match key {
        "scenario" => config.scenario.as_deref().map_or("scenario".into(), stem),
        "model" => match config.model.as_deref() {
            None => "default".into(),
            Some(m) => match m.to_str().and_then(|s| s.strip_prefix("hf:")) {
                Some(hub) => hub.split(['/', '@']).filter(|s| !s.is_empty()).nth(1).unwrap_or(hub).to_string(),
                None => {
                    let last = stem(m);
                    let is_precision = Precision::ALL.iter().any(|p| p.to_string() == last);
                    match m.parent().filter(|_| is_precision) {
                        Some(parent) if parent.file_name().is_some() => format!("{}-{last}", stem(parent)),
                        _ => last,
                    }
                }
            },
        },
        "precision" => config.precision.map_or("asis".into(), |p| p.to_string()),
        "ep" => config.ep.map_or("cpu".into(), |e| e.to_string()),
        "batch_size" => format!("b{}", config.batch_size.unwrap_or(1)),
        "adapter" => config.adapter.as_deref().map_or("base".into(), |a| format!("lora-{}", stem(a))),
        "chat_template" => (if config.chat_template == Some(false) { "nochat" } else { "chat" }).into(),
        "system_prompt" => match &config.system_prompt {
            None => "nosys".into(),
            Some(s) => format!("sys-{}", &hex(&Sha256::digest(s.as_bytes()))[..6]),
        },
        "data" => match config.data.as_deref() {
            None => "embedded".into(),
            Some(d) => match d.strip_prefix("hf:") {
                Some(hub) => hub.split(['/', ':', '@']).nth(1).unwrap_or(hub).to_string(),
                None => stem(Path::new(d)),
            },
        },
        "subsets" => config.subsets.as_ref().map_or("all".into(), |s| s.join("+")),
        // Stop strings hold line breaks and punctuation: a short hash names them in a folder name.
        "stop" => match &config.stop {
            None => "stopdefault".into(),
            Some(stops) => format!("stop-{}", &hex(&Sha256::digest(stops.join("\u{0}").as_bytes()))[..6]),
        },
        "few_shot" => config.few_shot.map_or("shotdefault".into(), |k| format!("{k}shot")),
        "few_shot_data" => config.few_shot_data.as_deref().map_or("shotsame".into(), |d| format!("shots-{}", stem(d))),
        "few_shot_order" => config.few_shot_order.map_or("orderdefault".into(), |o| o.name().to_string()),
        "scoring" => match config.scoring.as_deref() {
            Some("loglikelihood") => "ll".into(),
            Some(_) => "gen".into(),
            None => "scoredefault".into(),
        },
        "ignore_eos" => (if config.ignore_eos == Some(true) { "ignoreeos" } else { "eos" }).into(),
        other => {
            let short = match other {
                "split" => "",
                "max_samples" => "n",
                "shuffle_seed" => "shuf",
                "max_new_tokens" => "tok",
                "temperature" => "temp",
                "top_k" => "k",
                "top_p" => "p",
                "seed" => "seed",
                "repetition_penalty" => "rp",
                "threads" => "th",
                "workers" => "wk",
                "warmup" => "w",
                "repeat" => "r",
                _ => other,
            };
            match config.value_of(other) {
                serde_json::Value::Null => format!("{short}default"),
                serde_json::Value::String(s) => format!("{short}{s}"),
                v => format!("{short}{v}"),
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Names runs: an explicit `name` (sanitized), else the scenario plus every key whose value differs between
/// the runs (`gsm8k-int4-cpu-b1`). Two derived names that still collide get a short hash of their
/// configuration; two explicit names that collide are an error naming both entries.
pub fn name_runs(entries: Vec<RunEntry>) -> Result<Vec<PlannedRun>, ExperimentError> {
    let varying: Vec<&str> = RUN_KEYS
        .iter()
        .copied()
        .filter(|k| *k != "name" && *k != "scenario")
        .filter(|k| {
            let mut values = entries.iter().map(|e| e.config.value_of(k));
            let first = values.next();
            values.any(|v| Some(v) != first)
        })
        .collect();
    let mut named: Vec<(String, bool, RunEntry)> = entries
        .into_iter()
        .map(|entry| match &entry.config.name {
            Some(name) => (sanitize_name(name), true, entry),
            None => {
                let mut parts = vec![label_of("scenario", &entry.config)];
                parts.extend(varying.iter().map(|k| label_of(k, &entry.config)));
                (sanitize_name(&parts.join("-")), false, entry)
            }
        })
        .collect();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for (name, _, _) in &named {
        *counts.entry(name.clone()).or_default() += 1;
    }
    for (name, explicit, entry) in &mut named {
        if !*explicit && counts[name.as_str()] > 1 {
            let digest = hex(&Sha256::digest(entry.config.to_json().to_string().as_bytes()));
            *name = format!("{name}-{}", &digest[..8]);
        }
    }
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut runs = Vec::with_capacity(named.len());
    for (name, _, entry) in named {
        if let Some(first) = seen.insert(name.clone(), entry.origin.clone()) {
            return Err(ExperimentError::DuplicateName { name, first, second: entry.origin });
        }
        let mut config = entry.config;
        config.name = Some(name.clone());
        runs.push(PlannedRun { name, config });
    }
    runs.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(runs)
}

/// Compiles globs; an invalid one is an error naming its flag.
pub fn glob_set(flag: &str, patterns: &[String]) -> Result<Option<GlobSet>, ExperimentError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut builder = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|e| ExperimentError::BadGlob {
            flag: flag.to_string(),
            pattern: pattern.clone(),
            message: e.kind().to_string(),
        })?;
        builder.add(glob);
    }
    let set = builder.build().map_err(|e| ExperimentError::BadGlob {
        flag: flag.to_string(),
        pattern: patterns.join(","),
        message: e.to_string(),
    })?;
    Ok(Some(set))
}

/// A filter of an experiment file's `include:` / `exclude:` lists: a name glob or a map of keys a run must match.
#[derive(Debug, Clone)]
pub enum RunFilter {
    Name(String),
    Keys(Box<RunConfig>),
}

impl RunFilter {
    fn matches(&self, run: &PlannedRun, globs: &Option<GlobSet>) -> bool {
        match self {
            RunFilter::Name(_) => globs.as_ref().is_some_and(|g| g.is_match(&run.name)),
            RunFilter::Keys(keys) => run.config.matches(keys),
        }
    }
}

fn filter_globs(origin: &str, filters: &[RunFilter]) -> Result<Option<GlobSet>, ExperimentError> {
    let names: Vec<String> =
        filters.iter().filter_map(|f| if let RunFilter::Name(n) = f { Some(n.clone()) } else { None }).collect();
    glob_set(origin, &names)
}

/// Everything that makes a plan: the built-in defaults are added here.
#[derive(Debug, Clone, Default)]
pub struct PlanInput {
    /// An experiment folder's contents, if one was given.
    pub experiment: Option<file::Experiment>,
    /// Flags given on the command line (scalars), applied over every entry.
    pub command_line: RunConfig,
    /// List-valued flags given on the command line: each list multiplies the plan (cartesian product).
    pub command_line_lists: Vec<(&'static str, Vec<serde_json::Value>)>,
    pub selection: Selection,
}

/// The sorted, named list of runs the inputs describe, after include/exclude (before sharding: every
/// shard computes the same plan).
pub fn plan(input: &PlanInput) -> Result<Vec<PlannedRun>, ExperimentError> {
    let builtin = RunConfig::builtin();
    let (defaults, entries) = match &input.experiment {
        Some(exp) => (exp.defaults.clone(), exp.entries.clone()),
        None => {
            (RunConfig::default(), vec![RunEntry { origin: "the command line".into(), config: RunConfig::default() }])
        }
    };
    let lists = product(&input.command_line_lists);
    let mut layered = Vec::new();
    for entry in &entries {
        for combo in &lists {
            let config = builtin.layered(&defaults).layered(&entry.config).layered(&input.command_line).layered(combo);
            if config.scenario.is_none() {
                return Err(ExperimentError::Invalid {
                    origin: entry.origin.clone(),
                    message: "no scenario: set `scenario` (here or in `defaults:`) or give one on the command line"
                        .into(),
                });
            }
            layered.push(RunEntry { origin: entry.origin.clone(), config });
        }
    }
    let all = name_runs(layered)?;
    let include = glob_set("--include", &input.selection.include)?;
    let exclude = glob_set("--exclude", &input.selection.exclude)?;
    let (file_include, file_exclude, origin) = match &input.experiment {
        Some(exp) => (exp.include.as_slice(), exp.exclude.as_slice(), exp.path.display().to_string()),
        None => (&[][..], &[][..], String::new()),
    };
    let file_include_globs = filter_globs(&format!("{origin}: include"), file_include)?;
    let file_exclude_globs = filter_globs(&format!("{origin}: exclude"), file_exclude)?;
    Ok(all
        .into_iter()
        .filter(|run| include.as_ref().is_none_or(|g| g.is_match(&run.name)))
        .filter(|run| exclude.as_ref().is_none_or(|g| !g.is_match(&run.name)))
        .filter(|run| file_include.is_empty() || file_include.iter().any(|f| f.matches(run, &file_include_globs)))
        .filter(|run| !file_exclude.iter().any(|f| f.matches(run, &file_exclude_globs)))
        .collect())
}

/// The cartesian product of list-valued keys, as one configuration per combination (the last list varying
/// fastest); a single empty configuration when there are no lists.
fn product(lists: &[(&'static str, Vec<serde_json::Value>)]) -> Vec<RunConfig> {
    let mut combos = vec![serde_json::Map::new()];
    for (key, values) in lists.iter().filter(|(_, v)| !v.is_empty()) {
        combos = combos
            .into_iter()
            .flat_map(|combo| {
                values.iter().map(move |v| {
                    let mut next = combo.clone();
                    next.insert(key.to_string(), v.clone());
                    next
                })
            })
            .collect();
    }
    combos
        .into_iter()
        .map(|m| serde_json::from_value(serde_json::Value::Object(m)).expect("command-line values are valid run keys"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field set. A struct literal without `..`: a field added to `RunConfig` does not compile here
    /// until it is added, and then the assertions below hold it to `RUN_KEYS` and the documentation.
    fn every_key_set() -> RunConfig {
        RunConfig {
            name: Some("n".into()),
            scenario: Some("s.wasm".into()),
            model: Some("m".into()),
            precision: Some(Precision::Int4),
            ep: Some(ExecutionProvider::Cpu),
            batch_size: Some(2),
            adapter: Some("a.onnx_adapter".into()),
            chat_template: Some(false),
            system_prompt: Some("p".into()),
            data: Some("d.jsonl".into()),
            split: Some("test".into()),
            subsets: Some(vec!["x".into()]),
            few_shot: Some(5),
            few_shot_data: Some("dev".into()),
            few_shot_order: Some(FewShotOrder::First),
            scoring: Some("generate".into()),
            max_samples: Some(3),
            shuffle_seed: Some(1),
            max_new_tokens: Some(8),
            stop: Some(vec!["\n".into()]),
            temperature: Some(0.5),
            top_k: Some(4),
            top_p: Some(0.9),
            seed: Some(7),
            repetition_penalty: Some(1.1),
            ignore_eos: Some(true),
            threads: Some(2),
            workers: Some(2),
            warmup: Some(1),
            repeat: Some(2),
        }
    }

    #[test]
    fn run_keys_are_exactly_the_fields_of_run_config_and_all_are_documented() {
        let config = every_key_set().to_json();
        let fields: Vec<&str> = config.as_object().unwrap().keys().map(String::as_str).collect();
        let mut keys = RUN_KEYS.to_vec();
        keys.sort_unstable();
        let mut sorted_fields = fields.clone();
        sorted_fields.sort_unstable();
        assert_eq!(sorted_fields, keys, "RUN_KEYS must list exactly RunConfig's fields");
        // Each key is read back by the experiment-file reader, one at a time, to the same value.
        for (key, value) in config.as_object().unwrap() {
            let one = RunConfig::from_key(key, value, "test").unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(one.to_json()[key], *value, "{key}");
        }
        let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/experiments.md")).unwrap();
        for key in RUN_KEYS {
            assert!(docs.contains(&format!("| `{key}` |")), "docs/experiments.md documents no run key `{key}`");
        }
    }
}
