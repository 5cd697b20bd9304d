//! What a benchmark measured, as written to `--json`: provenance, then per configuration its raw
//! repetitions, their summary statistics and warnings. Field names are a stable schema (`runner.bench/1`);
//! a test snapshots the keys.

use serde::Serialize;

use super::measure::Repetition;
use super::plan::Configuration;
use crate::engine::OrtRuntime;
use crate::provenance::{HostInfo, RunnerInfo};
use crate::stats::Distribution;

pub const SCHEMA: &str = "runner.bench/1";

/// Relative standard deviation above which a configuration's throughput is flagged as unstable.
pub const UNSTABLE_RELATIVE_SD: f64 = 0.10;
/// Background load (1-minute average per logical core) above which the machine counts as busy.
pub const BUSY_LOAD_PER_CORE: f64 = 0.5;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    pub schema: &'static str,
    pub runner: RunnerInfo,
    pub started_at: String,
    pub finished_at: String,
    pub host: HostInfo,
    pub onnxruntime: Option<OrtRuntime>,
    /// 1-minute load average before the first model loaded: the machine's background load.
    pub load_average_start: Option<f64>,
    /// After the last run; it includes this benchmark's own threads.
    pub load_average_end: Option<f64>,
    pub settings: BenchSettings,
    pub results: Vec<ConfigurationResult>,
    /// Every warning of the run, configuration warnings included.
    pub warnings: Vec<String>,
}

/// How every configuration was run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchSettings {
    pub repetitions: usize,
    pub warmup: usize,
    /// Repetitions ran round-robin over the configurations (`--interleave`).
    pub interleave: bool,
    /// `--no-spin`: false; null is ONNX Runtime's default (idle threads spin).
    pub intra_op_spinning: Option<bool>,
    /// Always greedy with EOS ignored: exactly N tokens per run.
    pub sampling: &'static str,
    pub ignore_eos: bool,
    /// Seed of the synthetic prompt (see `bench::prompt`).
    pub prompt_seed: u64,
}

/// The model a configuration ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelFacts {
    pub name: String,
    pub dir: String,
    /// The ONNX graph and its external data on disk.
    pub size_bytes: u64,
    /// Logical weights counted from the graph (`GraphReport::weights`); null when it could not be read.
    pub params: Option<u64>,
    /// The dominant weight format read from the graph (`GraphReport::weight_precision`, what `runner exec`
    /// records); the folder's own label when the graph could not be read (the report then warns).
    pub precision: String,
    /// The precision of the folder runner derived this model from (its `derived.json`), e.g. `fp32`; null for
    /// a model that was not derived.
    pub derived_from: Option<String>,
    pub context_length: usize,
    /// Ordinary (non-special) token ids the synthetic prompt is drawn from.
    pub prompt_pool_size: usize,
}

impl ModelFacts {
    /// The precision as tables show it: "int4", or "int4 from fp32" for a derived model.
    pub fn precision_label(&self) -> String {
        crate::derive::DerivationRecord::precision_label(&self.precision, self.derived_from.as_deref())
    }
}

/// Summary statistics over the repetitions of one configuration.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigurationSummary {
    pub prefill_tokens_per_s: Option<Distribution>,
    pub decode_tokens_per_s: Option<Distribution>,
    pub ttft_ms: Option<Distribution>,
    /// Every decode step of every repetition, pooled.
    pub itl_ms: Option<Distribution>,
    /// Percent of decode time spent outside ONNX Runtime's `run`, per repetition.
    pub harness_overhead_pct: Option<Distribution>,
    pub e2e_ms: Option<Distribution>,
    pub peak_rss_bytes: Option<Distribution>,
}

impl ConfigurationSummary {
    pub fn of(repetitions: &[Repetition]) -> Self {
        let collect =
            |f: &dyn Fn(&Repetition) -> Option<f64>| -> Vec<f64> { repetitions.iter().filter_map(f).collect() };
        let itl: Vec<f64> = repetitions.iter().flat_map(|r| r.itl_ms.iter().copied()).collect();
        ConfigurationSummary {
            prefill_tokens_per_s: Distribution::of(&collect(&|r| Some(r.prefill_tokens_per_s))),
            decode_tokens_per_s: Distribution::of(&collect(&|r| r.decode_tokens_per_s)),
            ttft_ms: Distribution::of(&collect(&|r| Some(r.ttft_ms))),
            itl_ms: Distribution::of(&itl),
            harness_overhead_pct: Distribution::of(&collect(&|r| r.harness_overhead_pct)),
            e2e_ms: Distribution::of(&collect(&|r| Some(r.e2e_ms))),
            peak_rss_bytes: Distribution::of(&collect(&|r| r.peak_rss_bytes.map(|b| b as f64))),
        }
    }
}

/// One configuration of the sweep and what it measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfigurationResult {
    /// `pp512+tg128`.
    pub test: String,
    pub model: ModelFacts,
    pub ep: String,
    /// ONNX Runtime intra-op threads; null is ONNX Runtime's default (one per physical core).
    pub threads: Option<usize>,
    pub batch_size: usize,
    pub prompt_tokens: usize,
    pub gen_tokens: usize,
    /// Loading the model (session creation included) for this configuration's engine.
    pub load_ms: f64,
    /// Peak resident memory while the model loaded (with `--interleave`, models loaded before it stay resident).
    pub load_peak_rss_bytes: Option<u64>,
    pub load_average_start: Option<f64>,
    pub load_average_end: Option<f64>,
    pub summary: ConfigurationSummary,
    pub repetitions: Vec<Repetition>,
    pub warnings: Vec<String>,
}

impl ConfigurationResult {
    pub fn new(
        configuration: &Configuration,
        model: ModelFacts,
        load: (f64, Option<u64>),
        load_average: (Option<f64>, Option<f64>),
        repetitions: Vec<Repetition>,
    ) -> Self {
        let summary = ConfigurationSummary::of(&repetitions);
        let test = configuration.test_name();
        let threads = configuration.threads.map_or_else(|| "default".to_string(), |t| t.to_string());
        let label = format!(
            "{} [{}] {test} on {} with {threads} threads at batch {}",
            model.name,
            model.precision_label(),
            configuration.ep,
            configuration.batch_size
        );
        let warnings = stability_warnings(&label, &repetitions, &summary);
        ConfigurationResult {
            test,
            model,
            ep: configuration.ep.to_string(),
            threads: configuration.threads,
            batch_size: configuration.batch_size,
            prompt_tokens: configuration.prompt_tokens,
            gen_tokens: configuration.gen_tokens,
            load_ms: load.0,
            load_peak_rss_bytes: load.1,
            load_average_start: load_average.0,
            load_average_end: load_average.1,
            summary,
            repetitions,
            warnings,
        }
    }
}

/// hyperfine-style warnings: outlying repetitions, and throughput whose relative standard deviation is
/// above [`UNSTABLE_RELATIVE_SD`].
fn stability_warnings(label: &str, repetitions: &[Repetition], summary: &ConfigurationSummary) -> Vec<String> {
    let mut warnings = Vec::new();
    let series: [(&str, Vec<f64>, &Option<Distribution>); 2] = [
        (
            "prefill tokens/s",
            repetitions.iter().map(|r| r.prefill_tokens_per_s).collect(),
            &summary.prefill_tokens_per_s,
        ),
        (
            "decode tokens/s",
            repetitions.iter().filter_map(|r| r.decode_tokens_per_s).collect(),
            &summary.decode_tokens_per_s,
        ),
    ];
    for (what, values, distribution) in series {
        if let Some(warning) = Distribution::outlier_warning(&values, &format!("{label} {what}")) {
            warnings.push(warning);
        }
        if let Some(d) = distribution
            && d.count > 1
            && d.mean > 0.0
            && d.std / d.mean > UNSTABLE_RELATIVE_SD
        {
            warnings.push(format!(
                "{label} {what}: the standard deviation is {:.0}% of the mean; the machine was probably busy, so \
                 rerun with more repetitions (-r) on a quiet machine",
                100.0 * d.std / d.mean
            ));
        }
    }
    warnings
}

/// A warning when the background load says other work shared the CPU with the benchmark.
pub fn load_warning(load_average_start: Option<f64>, load_average_end: Option<f64>, cores: usize) -> Option<String> {
    let cores = cores.max(1) as f64;
    if let Some(start) = load_average_start
        && start > BUSY_LOAD_PER_CORE * cores
    {
        return Some(format!(
            "the machine was busy before the benchmark started (load average {start:.2} on {cores} logical cores): \
             other processes compete for the CPU, so the numbers understate what this hardware does"
        ));
    }
    // The end value counts the benchmark's own threads; only more runnable work than cores says someone else ran.
    if let Some(end) = load_average_end
        && end > cores + BUSY_LOAD_PER_CORE
    {
        return Some(format!(
            "the machine was oversubscribed during the benchmark (load average {end:.2} on {cores} logical cores at \
             the end): other processes competed for the CPU"
        ));
    }
    None
}
