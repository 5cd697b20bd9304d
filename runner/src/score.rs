//! `runner score`: scores outputs made elsewhere (vLLM, an API, an earlier run) with a scenario, with
//! the same dataset handling, metrics and aggregation as `runner exec` and no model. The outputs file is
//! JSON Lines, one object per sample: its `id` (or 0-based `index` into the dataset's samples) and its
//! `output` text. Every line is matched to exactly one sample; an unknown id, a repeated sample or a
//! malformed line is an error naming the file and line, and samples without an output are reported.
//! Each output is cut at the scenario's stop strings first, as generation in `runner exec` cuts it.

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use serde::Serialize;

use crate::datasets::DataSource;
use crate::engine::cut_at_stop_strings;
use crate::exec::{metric_specs, scenario_aggregate};
use crate::prepare::{self, ScenarioChoices};
use crate::results::table::metrics_table;
use crate::results::{Aggregates, MetricSummary, SampleError, SampleRecord, SampleStatus, Stage};
use crate::scenario::{ComponentCache, Sample, ScenarioLimits};

/// Everything `runner score` can be told.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub scenario: PathBuf,
    pub outputs: PathBuf,
    pub data: Option<DataSource>,
    pub split: Option<String>,
    pub choices: ScenarioChoices,
    pub scenario_cache: bool,
    /// Where to write each sample's score (JSON Lines), if anywhere.
    pub samples_out: Option<PathBuf>,
    pub limits: ScenarioLimits,
}

/// What scoring found, printed as a table or JSON.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreReport {
    pub scenario: String,
    pub scenario_version: String,
    pub scenario_hash: String,
    pub dataset: String,
    pub dataset_hash: String,
    pub outputs: String,
    /// Samples in the dataset.
    pub total: usize,
    /// Samples with an output that the scenario scored.
    pub scored: usize,
    /// Samples whose scoring failed (the scenario trapped or returned malformed data).
    pub failed: Vec<SampleFailure>,
    /// Ids of the samples the outputs file has no line for.
    pub missing: Vec<String>,
    pub metrics: BTreeMap<String, MetricSummary>,
    pub subsets: BTreeMap<String, BTreeMap<String, MetricSummary>>,
    pub scenario_metrics: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SampleFailure {
    pub id: String,
    pub message: String,
}

/// One line of the outputs file, matched to its sample.
#[derive(Debug)]
struct Output {
    line: usize,
    text: String,
}

pub fn score(opts: &ScoreOptions) -> Result<ScoreReport> {
    let cache = opts.scenario_cache.then(ComponentCache::from_env);
    let scenario = prepare::load_scenario(&opts.scenario, opts.limits, cache.as_ref())?;
    let mut ready = prepare::configure(scenario, &opts.choices)?;
    if ready.scoring != prepare::ScoringMode::Generate {
        bail!("--scoring loglikelihood: `runner score` scores generated text; log-likelihoods need the model");
    }
    // Outputs made elsewhere need no prompts, so no few-shot split.
    let dataset = prepare::load_dataset(&mut ready, opts.data.as_ref(), opts.split.as_deref(), None)?;
    let outputs = read_outputs(&opts.outputs, &dataset.samples)?;
    let metadata = ready.scenario.metadata().clone();

    let mut samples_out = match &opts.samples_out {
        Some(path) => Some(
            std::fs::File::create(path).with_context(|| format!("--samples-out {}: cannot create", path.display()))?,
        ),
        None => None,
    };
    let mut records = Vec::new();
    let mut missing = Vec::new();
    let mut failed = Vec::new();
    for (index, sample) in dataset.samples.iter().enumerate() {
        let Some(output) = outputs.get(&index) else {
            missing.push(sample.id.clone());
            continue;
        };
        // Stopped where `runner exec` would have stopped generating: the scenario's stop strings.
        let (text, stopped) = cut_at_stop_strings(&output.text, &metadata.defaults.stop);
        let mut record = score_one(&mut ready.scenario, index, sample, &text);
        record.finish = stopped.then(|| "stop".to_string());
        if let Some(error) = &record.error {
            failed.push(SampleFailure { id: sample.id.clone(), message: error.message.clone() });
        }
        if let Some(file) = &mut samples_out {
            let mut line = serde_json::to_vec(&record)?;
            line.push(b'\n');
            file.write_all(&line).context("cannot write --samples-out")?;
        }
        records.push(record);
    }
    let specs = metric_specs(&metadata.metrics);
    let aggregates = Aggregates::from_records(&records, &specs);
    let scenario_metrics = if records.iter().any(|r| r.status == SampleStatus::Ok) {
        scenario_aggregate(&mut ready, &records)?
    } else {
        BTreeMap::new()
    };
    Ok(ScoreReport {
        scenario: metadata.name,
        scenario_version: metadata.version,
        scenario_hash: ready.scenario.hash().to_string(),
        dataset: dataset.label,
        dataset_hash: dataset.hash,
        outputs: opts.outputs.display().to_string(),
        total: dataset.samples.len(),
        scored: aggregates.succeeded,
        failed,
        missing,
        metrics: aggregates.metrics,
        subsets: aggregates.subsets,
        scenario_metrics,
    })
}

fn score_one(scenario: &mut crate::scenario::Scenario, index: usize, sample: &Sample, output: &str) -> SampleRecord {
    let started = std::time::Instant::now();
    let score = scenario.score_text(sample, output);
    let mut record = SampleRecord::begin(index, sample.id.clone(), sample.subset.clone(), sample.reference.clone());
    record.output = Some(output.to_string());
    record.timings.score_ms = started.elapsed().as_secs_f64() * 1e3;
    match score {
        Ok(score) => {
            record.status = SampleStatus::Ok;
            record.extracted = score.extracted;
            record.metrics = score.metrics.into_iter().map(|m| (m.name, m.value)).collect();
        }
        Err(e) => record.error = Some(SampleError { stage: Stage::Score, message: e.to_string() }),
    }
    record
}

/// Reads the outputs file and matches each line to a sample (by index into `samples`).
fn read_outputs(path: &Path, samples: &[Sample]) -> Result<HashMap<usize, Output>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read outputs {}", path.display()))?;
    let by_id: HashMap<&str, usize> = samples.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
    let mut outputs: HashMap<usize, Output> = HashMap::new();
    let file = path.display();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        if line.trim().is_empty() {
            continue;
        }
        let json: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{file}, line {number}: invalid JSON"))?;
        let Some(object) = json.as_object() else { bail!("{file}, line {number}: expected a JSON object") };
        let output = match object.get("output") {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(_) => bail!("{file}, line {number}, field `output`: expected a string"),
            None => bail!("{file}, line {number}: no `output` field (the text to score)"),
        };
        let by_index = match object.get("index") {
            None => None,
            Some(value) => {
                let Some(i) = value.as_u64() else {
                    bail!("{file}, line {number}, field `index`: expected a non-negative integer, got {value}")
                };
                let i = usize::try_from(i).ok().filter(|&i| i < samples.len()).with_context(|| {
                    format!("{file}, line {number}, field `index`: {i} is past the dataset's {} samples", samples.len())
                })?;
                Some(i)
            }
        };
        let by_id = match object.get("id") {
            None => None,
            Some(value) => {
                let id = match value {
                    serde_json::Value::String(id) => id.clone(),
                    serde_json::Value::Number(id) => id.to_string(),
                    other => bail!("{file}, line {number}, field `id`: expected a string or number, got {other}"),
                };
                let Some(&i) = by_id.get(id.as_str()) else {
                    bail!("{file}, line {number}, field `id`: no sample of the dataset has id {id:?}")
                };
                Some(i)
            }
        };
        let sample = match (by_id, by_index) {
            (Some(a), Some(b)) if a != b => bail!(
                "{file}, line {number}: `id` names sample {a} but `index` is {b}; give one of them, or both agreeing"
            ),
            (Some(i), _) | (None, Some(i)) => i,
            (None, None) => bail!("{file}, line {number}: no `id` or `index` saying which sample this output is for"),
        };
        if let Some(previous) = outputs.get(&sample) {
            bail!(
                "{file}, line {number}: sample {:?} already has an output on line {}",
                samples[sample].id,
                previous.line
            );
        }
        outputs.insert(sample, Output { line: number, text: output });
    }
    if outputs.is_empty() {
        bail!("outputs {file} holds no outputs");
    }
    Ok(outputs)
}

impl ScoreReport {
    /// The table `runner score` prints.
    pub fn render_terminal(&self) -> String {
        let mut out = String::new();
        let mut header = Table::new();
        header.load_preset(UTF8_FULL_CONDENSED);
        header.add_row(vec![
            "scenario".to_string(),
            format!("{} {} ({})", self.scenario, self.scenario_version, self.scenario_hash),
        ]);
        header.add_row(vec!["dataset".to_string(), format!("{} — {} samples", self.dataset, self.total)]);
        header.add_row(vec!["outputs".to_string(), self.outputs.clone()]);
        header.add_row(vec![
            "samples".to_string(),
            format!("{} scored, {} failed, {} without output", self.scored, self.failed.len(), self.missing.len()),
        ]);
        out.push_str(&header.to_string());
        out.push('\n');
        if !self.metrics.is_empty() {
            out.push_str(&metrics_table("metric", self.metrics.iter().map(|(name, m)| (name.clone(), m))));
        }
        if !self.subsets.is_empty() {
            let rows = self
                .subsets
                .iter()
                .flat_map(|(subset, metrics)| metrics.iter().map(move |(name, m)| (format!("{subset} · {name}"), m)));
            out.push_str(&metrics_table("subset · metric", rows));
        }
        for (name, value) in &self.scenario_metrics {
            out.push_str(&format!("{name}: {value:.4}\n"));
        }
        if !self.missing.is_empty() {
            let shown: Vec<&str> = self.missing.iter().take(10).map(String::as_str).collect();
            let more = if self.missing.len() > shown.len() { ", ..." } else { "" };
            out.push_str(&format!(
                "Warning: {} samples have no output (ids {}{more})\n",
                self.missing.len(),
                shown.join(", ")
            ));
        }
        for failure in self.failed.iter().take(10) {
            out.push_str(&format!("Sample {} failed: {}\n", failure.id, failure.message));
        }
        out
    }
}
