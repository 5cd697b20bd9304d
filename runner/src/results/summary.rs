//! The run summary: where every number came from (provenance) and what the run measured (aggregates
//! over its samples). Written to `summary.json` when the run starts and again when it ends.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::record::{SampleRecord, SampleStatus};
use crate::derive::DerivationRecord;
use crate::engine::SessionRecord;
use crate::engine::inspect::GraphReport;
use crate::engine::{MarkerSource, ThinkMarkers};
use crate::gpu_monitor::RunGpu;
use crate::memory::PeakScope;
use crate::provenance::{HostInfo, RunnerInfo};
use crate::stats::{Distribution, bootstrap};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// The run is in progress, or was killed before it could say otherwise.
    Running,
    Complete,
    /// The run stopped early (too many consecutive failures); its finished samples are kept.
    Aborted,
    /// Ctrl-C or SIGTERM stopped the run after the samples in progress; its finished samples are kept and
    /// `--resume` continues it.
    Interrupted,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScenarioRecord {
    pub name: String,
    pub version: String,
    pub description: String,
    pub path: String,
    /// sha256 of the component file.
    pub hash: String,
    /// Examples the scenario puts in each prompt when the run names no count (its `default-few-shot`):
    /// what tells a 0-shot MMLU run, which chose 0, from a 0-shot ARC run, which did not. Absent in
    /// results written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_few_shot: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// "file" or "embedded".
    pub source: String,
    /// The file path, or the scenario's label for its embedded sample.
    pub label: String,
    /// sha256 of the dataset bytes.
    pub hash: String,
    /// Samples the dataset holds.
    pub total: usize,
    /// Samples this run selected, in run order.
    pub selected: usize,
    pub shuffle_seed: Option<u64>,
    pub max_samples: Option<usize>,
    pub selected_ids: Vec<String>,
    /// The subsets the run selected; empty for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<String>,
    /// The split few-shot examples came from, when it was not this dataset (MMLU's dev files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot_source: Option<FewShotSourceRecord>,
    /// What the scenario warned about while reading the data: flawed rows it read the way the reference
    /// harness does (MMLU-Pro's row whose `answer` and `answer_index` disagree), each naming its row.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

/// A few-shot split a run read for its examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FewShotSourceRecord {
    /// The path, as given or as found beside the data.
    pub label: String,
    /// sha256 of the file, or over a folder's files (as the dataset's own hash).
    pub hash: String,
    /// Examples it holds (of the selected subsets).
    pub total: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub dir: String,
    /// sha256 over the folder's files (names and contents).
    pub hash: String,
    /// What the engine reports about the model (precision, layers, vocabulary...).
    pub info: serde_json::Value,
    /// The precision measured from the ONNX graph (initializer types, quantized operators), not a label.
    #[serde(default)]
    pub graph: Option<GraphReport>,
    /// How runner derived the model from a float model folder (`--precision` on an fp32 or fp16 folder): the
    /// source, the options and the fidelity measured against the source; absent for models used as they are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub derivation: Option<DerivationRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuntimeRecord {
    pub onnxruntime_library: String,
    pub onnxruntime_version: String,
    pub execution_provider: String,
    /// Each session's intra-op threads (with `workers`, each worker's share).
    pub intra_threads: Option<usize>,
    /// Sessions that scored side by side (`--workers`); absent for one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workers: Option<usize>,
    /// How the session was built: provider options, graph optimisation, mode, and which provider each node ran on.
    #[serde(default)]
    pub session: Option<SessionRecord>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SettingsRecord {
    pub max_new_tokens: usize,
    pub stop: Vec<String>,
    /// 0 is greedy decoding. The sampling fields default to greedy for summaries written before they existed.
    #[serde(default)]
    pub temperature: f32,
    #[serde(default)]
    pub top_k: Option<usize>,
    #[serde(default)]
    pub top_p: Option<f32>,
    #[serde(default)]
    pub seed: u64,
    /// 1 is off.
    #[serde(default = "no_repetition_penalty")]
    pub repetition_penalty: f32,
    #[serde(default)]
    pub ignore_eos: bool,
    /// Samples generated together (`--batch-size`); 1 for summaries written before batches existed.
    #[serde(default = "one_sample_per_batch")]
    pub batch_size: usize,
    pub scenario_memory_bytes: usize,
    pub scenario_call_timeout_ms: u64,
    /// `--system-prompt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// `--no-chat-template`: chat prompts went to the model as plain text.
    #[serde(default)]
    pub no_chat_template: bool,
    /// The markers thinking was split at; absent when splitting was off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_markers: Option<ThinkMarkers>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think_markers_source: Option<MarkerSource>,
    /// Few-shot examples per prompt.
    #[serde(default)]
    pub few_shot: usize,
    /// How they were chosen: "first" (file order) or "seeded"; absent for zero-shot runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub few_shot_order: Option<String>,
    /// "generate" or "loglikelihood".
    #[serde(default = "generate_scoring")]
    pub scoring: String,
    /// `--scenario-arg` settings, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scenario_args: Vec<(String, String)>,
    /// Samples run through the whole pipeline before the measured ones and discarded (`--warmup`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup: usize,
    /// Passes over the selection (`--repeat`): quality metrics are over the first, timings over all.
    #[serde(default = "one_repetition", skip_serializing_if = "is_one")]
    pub repeat: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn one_repetition() -> usize {
    1
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn generate_scoring() -> String {
    "generate".to_string()
}

fn no_repetition_penalty() -> f32 {
    1.0
}

fn one_sample_per_batch() -> usize {
    1
}

impl SettingsRecord {
    /// One line a reader can compare between runs: "greedy, at most 256 new tokens" or
    /// "temperature 0.7, top-k 40, seed 3, at most 256 new tokens".
    pub fn describe_generation(&self) -> String {
        let mut parts = Vec::new();
        if self.temperature == 0.0 {
            parts.push("greedy".to_string());
        } else {
            parts.push(format!("temperature {}", self.temperature));
            parts.extend(self.top_k.map(|k| format!("top-k {k}")));
            parts.extend(self.top_p.map(|p| format!("top-p {p}")));
            parts.push(format!("seed {}", self.seed));
        }
        if self.repetition_penalty != 1.0 {
            parts.push(format!("repetition penalty {}", self.repetition_penalty));
        }
        parts.push(format!("at most {} new tokens", self.max_new_tokens));
        if self.ignore_eos {
            parts.push("ignoring EOS".to_string());
        }
        parts.join(", ")
    }
}

/// How a scenario declared a metric: its direction, whether it is 0/1, and whether its run figure is
/// the sum (counts) rather than the mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricSpec {
    pub higher_is_better: bool,
    pub binary: bool,
    pub sum: bool,
}

impl Default for MetricSpec {
    fn default() -> Self {
        MetricSpec { higher_is_better: true, binary: false, sum: false }
    }
}

/// The mean of a metric with its standard error and two 95% confidence intervals, and its sum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricSummary {
    pub mean: f64,
    /// The analytic 95% interval: the Wilson score interval for binary metrics, mean ± 1.96·`std_err`
    /// (normal approximation) otherwise; `ci95_method` says which.
    pub ci95_low: f64,
    pub ci95_high: f64,
    /// "wilson" or "normal" (summaries written before this field existed used the same rule).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ci95_method: String,
    /// Standard error of the mean: sample standard deviation / √count (0 for one sample).
    #[serde(default)]
    pub std_err: f64,
    /// Percentile bootstrap 95% interval of the mean (`stats::bootstrap`: 2000 resamples, fixed seed, so
    /// deterministic); makes no normality assumption. Absent in summaries written before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_ci95_low: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap_ci95_high: Option<f64>,
    pub count: usize,
    pub higher_is_better: bool,
    #[serde(default)]
    pub sum: f64,
    /// "mean" or "sum": which of the two is the run's figure, as the scenario declared.
    #[serde(default = "mean_aggregation")]
    pub aggregation: String,
    #[serde(default)]
    pub binary: bool,
}

fn mean_aggregation() -> String {
    "mean".to_string()
}

impl MetricSummary {
    pub fn of(values: &[f64], spec: MetricSpec) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let higher_is_better = spec.higher_is_better;
        let sum = values.iter().sum::<f64>();
        let mean = sum / n as f64;
        let binary = spec.binary && values.iter().all(|v| *v == 0.0 || *v == 1.0);
        let std_err = Distribution::of(values).map_or(0.0, |d| d.std) / (n as f64).sqrt();
        let (low, high, method) = if binary {
            let (low, high) = wilson_interval(mean, n as f64);
            (low, high, "wilson")
        } else {
            (mean - 1.96 * std_err, mean + 1.96 * std_err, "normal")
        };
        let bootstrap = bootstrap::mean_ci95(values);
        let aggregation = if spec.sum { "sum" } else { "mean" }.to_string();
        Some(Self {
            mean,
            ci95_low: low,
            ci95_high: high,
            ci95_method: method.to_string(),
            std_err,
            bootstrap_ci95_low: bootstrap.map(|(low, _)| low),
            bootstrap_ci95_high: bootstrap.map(|(_, high)| high),
            count: n,
            higher_is_better,
            sum,
            aggregation,
            binary,
        })
    }
}

/// The Wilson score interval: unlike mean ± 1.96·se it stays inside [0, 1] and is honest for small
/// samples and accuracies near 0 or 1, which is exactly where small models on short runs land.
fn wilson_interval(p: f64, n: f64) -> (f64, f64) {
    let z = 1.96f64;
    let denom = 1.0 + z * z / n;
    let centre = (p + z * z / (2.0 * n)) / denom;
    let half = z * ((p * (1.0 - p) / n + z * z / (4.0 * n * n)).sqrt()) / denom;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// Aggregates over a run's samples.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    pub samples: usize,
    pub succeeded: usize,
    pub failed: usize,
    /// Mean of each scenario metric over the samples that were scored.
    pub metrics: BTreeMap<String, MetricSummary>,
    pub e2e_ms: Option<Distribution>,
    pub ttft_ms: Option<Distribution>,
    /// Inter-token latencies of every decode step of every sample.
    pub itl_ms: Option<Distribution>,
    pub decode_tokens_per_s: Option<Distribution>,
    pub prefill_tokens_per_s: Option<Distribution>,
    /// Log-likelihood runs: tokens through the model (the context and every choice's continuation) per
    /// second of scoring, per sample. (Written even when absent: templates read it.)
    #[serde(default)]
    pub scored_tokens_per_s: Option<Distribution>,
    /// Samples per second of model time: each sample's share of its batch's time summed, so a batch counts
    /// once (written for log-likelihood runs only before generation runs had it).
    #[serde(default)]
    pub samples_per_s: Option<f64>,
    /// Generation runs: tokens generated per second of model time, every row of a batch together: what the
    /// machine delivers at this batch size (decode tokens/s is one stream's rate).
    #[serde(default)]
    pub output_tokens_per_s: Option<f64>,
    pub prompt_tokens: Option<Distribution>,
    pub output_tokens: Option<Distribution>,
    /// Time in the WebAssembly scenario (prompt + score) per sample.
    pub scenario_ms: Option<Distribution>,
    /// Scenario time as a share of generation time, over the whole run.
    pub scenario_overhead: Option<f64>,
    pub total_output_tokens: usize,
    /// Time choosing tokens from logits, per sample.
    #[serde(default)]
    pub sampling_ms: Option<Distribution>,
    /// Tokens inside thinking blocks and in the answer, per sample (reasoning models; absent otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_tokens: Option<Distribution>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer_tokens: Option<Distribution>,
    /// Samples whose output ended inside a thinking block.
    #[serde(default)]
    pub thinking_unclosed: usize,
    /// The run's peak resident memory: model loading included, and the largest sample peak.
    pub peak_rss_bytes: Option<u64>,
    /// Per-sample peak resident memory.
    #[serde(default)]
    pub sample_peak_rss_bytes: Option<Distribution>,
    /// Resident memory after prefill (when the first token streamed) and after generation, per sample.
    #[serde(default)]
    pub rss_after_prefill_bytes: Option<Distribution>,
    #[serde(default)]
    pub rss_after_generation_bytes: Option<Distribution>,
    /// Outlier and stability warnings, hyperfine-style.
    pub warnings: Vec<String>,
    /// Each metric per subset, for scenarios whose samples have subsets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subsets: BTreeMap<String, BTreeMap<String, MetricSummary>>,
    /// The scenario's own run-level figures (its `aggregate`), e.g. a macro-average over subjects.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub scenario_metrics: BTreeMap<String, f64>,
}

/// Each metric's summary over `records` (those that were scored).
fn summarise_metrics<'a>(
    records: impl Iterator<Item = &'a SampleRecord>,
    specs: &BTreeMap<String, MetricSpec>,
) -> BTreeMap<String, MetricSummary> {
    let mut metric_values: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    for r in records {
        for (name, value) in &r.metrics {
            metric_values.entry(name.clone()).or_default().push(*value);
        }
    }
    metric_values
        .into_iter()
        .filter_map(|(name, values)| {
            let spec = specs.get(&name).copied().unwrap_or_default();
            MetricSummary::of(&values, spec).map(|m| (name, m))
        })
        .collect()
}

impl Aggregates {
    /// `specs` tells, per metric name, how the scenario declared it. Quality (metrics, subsets) is over the
    /// first repetition only, so a sample counts once however often `--repeat` ran it; timings, tokens and
    /// memory are over every repetition.
    pub fn from_records(records: &[SampleRecord], specs: &BTreeMap<String, MetricSpec>) -> Self {
        let ok: Vec<&SampleRecord> =
            records.iter().filter(|r| r.status == SampleStatus::Ok && r.repetition == 0).collect();
        let ok_all = records.iter().filter(|r| r.status == SampleStatus::Ok).count();
        let generated: Vec<&SampleRecord> = records.iter().filter(|r| r.output_tokens.is_some()).collect();
        // Log-likelihood runs generate nothing; their samples still ran the model, and are timed.
        let scored: Vec<&SampleRecord> =
            records.iter().filter(|r| r.choices.is_some() && r.prompt_tokens.is_some()).collect();
        let collect =
            |f: &dyn Fn(&SampleRecord) -> Option<f64>| -> Vec<f64> { generated.iter().filter_map(|r| f(r)).collect() };
        let collect_ran = |f: &dyn Fn(&SampleRecord) -> Option<f64>| -> Vec<f64> {
            generated.iter().chain(&scored).filter_map(|r| f(r)).collect()
        };
        let scored_tokens_per_s: Vec<f64> = scored
            .iter()
            .filter(|r| r.timings.generate_ms > 0.0)
            .map(|r| {
                let choices: usize = r.choices.iter().flatten().map(|c| c.tokens as usize).sum();
                (r.prompt_tokens.unwrap_or(0) + choices) as f64 / (r.timings.generate_ms / 1e3)
            })
            .collect();
        let ModelThroughput { samples_per_s, output_tokens_per_s } = ModelThroughput::of(records);

        let metrics = summarise_metrics(ok.iter().copied(), specs);
        let mut subset_names: Vec<&str> = ok.iter().filter_map(|r| r.subset.as_deref()).collect();
        subset_names.sort_unstable();
        subset_names.dedup();
        let subsets = subset_names
            .into_iter()
            .map(|subset| {
                let in_subset = ok.iter().copied().filter(|r| r.subset.as_deref() == Some(subset));
                (subset.to_string(), summarise_metrics(in_subset, specs))
            })
            .collect();

        let e2e = collect_ran(&|r| Some(r.timings.e2e_ms));
        let ttft = collect(&|r| Some(r.timings.ttft_ms));
        let itl: Vec<f64> = generated.iter().flat_map(|r| r.timings.itl_ms.iter().copied()).collect();
        let decode = collect(&|r| r.timings.decode_tokens_per_s);
        let prefill = collect(&|r| r.timings.prefill_tokens_per_s);
        let prompt_tokens = collect_ran(&|r| r.prompt_tokens.map(|t| t as f64));
        let output_tokens = collect(&|r| r.output_tokens.map(|t| t as f64));
        let scenario = collect_ran(&|r| Some(r.timings.prompt_ms + r.timings.score_ms));
        let sampling = collect(&|r| Some(r.timings.sampling_ms));
        let thinking_tokens = collect(&|r| r.thinking_tokens.map(|t| t as f64));
        let answer_tokens = collect(&|r| r.answer_tokens.map(|t| t as f64));
        let bytes = |f: &dyn Fn(&SampleRecord) -> Option<u64>| -> Vec<f64> {
            records.iter().filter_map(|r| f(r).map(|b| b as f64)).collect()
        };
        let generate_total: f64 = generated.iter().chain(&scored).map(|r| r.timings.generate_ms).sum();
        let scenario_overhead = (generate_total > 0.0).then(|| scenario.iter().sum::<f64>() / generate_total);

        let warnings = [(&ttft, "TTFT"), (&itl, "Inter-token latency")]
            .into_iter()
            .filter_map(|(values, what)| Distribution::outlier_warning(values, what))
            .collect();

        Self {
            samples: records.len(),
            succeeded: ok_all,
            failed: records.len() - ok_all,
            metrics,
            e2e_ms: Distribution::of(&e2e),
            ttft_ms: Distribution::of(&ttft),
            itl_ms: Distribution::of(&itl),
            decode_tokens_per_s: Distribution::of(&decode),
            prefill_tokens_per_s: Distribution::of(&prefill),
            scored_tokens_per_s: Distribution::of(&scored_tokens_per_s),
            samples_per_s,
            output_tokens_per_s,
            prompt_tokens: Distribution::of(&prompt_tokens),
            output_tokens: Distribution::of(&output_tokens),
            scenario_ms: Distribution::of(&scenario),
            scenario_overhead,
            total_output_tokens: generated.iter().filter_map(|r| r.output_tokens).sum(),
            sampling_ms: Distribution::of(&sampling),
            thinking_tokens: Distribution::of(&thinking_tokens),
            answer_tokens: Distribution::of(&answer_tokens),
            thinking_unclosed: records.iter().filter(|r| r.thinking_unclosed).count(),
            peak_rss_bytes: records.iter().filter_map(|r| r.peak_rss_bytes).max(),
            sample_peak_rss_bytes: Distribution::of(&bytes(&|r| r.peak_rss_bytes)),
            rss_after_prefill_bytes: Distribution::of(&bytes(&|r| r.rss_after_prefill_bytes)),
            rss_after_generation_bytes: Distribution::of(&bytes(&|r| r.rss_after_generation_bytes)),
            warnings,
            subsets,
            scenario_metrics: BTreeMap::new(),
        }
    }
}

/// A run's throughput over the model's time: samples, and generated tokens, per second of it. A batch's rows
/// share one generation, so each contributes its share (`model_share_ms`) and the batch counts once.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ModelThroughput {
    pub samples_per_s: Option<f64>,
    /// Absent when nothing was generated (log-likelihood runs).
    pub output_tokens_per_s: Option<f64>,
}

impl ModelThroughput {
    /// Over the records that ran the model (generated or scored choices), every repetition.
    pub fn of(records: &[SampleRecord]) -> Self {
        let ran: Vec<&SampleRecord> =
            records.iter().filter(|r| r.output_tokens.is_some() || r.choices.is_some()).collect();
        let seconds: f64 = ran.iter().map(|r| r.timings.model_time_ms() / 1e3).sum();
        if seconds <= 0.0 {
            return Self::default();
        }
        let generated: Vec<usize> = ran.iter().filter_map(|r| r.output_tokens).collect();
        Self {
            samples_per_s: Some(ran.len() as f64 / seconds),
            output_tokens_per_s: (!generated.is_empty()).then(|| generated.iter().sum::<usize>() as f64 / seconds),
        }
    }
}

/// Everything `summary.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub status: RunStatus,
    /// Why the run stopped before its end (aborted or interrupted), when it did.
    pub abort_reason: Option<String>,
    pub runner: RunnerInfo,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub wall_seconds: f64,
    /// Seconds spent loading the scenario, the dataset and the model before the first sample.
    pub setup_seconds: f64,
    pub scenario: ScenarioRecord,
    pub dataset: DatasetRecord,
    pub model: ModelRecord,
    pub runtime: RuntimeRecord,
    pub settings: SettingsRecord,
    /// The LoRA adapter applied at run time, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<crate::lora::AdapterInfo>,
    pub host: HostInfo,
    /// sha256 over what defines the run (scenario, model, dataset selection, settings, runtime, adapter): a
    /// run is only resumed under the same fingerprint. Empty in summaries written before fingerprints.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub fingerprint: String,
    /// When the run was continued with `--resume` (`started_at` stays the first start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_at: Vec<String>,
    /// Load average (1 minute) when the run started and ended: a busy machine explains slow numbers.
    pub load_average_start: Option<f64>,
    pub load_average_end: Option<f64>,
    /// Resident memory around model loading, and what per-sample peaks cover.
    #[serde(default)]
    pub memory: MemoryRecord,
    /// The NVIDIA GPU over the run; absent without one (never zeros).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu: Option<RunGpu>,
    /// Share of the machine's CPU time that other processes used during the run (0 to 1): what this run
    /// competed with, measured rather than guessed from the load average (`provenance::CpuTimes`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub background_cpu: Option<f64>,
    /// An adapter run against its base run: overhead, size and accuracy delta (`runner exec --adapter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter_comparison: Option<crate::stats::overhead::AdapterComparison>,
    pub results: Aggregates,
    /// The run's effective configuration (experiment layers and flags applied), as the sweep planned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<serde_json::Value>,
    /// The run's name in its sweep.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_name: Option<String>,
}

/// How a run that ran to its end went, as its exit status and its sweep entry say it: every sample
/// succeeded, some failed (the others' results stand), or none succeeded (the run measured nothing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunVerdict {
    Passed,
    /// The run stopped early (`--max-consecutive-failures`); its finished samples are kept.
    Aborted {
        reason: String,
    },
    SomeSamplesFailed {
        failed: usize,
        samples: usize,
    },
    NoSampleSucceeded {
        samples: usize,
    },
    /// A signal stopped the run; the reason says how far it got and how to continue.
    Interrupted {
        reason: String,
    },
}

impl RunSummary {
    /// Whether the run's few-shot count differs from the one its scenario picks by itself, so that saying
    /// the count is part of saying what the run was. Results written before the scenario's default was
    /// recorded count as chosen when they used examples or their configuration named the count.
    pub fn few_shot_chosen(&self) -> bool {
        match self.scenario.default_few_shot {
            Some(default) => self.settings.few_shot != default,
            None => {
                self.settings.few_shot > 0
                    || self.config.as_ref().is_some_and(|config| config.get("few_shot").is_some())
            }
        }
    }

    pub fn verdict(&self) -> RunVerdict {
        let r = &self.results;
        if self.status == RunStatus::Interrupted {
            let reason = self.abort_reason.clone().unwrap_or_else(|| "stopped by a signal".into());
            RunVerdict::Interrupted { reason }
        } else if self.status == RunStatus::Aborted {
            let reason = self.abort_reason.clone().unwrap_or_else(|| "too many consecutive failures".into());
            RunVerdict::Aborted { reason }
        } else if r.failed > 0 && r.succeeded == 0 {
            RunVerdict::NoSampleSucceeded { samples: r.failed }
        } else if r.failed > 0 {
            RunVerdict::SomeSamplesFailed { failed: r.failed, samples: r.failed + r.succeeded }
        } else {
            RunVerdict::Passed
        }
    }
}

impl std::fmt::Display for RunVerdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunVerdict::Passed => write!(f, "every sample succeeded"),
            RunVerdict::Aborted { reason } => write!(f, "the run stopped early: {reason}"),
            RunVerdict::Interrupted { reason } => write!(f, "{reason}"),
            RunVerdict::SomeSamplesFailed { failed, samples } => {
                write!(f, "{failed} of {samples} samples failed; the other samples' results stand")
            }
            RunVerdict::NoSampleSucceeded { samples } => {
                write!(f, "no sample succeeded: all {samples} samples failed, so the run measured nothing")
            }
        }
    }
}

/// Resident memory of the process around model loading.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct MemoryRecord {
    /// Before the model loaded (scenario and dataset loaded).
    pub before_load_bytes: Option<u64>,
    /// Right after the model loaded.
    pub after_load_bytes: Option<u64>,
    /// The peak up to then: loading can briefly need more than the loaded model keeps.
    pub peak_after_load_bytes: Option<u64>,
    /// Whether each sample's peak was measured on its own or covers the run so far.
    pub peak_scope: Option<PeakScope>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::record::{SampleError, SampleTimings, Stage};

    fn record(index: usize, accuracy: Option<f64>, itl: Vec<f64>) -> SampleRecord {
        SampleRecord {
            status: if accuracy.is_some() { SampleStatus::Ok } else { SampleStatus::Failed },
            output: Some("x".into()),
            metrics: accuracy.map(|a| BTreeMap::from([("accuracy".to_string(), a)])).unwrap_or_default(),
            finish: Some("eos".into()),
            prompt_tokens: Some(10),
            output_tokens: Some(itl.len() + 1),
            timings: SampleTimings {
                ttft_ms: 20.0,
                e2e_ms: 100.0,
                generate_ms: 90.0,
                prompt_ms: 0.1,
                score_ms: 0.1,
                decode_tokens_per_s: Some(100.0),
                itl_ms: itl,
                ..Default::default()
            },
            peak_rss_bytes: Some(1000 + index as u64),
            error: accuracy.is_none().then(|| SampleError { stage: Stage::Score, message: "trap".into() }),
            ..SampleRecord::begin(index, format!("s{index}"), None, "1".into())
        }
    }

    #[test]
    fn aggregates_metrics_over_scored_samples_only() {
        let records =
            [record(0, Some(1.0), vec![10.0; 3]), record(1, Some(0.0), vec![10.0; 2]), record(2, None, vec![])];
        let spec = MetricSpec { higher_is_better: true, binary: true, sum: false };
        let agg = Aggregates::from_records(&records, &BTreeMap::from([("accuracy".into(), spec)]));
        assert_eq!((agg.samples, agg.succeeded, agg.failed), (3, 2, 1));
        let acc = &agg.metrics["accuracy"];
        assert_eq!((acc.mean, acc.count), (0.5, 2));
        assert!(acc.ci95_low > 0.0 && acc.ci95_high < 1.0 && acc.ci95_low < 0.5 && acc.ci95_high > 0.5);
        assert_eq!(agg.itl_ms.as_ref().unwrap().count, 5);
        assert_eq!(agg.total_output_tokens, 4 + 3 + 1);
        assert_eq!(agg.peak_rss_bytes, Some(1002));
        let overhead = agg.scenario_overhead.unwrap();
        assert!((overhead - 0.6 / 270.0).abs() < 1e-12);
    }

    #[test]
    fn throughput_counts_a_batchs_time_once() {
        // Two rows that shared a 90 ms batch (4 and 3 tokens), and one alone from before runner kept its share.
        let mut batched = [record(0, Some(1.0), vec![10.0; 3]), record(1, Some(0.0), vec![10.0; 2])];
        batched.iter_mut().for_each(|r| r.timings.model_share_ms = Some(45.0));
        let records = [batched[0].clone(), batched[1].clone(), record(2, Some(1.0), vec![])];
        let t = ModelThroughput::of(&records);
        assert_eq!(t.samples_per_s, Some(3.0 / 0.18));
        assert_eq!(t.output_tokens_per_s, Some(8.0 / 0.18));
        let agg = Aggregates::from_records(&records, &BTreeMap::new());
        assert_eq!((agg.samples_per_s, agg.output_tokens_per_s), (t.samples_per_s, t.output_tokens_per_s));
        // A log-likelihood sample's generate time is already its share, and it generates no tokens.
        let mut scored = record(0, Some(1.0), vec![]);
        (scored.output_tokens, scored.choices) = (None, Some(Vec::new()));
        let t = ModelThroughput::of(&[scored.clone(), scored]);
        assert_eq!((t.samples_per_s, t.output_tokens_per_s), (Some(2.0 / 0.18), None));
        assert_eq!(ModelThroughput::of(&[]), ModelThroughput::default());
    }

    #[test]
    fn quality_counts_the_first_repetition_and_timings_every_one() {
        let mut second = record(0, Some(0.0), vec![10.0; 2]);
        second.repetition = 1;
        let records = [record(0, Some(1.0), vec![10.0; 3]), second];
        let agg = Aggregates::from_records(&records, &BTreeMap::new());
        assert_eq!((agg.samples, agg.succeeded, agg.failed), (2, 2, 0));
        assert_eq!((agg.metrics["accuracy"].mean, agg.metrics["accuracy"].count), (1.0, 1));
        assert_eq!(agg.e2e_ms.as_ref().unwrap().count, 2);
        assert_eq!(agg.itl_ms.as_ref().unwrap().count, 5);
    }

    #[test]
    fn generation_settings_read_as_one_line() {
        let mut settings = SettingsRecord {
            max_new_tokens: 256,
            stop: Vec::new(),
            temperature: 0.0,
            top_k: None,
            top_p: None,
            seed: 0,
            repetition_penalty: 1.0,
            ignore_eos: false,
            batch_size: 1,
            scenario_memory_bytes: 0,
            scenario_call_timeout_ms: 0,
            system_prompt: None,
            no_chat_template: false,
            think_markers: None,
            think_markers_source: None,
            few_shot: 0,
            few_shot_order: None,
            scoring: "generate".into(),
            scenario_args: Vec::new(),
            warmup: 0,
            repeat: 1,
        };
        assert_eq!(settings.describe_generation(), "greedy, at most 256 new tokens");
        settings.temperature = 0.7;
        settings.top_k = Some(40);
        settings.seed = 3;
        settings.repetition_penalty = 1.1;
        settings.ignore_eos = true;
        assert_eq!(
            settings.describe_generation(),
            "temperature 0.7, top-k 40, seed 3, repetition penalty 1.1, at most 256 new tokens, ignoring EOS"
        );
    }

    #[test]
    fn accuracy_has_standard_error_and_a_bootstrap_interval() {
        let binary = MetricSpec { higher_is_better: true, binary: true, sum: false };
        let values: Vec<f64> = (0..50).map(|i| if i % 5 < 3 { 1.0 } else { 0.0 }).collect();
        let acc = MetricSummary::of(&values, binary).unwrap();
        assert_eq!(acc.ci95_method, "wilson");
        // sqrt(0.6 · 0.4 · 50/49 / 50): the sample standard deviation over √n.
        assert!((acc.std_err - (0.24f64 / 49.0).sqrt()).abs() < 1e-12, "{acc:?}");
        let (low, high) = (acc.bootstrap_ci95_low.unwrap(), acc.bootstrap_ci95_high.unwrap());
        assert!(low < 0.6 && high > 0.6 && (high - low - 2.0 * 1.96 * acc.std_err).abs() < 0.06, "{acc:?}");
        assert_eq!(MetricSummary::of(&values, binary).unwrap(), acc, "the bootstrap is seeded");

        let continuous = MetricSummary::of(&[0.2, 0.4, 0.9], MetricSpec::default()).unwrap();
        assert_eq!(continuous.ci95_method, "normal");
        assert!((continuous.ci95_high - continuous.mean - 1.96 * continuous.std_err).abs() < 1e-12);
    }

    #[test]
    fn wilson_interval_stays_in_bounds() {
        let binary = MetricSpec { higher_is_better: true, binary: true, sum: false };
        let all_right = MetricSummary::of(&[1.0; 8], binary).unwrap();
        assert_eq!(all_right.ci95_high, 1.0);
        assert!(all_right.ci95_low > 0.6 && all_right.ci95_low < 0.7, "{all_right:?}");
        let none_right = MetricSummary::of(&[0.0; 8], binary).unwrap();
        assert_eq!(none_right.ci95_low, 0.0);
    }
}
