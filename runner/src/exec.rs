//! `runner exec`: one benchmark run. Loads the scenario component and the model, selects the dataset's
//! samples, and for each one asks the scenario for a prompt, generates with the engine, asks the scenario
//! for a score, and records the sample at once. Aggregates and provenance go to `summary.json` at the
//! start (status "running") and at the end, so a run that dies keeps everything it finished.
//!
//! Around each sample it measures what the engine cannot see: resident memory at each stage, the GPU
//! (NVML) over each generation, and, with `--trace`, the instants that place the engine's timings and the
//! scenario calls on one timeline. It applies the run's prompt options before generation and splits a
//! reasoning model's thinking from the answer the scenario scores.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};

use crate::datasets::DataSource;
use crate::engine::{
    Engine, EngineOptions, Generation, GenerationSettings, MarkerSource, PromptOptions, ProviderOptions, Sampling,
    ThinkMarkers, ThinkSplit, split_reasoning,
};
use crate::gpu_monitor::{GpuMark, GpuMonitor};
use crate::hub::{Hub, HubRef, RepoType};
use crate::memory;
use crate::paths;
use crate::prepare::{self, ReadyScenario, ScenarioChoices, ScoringMode};
use crate::prompt::Prompt;
use crate::provenance::{self, HostInfo, RunnerInfo};
use crate::results::MetricSpec;
use crate::results::summary::{
    DatasetRecord, MemoryRecord, ModelRecord, RuntimeRecord, ScenarioRecord, SettingsRecord,
};
use crate::results::{
    Aggregates, ChoiceRecord, RunStatus, RunSummary, RunWriter, SampleError, SampleRecord, SampleStatus, SampleTimings,
    Stage,
};
use crate::rng::SplitMix64;
use crate::scenario::fewshot::FewShot;
use crate::scenario::{ChoiceLikelihood, ComponentCache, ModelOutput, Sample, Scenario, ScenarioLimits, ScoredSample};
use crate::trace::{OrtProfile, TraceRecorder, TraceSummary};

/// Everything `runner exec` can be told.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    pub scenario: PathBuf,
    /// A model folder or a Hub reference (`hf:OWNER/REPO[/SUBFOLDER][@REVISION]`); the default model when
    /// absent.
    pub model: Option<PathBuf>,
    /// The dataset; the scenario's embedded sample (or its default source) when absent.
    pub data: Option<DataSource>,
    /// The split of a Hugging Face dataset; the scenario's default-source split when absent.
    pub split: Option<String>,
    /// Subsets, few-shot count, scoring mode, task file and scenario arguments.
    pub choices: ScenarioChoices,
    /// Use (and fill) the precompiled-component cache.
    pub scenario_cache: bool,
    pub max_samples: Option<usize>,
    pub shuffle_seed: Option<u64>,
    /// Overrides the scenario's default.
    pub max_new_tokens: Option<usize>,
    /// How tokens are chosen; greedy by default.
    pub sampling: Sampling,
    /// Seeds every sample's generation afresh.
    pub seed: u64,
    /// 1 is off.
    pub repetition_penalty: f32,
    /// Generate `max_new_tokens` whatever EOS tokens come (stop strings still stop).
    pub ignore_eos: bool,
    /// Samples generated together as one batch (1: one at a time); results stay one line per sample.
    pub batch_size: usize,
    /// The results folder; `results/<time>-<scenario>-<model>` when absent.
    pub out: Option<PathBuf>,
    pub ort_lib: Option<PathBuf>,
    pub threads: Option<usize>,
    /// Execution provider and session settings.
    pub providers: ProviderOptions,
    pub limits: ScenarioLimits,
    /// Stop the run after this many samples in a row failed: something systematic is wrong.
    pub max_consecutive_failures: usize,
    pub progress: bool,
    /// A system prompt and plain-text prompts (`--system-prompt`, `--no-chat-template`).
    pub prompt: PromptOptions,
    /// How thinking is split from answers (`--think-markers`).
    pub think: ThinkSplit,
    /// Write a Chrome trace of the run, with ONNX Runtime's per-operator profile, to this file.
    pub trace: Option<PathBuf>,
    /// How often the GPU is sampled on GPU runs; `None` turns GPU monitoring off.
    pub gpu_sample_interval: Option<Duration>,
    /// The CUDA device id the execution provider runs on, for GPU monitoring.
    pub gpu_device: u32,
    /// A LoRA adapter file applied to every sample.
    pub adapter: Option<PathBuf>,
}

/// A finished (or aborted) run.
pub struct RunOutcome {
    pub dir: PathBuf,
    pub summary: RunSummary,
    /// What `--trace` wrote.
    pub trace: Option<(PathBuf, TraceSummary)>,
}

/// The samples a run uses, in run order: shuffled with the seed when one is given (the same seed picks
/// the same samples on every machine), then cut to `max_samples`.
pub fn select_samples(count: usize, shuffle_seed: Option<u64>, max_samples: Option<usize>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..count).collect();
    if let Some(seed) = shuffle_seed {
        // The portable generator: the selection must not change when a dependency's algorithm does.
        let mut rng = SplitMix64::new(seed);
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order.truncate(max_samples.unwrap_or(count));
    order
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `results/20261122T164501Z-gsm8k-SmolLM2-135M-Instruct-int4`: sortable, and says what ran.
fn default_out_dir(started: SystemTime, scenario: &str, model_dir: &Path) -> PathBuf {
    let stamp: String = timestamp(started).chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    let model: Vec<String> = model_dir
        .components()
        .rev()
        .take(2)
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let name = format!("{stamp}-{scenario}-{}", model.join("-"));
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || "-_.".contains(c) { c } else { '_' }).collect();
    PathBuf::from("results").join(safe)
}

fn sample_timings(prompt_time: Duration, g: &Generation) -> SampleTimings {
    let t = &g.timings;
    let decode_total: Duration = t.decode_steps.iter().sum();
    SampleTimings {
        prompt_ms: ms(prompt_time),
        render_ms: ms(t.render),
        tokenize_ms: ms(t.tokenize),
        prefill_ms: ms(t.prefill),
        ttft_ms: ms(t.ttft),
        itl_ms: t.decode_steps.iter().map(|d| ms(*d)).collect(),
        sampling_ms: t.sampled.iter().map(|s| ms(s.sampling)).sum(),
        detokenize_ms: ms(t.detokenize),
        score_ms: 0.0,
        generate_ms: ms(t.e2e),
        e2e_ms: 0.0,
        decode_tokens_per_s: (!t.decode_steps.is_empty() && !decode_total.is_zero())
            .then(|| t.decode_steps.len() as f64 / decode_total.as_secs_f64()),
        prefill_tokens_per_s: (!t.prefill.is_zero()).then(|| g.prompt_tokens as f64 / t.prefill.as_secs_f64()),
    }
}

/// What a run measures around its samples, beyond the engine's own timings.
struct SampleProbes<'a> {
    prompt: &'a PromptOptions,
    /// The markers thinking is split at, and where they came from; `None` when splitting is off.
    think: Option<&'a (ThinkMarkers, MarkerSource)>,
    trace: Option<&'a mut TraceRecorder>,
    gpu: Option<&'a mut GpuMonitor>,
    /// Set by the sample: whether its peak memory is its own or the run's so far.
    peak_scope: Option<memory::PeakScope>,
}

/// The log-likelihood of each choice after the prompt (as the model sees it, chat template applied),
/// for log-likelihood scoring; also returns the rendered prompt.
fn choice_likelihoods(
    engine: &mut Engine,
    prompt: &Prompt,
    choices: &[String],
) -> Result<(String, Vec<ChoiceLikelihood>)> {
    let context = engine.render(prompt)?;
    let scores = engine.continuation_logprobs(&context, choices)?;
    let likelihoods = scores
        .into_iter()
        .map(|s| ChoiceLikelihood {
            logprob: s.logprob_sum,
            tokens: u32::try_from(s.token_count).unwrap_or(u32::MAX),
            greedy: s.greedy_match,
        })
        .collect();
    Ok((context, likelihoods))
}

/// A sample whose prompt is built, waiting for the model.
struct PromptedSample {
    record: SampleRecord,
    started: Instant,
    prompt_time: Duration,
    /// The prompt as the model gets it (system prompt and plain-text options applied).
    model_prompt: Prompt,
    choices: Vec<String>,
}

/// What asking for a sample's prompt gave: the sample waiting for the model, or its finished record when the
/// prompt failed (the failure recorded).
enum Prompted {
    Ready(PromptedSample),
    Failed(SampleRecord),
}

/// Starts a sample's record and asks the scenario for its prompt.
fn prompt_sample(
    index: usize,
    sample: &Sample,
    examples: &[Sample],
    ready: &mut ReadyScenario,
    probes: &mut SampleProbes,
) -> Prompted {
    let loglikelihood = ready.scoring == ScoringMode::Loglikelihood;
    let started = Instant::now();
    let mut record = SampleRecord {
        index,
        id: sample.id.clone(),
        subset: sample.subset.clone(),
        status: SampleStatus::Failed,
        reference: sample.reference.clone(),
        prompt: None,
        prompt_text: None,
        output: None,
        thinking: None,
        thinking_tokens: None,
        answer_tokens: None,
        thinking_unclosed: false,
        choices: None,
        extracted: None,
        metrics: BTreeMap::new(),
        finish: None,
        prompt_tokens: None,
        output_tokens: None,
        timings: SampleTimings::default(),
        peak_rss_bytes: None,
        rss_after_prefill_bytes: None,
        rss_after_generation_bytes: None,
        gpu: None,
        error: None,
    };
    let prompt_started = Instant::now();
    let request = ready.scenario.build_prompt(sample, examples, loglikelihood);
    let prompt_ended = Instant::now();
    let prompt_time = prompt_ended - prompt_started;
    record.timings.prompt_ms = ms(prompt_time);
    if let Some(trace) = probes.trace.as_deref_mut() {
        trace.span("build-prompt", "scenario", prompt_started, prompt_ended, serde_json::Value::Null);
    }
    match request {
        Err(e) => {
            fail(&mut record, Stage::Prompt, e.to_string());
            Prompted::Failed(finish(record, started, probes))
        }
        Ok(request) => {
            let model_prompt = probes.prompt.apply(request.prompt.clone());
            record.prompt = Some(request.prompt);
            Prompted::Ready(PromptedSample { record, started, prompt_time, model_prompt, choices: request.choices })
        }
    }
}

fn fail(record: &mut SampleRecord, stage: Stage, message: String) {
    record.error = Some(SampleError { stage, message });
}

/// Runs one sample through prompt, generation (or choice log-likelihoods) and scoring. Every failure is
/// recorded against the stage where it happened; nothing here ends the run.
fn run_sample(
    index: usize,
    sample: &Sample,
    examples: &[Sample],
    ready: &mut ReadyScenario,
    engine: &mut Engine,
    settings: &GenerationSettings,
    probes: &mut SampleProbes,
) -> SampleRecord {
    probes.peak_scope = Some(memory::reset_peak());
    let mut prompted = match prompt_sample(index, sample, examples, ready, probes) {
        Prompted::Ready(prompted) => prompted,
        Prompted::Failed(finished) => return finished,
    };
    let prompt_time = prompted.prompt_time;
    let record = &mut prompted.record;
    let output = if ready.scoring == ScoringMode::Loglikelihood {
        let generate_started = Instant::now();
        let likelihoods = choice_likelihoods(engine, &prompted.model_prompt, &prompted.choices);
        record.timings.generate_ms = ms(generate_started.elapsed());
        match likelihoods {
            Err(e) => Err(format!("{e:#}")),
            Ok((context, choices)) => {
                record.prompt_text = Some(context);
                record.choices = Some(
                    std::mem::take(&mut prompted.choices)
                        .into_iter()
                        .zip(&choices)
                        .map(|(text, c)| ChoiceRecord { text, logprob: c.logprob, tokens: c.tokens, greedy: c.greedy })
                        .collect(),
                );
                Ok(ModelOutput { text: String::new(), choices })
            }
        }
    } else {
        let gpu_mark = probes.gpu.as_deref().map(GpuMonitor::mark);
        // The first streamed text comes right after prefill and the first token: the engine's loop is left
        // alone, and this is the closest point outside it.
        let mut after_prefill: Option<(Instant, Option<u64>)> = None;
        let generation_started = Instant::now();
        let generation = engine.generate(&prompted.model_prompt, settings, &mut |_| {
            if after_prefill.is_none() {
                after_prefill = Some((Instant::now(), memory::current_rss_bytes()));
            }
        });
        record.rss_after_prefill_bytes = after_prefill.and_then(|(_, rss)| rss);
        if let (Some(trace), Some((at, rss))) = (probes.trace.as_deref_mut(), after_prefill) {
            trace.memory(at, "after prefill", rss);
        }
        generation
            .map_err(|e| format!("{e:#}"))
            .map(|g| record_generation(record, g, prompt_time, generation_started, gpu_mark, engine, probes))
    };
    score_sample(prompted, sample, output, &mut ready.scenario, probes)
}

/// Runs samples as one batch of generations (log-likelihood runs go one at a time: they do not generate).
/// A batch whose generation fails is retried one sample at a time, so the error lands on its sample. The
/// samples of a batch share its prefill, decode steps, memory peak and GPU readings.
fn run_batch(
    samples: &[(usize, &Sample, Vec<Sample>)],
    ready: &mut ReadyScenario,
    engine: &mut Engine,
    settings: &GenerationSettings,
    probes: &mut SampleProbes,
) -> Vec<SampleRecord> {
    if samples.len() == 1 || ready.scoring == ScoringMode::Loglikelihood {
        return samples
            .iter()
            .map(|(index, sample, examples)| run_sample(*index, sample, examples, ready, engine, settings, probes))
            .collect();
    }
    probes.peak_scope = Some(memory::reset_peak());
    let mut finished: Vec<SampleRecord> = Vec::new();
    let mut waiting: Vec<(PromptedSample, &Sample)> = Vec::new();
    for (index, sample, examples) in samples {
        match prompt_sample(*index, sample, examples, ready, probes) {
            Prompted::Ready(prompted) => waiting.push((prompted, sample)),
            Prompted::Failed(record) => finished.push(record),
        }
    }
    let prompts: Vec<Prompt> = waiting.iter().map(|(p, _)| p.model_prompt.clone()).collect();
    let gpu_mark = probes.gpu.as_deref().map(GpuMonitor::mark);
    let generation_started = Instant::now();
    let generations: Vec<Result<Generation, String>> = match engine.generate_batch(&prompts, settings) {
        Ok(generations) => generations.into_iter().map(Ok).collect(),
        Err(_) => {
            prompts.iter().map(|p| engine.generate(p, settings, &mut |_| {}).map_err(|e| format!("{e:#}"))).collect()
        }
    };
    for ((mut prompted, sample), generation) in waiting.into_iter().zip(generations) {
        let output = generation.map(|g| {
            let prompt_time = prompted.prompt_time;
            record_generation(&mut prompted.record, g, prompt_time, generation_started, gpu_mark, engine, probes)
        });
        finished.push(score_sample(prompted, sample, output, &mut ready.scenario, probes));
    }
    finished.sort_by_key(|r| r.index);
    finished
}

/// Records a generation in the sample's record (timings, tokens, trace, GPU, the reasoning split) and
/// returns what the scenario scores: the answer after any thinking.
fn record_generation(
    record: &mut SampleRecord,
    g: Generation,
    prompt_time: Duration,
    generation_started: Instant,
    gpu_mark: Option<GpuMark>,
    engine: &Engine,
    probes: &mut SampleProbes,
) -> ModelOutput {
    let generation_ended = Instant::now();
    record.rss_after_generation_bytes = memory::current_rss_bytes();
    if let Some(trace) = probes.trace.as_deref_mut() {
        let args = serde_json::json!({
            "sample": record.index, "id": record.id, "prompt_tokens": g.prompt_tokens,
            "output_tokens": g.output_tokens, "finish": g.finish, "batch_size": g.timings.batch_size,
        });
        trace.generation(generation_started, &g.timings, args);
        trace.memory(generation_ended, "after generation", record.rss_after_generation_bytes);
    }
    if let (Some(gpu), Some(mark)) = (probes.gpu.as_deref_mut(), gpu_mark) {
        record.gpu = gpu.generation(mark, g.output_tokens);
    }
    record.timings = sample_timings(prompt_time, &g);
    record.prompt_tokens = Some(g.prompt_tokens);
    record.output_tokens = Some(g.output_tokens);
    record.finish = serde_json::to_value(g.finish).ok().and_then(|v| v.as_str().map(String::from));
    let answer = match probes.think {
        None => g.output,
        Some((markers, source)) => {
            let split = split_reasoning(&g.output, markers, markers.opened_by(&g.prompt_text));
            if split.thinking.is_some() || *source != MarkerSource::Default {
                let thinking_tokens = split.thinking_tokens(engine.tokenizer()).min(g.output_tokens);
                record.thinking_tokens = Some(thinking_tokens);
                record.answer_tokens = Some(g.output_tokens - thinking_tokens);
            }
            record.thinking = split.thinking;
            record.thinking_unclosed = split.unclosed;
            split.answer
        }
    };
    record.prompt_text = Some(g.prompt_text);
    ModelOutput { text: answer, choices: Vec::new() }
}

/// Scores the model's output (or records why there is none) and closes the sample's record.
fn score_sample(
    prompted: PromptedSample,
    sample: &Sample,
    output: Result<ModelOutput, String>,
    scenario: &mut Scenario,
    probes: &mut SampleProbes,
) -> SampleRecord {
    let PromptedSample { mut record, started, .. } = prompted;
    let output = match output {
        Ok(output) => output,
        Err(message) => {
            fail(&mut record, Stage::Generate, message);
            return finish(record, started, probes);
        }
    };
    let score_started = Instant::now();
    let score = scenario.score(sample, &output);
    let score_ended = Instant::now();
    record.timings.score_ms = ms(score_ended - score_started);
    if let Some(trace) = probes.trace.as_deref_mut() {
        trace.span("score", "scenario", score_started, score_ended, serde_json::Value::Null);
    }
    if record.choices.is_none() {
        record.output = Some(output.text);
    }
    match score {
        Err(e) => fail(&mut record, Stage::Score, e.to_string()),
        Ok(score) => {
            record.status = SampleStatus::Ok;
            record.extracted = score.extracted;
            record.metrics = score.metrics.into_iter().map(|m| (m.name, m.value)).collect();
        }
    }
    finish(record, started, probes)
}

/// Closes a sample's record: its end-to-end time, its memory peak and its span in the trace.
fn finish(mut record: SampleRecord, started: Instant, probes: &mut SampleProbes) -> SampleRecord {
    let ended = Instant::now();
    record.timings.e2e_ms = ms(ended - started);
    record.peak_rss_bytes = memory::peak_rss_bytes();
    if let Some(trace) = probes.trace.as_deref_mut() {
        let args = serde_json::json!({"sample": record.index, "id": record.id, "status": record.status});
        trace.span("sample", "sample", started, ended, args);
    }
    record
}

/// How each declared metric adds up, for the host's aggregates.
pub fn metric_specs(metrics: &[crate::scenario::MetricInfo]) -> BTreeMap<String, MetricSpec> {
    metrics
        .iter()
        .map(|m| {
            let spec = MetricSpec {
                higher_is_better: m.higher_is_better,
                binary: m.binary,
                sum: m.aggregation == crate::scenario::Aggregation::Sum,
            };
            (m.name.clone(), spec)
        })
        .collect()
}

/// The scenario's own run-level figures over the samples that were scored.
pub fn scenario_aggregate(ready: &mut ReadyScenario, records: &[SampleRecord]) -> Result<BTreeMap<String, f64>> {
    let scored: Vec<ScoredSample> = records
        .iter()
        .filter(|r| r.status == SampleStatus::Ok)
        .map(|r| ScoredSample {
            id: r.id.clone(),
            subset: r.subset.clone(),
            metrics: r
                .metrics
                .iter()
                .map(|(name, value)| crate::scenario::Metric { name: name.clone(), value: *value })
                .collect(),
        })
        .collect();
    let metrics = ready.scenario.aggregate(&scored).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok(metrics.into_iter().map(|m| (m.name, m.value)).collect())
}

fn progress_bar(total: usize, enabled: bool) -> ProgressBar {
    if !enabled {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} ETA {eta} {msg}")
            .expect("static template")
            .progress_chars("=> "),
    );
    bar
}

pub fn exec(opts: &ExecOptions) -> Result<RunOutcome> {
    let started_at = SystemTime::now();
    let started = Instant::now();
    let load_average_start = provenance::load_average();
    let cpu_start = provenance::CpuTimes::now();
    let mut trace = opts.trace.as_ref().map(|path| (path, TraceRecorder::new()));
    if let Some((path, _)) = &trace {
        // Fail before the run, not after it, when the trace cannot be written.
        std::fs::write(path, b"").with_context(|| format!("cannot write the trace file {}", path.display()))?;
    }

    let scenario_load_started = Instant::now();
    let cache = opts.scenario_cache.then(ComponentCache::from_env);
    let scenario = prepare::load_scenario(&opts.scenario, opts.limits, cache.as_ref())?;
    let mut ready = prepare::configure(scenario, &opts.choices)?;
    // After `configure`: a scenario's defaults may follow its options.
    let meta = ready.scenario.metadata().clone();
    let dataset_started = Instant::now();
    let dataset = prepare::load_dataset(&mut ready, opts.data.as_ref(), opts.split.as_deref())?;
    if let Some((_, recorder)) = trace.as_mut() {
        let args = serde_json::json!({"scenario": opts.scenario.display().to_string()});
        recorder.span("scenario load", "load", scenario_load_started, dataset_started, args);
        let args = serde_json::json!({"dataset": dataset.label, "samples": dataset.samples.len()});
        recorder.span("dataset load", "scenario", dataset_started, Instant::now(), args);
    }
    let few_shot = FewShot::new(&dataset.samples, opts.choices.seed);
    let selection = select_samples(dataset.samples.len(), opts.shuffle_seed, opts.max_samples);

    let model_dir = match opts.model.as_deref().and_then(Path::to_str).filter(|m| HubRef::is_hub_ref(m)) {
        Some(reference) => {
            let reference = HubRef::parse(reference, RepoType::Model).map_err(|e| anyhow!("--model: {e}"))?;
            Hub::from_env().resolve(&reference, &[]).with_context(|| format!("cannot get model {reference}"))?
        }
        None => opts.model.clone().unwrap_or_else(paths::default_model),
    };
    if !model_dir.is_dir() {
        let hint = if opts.model.is_none() {
            "the default model is installed by `cargo xtask setup`; or pass --model DIR"
        } else {
            "pass a model folder (`runner import MODEL.gguf --out DIR`, an Optimum or onnxruntime-genai export) \
             or a Hub reference hf:OWNER/REPO[/SUBFOLDER][@REVISION]"
        };
        bail!("model folder {} does not exist: {hint}", model_dir.display());
    }
    let mut memory_record = MemoryRecord { before_load_bytes: memory::current_rss_bytes(), ..Default::default() };
    let model_load_started = Instant::now();
    let mut engine = Engine::load(&EngineOptions {
        model_dir: model_dir.clone(),
        ort_lib: opts.ort_lib.clone(),
        intra_threads: opts.threads,
        providers: opts.providers.clone(),
        profiling: opts.trace.as_ref().map(|path| ort_profile_prefix(path)),
    })
    .with_context(|| format!("cannot load model {}", model_dir.display()))?;
    let model_load_ended = Instant::now();
    memory_record.after_load_bytes = memory::current_rss_bytes();
    memory_record.peak_after_load_bytes = memory::peak_rss_bytes();
    if let Some((_, recorder)) = trace.as_mut() {
        let args = serde_json::json!({"model": model_dir.display().to_string()});
        recorder.model_load(model_load_started, model_load_ended, args);
        recorder.memory(model_load_ended, "after load", memory_record.after_load_bytes);
    }
    let session_record = engine.session_record().clone();
    if let Some(warning) = session_record.node_assignment.as_ref().and_then(|n| n.fallback_warning()) {
        eprintln!("Warning: {warning}");
    }
    if let Some(reason) = &session_record.node_assignment_error {
        eprintln!("Warning: which provider ran each node is unknown: {reason}");
    }
    let graph = match crate::engine::inspect::inspect_model(&folder_model_file(&session_record, &model_dir)) {
        Ok(report) => Some(report),
        Err(e) => {
            eprintln!("Warning: the model's precision could not be read from its graph: {e}");
            None
        }
    };
    let think = opts.think.resolve(engine.tokenizer());
    if let Some((markers, _)) = &think {
        let special = markers.special_in(engine.tokenizer());
        if !special.is_empty() {
            eprintln!(
                "Warning: the think markers {} are special tokens of this model's tokenizer, which the engine drops \
                 from the output; thinking cannot be split from answers (pass --think-markers off to say so)",
                special.join(", ")
            );
        }
    }
    let adapter = match &opts.adapter {
        Some(path) => {
            let adapter = engine.load_adapter(path)?;
            engine.set_adapter(Some(&adapter))?;
            Some(adapter)
        }
        None => None,
    };
    let model_hash = provenance::hash_dir(&model_dir)?;
    let settings = GenerationSettings {
        max_new_tokens: opts.max_new_tokens.unwrap_or(meta.defaults.max_new_tokens as usize),
        stop: meta.defaults.stop.clone(),
        sampling: opts.sampling,
        seed: opts.seed,
        repetition_penalty: opts.repetition_penalty,
        ignore_eos: opts.ignore_eos,
    };

    let out_dir = opts.out.clone().unwrap_or_else(|| default_out_dir(started_at, &meta.name, &model_dir));
    let mut writer = RunWriter::create(&out_dir)?;
    let specs = metric_specs(&meta.metrics);

    let mut summary = RunSummary {
        status: RunStatus::Running,
        abort_reason: None,
        runner: RunnerInfo::current(),
        started_at: timestamp(started_at),
        finished_at: None,
        wall_seconds: 0.0,
        setup_seconds: started.elapsed().as_secs_f64(),
        scenario: ScenarioRecord {
            name: meta.name.clone(),
            version: meta.version.clone(),
            description: meta.description.clone(),
            path: opts.scenario.display().to_string(),
            hash: ready.scenario.hash().to_string(),
        },
        dataset: DatasetRecord {
            source: dataset.source.to_string(),
            label: dataset.label.clone(),
            hash: dataset.hash.clone(),
            total: dataset.samples.len(),
            selected: selection.len(),
            shuffle_seed: opts.shuffle_seed,
            max_samples: opts.max_samples,
            selected_ids: selection.iter().map(|&i| dataset.samples[i].id.clone()).collect(),
            subsets: opts.choices.subsets.clone(),
        },
        model: ModelRecord {
            dir: model_dir.display().to_string(),
            hash: model_hash,
            info: serde_json::to_value(engine.model_info()).context("cannot record the model's description")?,
            graph,
        },
        runtime: RuntimeRecord {
            onnxruntime_library: engine.runtime().library.display().to_string(),
            onnxruntime_version: engine.runtime().version.clone(),
            execution_provider: opts.providers.ep.to_string(),
            intra_threads: opts.threads,
            session: Some(session_record),
        },
        settings: SettingsRecord {
            max_new_tokens: settings.max_new_tokens,
            stop: settings.stop.clone(),
            temperature: settings.sampling.temperature(),
            top_k: settings.sampling.top_k(),
            top_p: settings.sampling.top_p(),
            seed: settings.seed,
            repetition_penalty: settings.repetition_penalty,
            ignore_eos: settings.ignore_eos,
            batch_size: opts.batch_size.max(1),
            scenario_memory_bytes: opts.limits.memory_bytes,
            scenario_call_timeout_ms: opts.limits.call_timeout.as_millis() as u64,
            system_prompt: opts.prompt.system_prompt.clone(),
            no_chat_template: opts.prompt.no_chat_template,
            think_markers: think.as_ref().map(|(markers, _)| markers.clone()),
            think_markers_source: think.as_ref().map(|(_, source)| *source),
            few_shot: ready.few_shot,
            scoring: match ready.scoring {
                ScoringMode::Generate => "generate".to_string(),
                ScoringMode::Loglikelihood => "loglikelihood".to_string(),
            },
            scenario_args: opts.choices.args.clone(),
        },
        adapter: adapter.as_ref().map(|a| a.info.clone()),
        host: HostInfo::detect(),
        load_average_start,
        load_average_end: None,
        memory: memory_record,
        gpu: None,
        background_cpu: None,
        adapter_comparison: None,
        results: Aggregates::default(),
    };
    let mut gpu = start_gpu_monitor(opts, &summary.runtime.execution_provider);
    writer.write_summary(&summary)?;
    if dataset.source == "embedded" {
        eprintln!("Using the scenario's {}; pass --data FILE for a real dataset.", dataset.label);
    }

    let bar = progress_bar(selection.len(), opts.progress);
    let mut records = Vec::with_capacity(selection.len());
    let mut consecutive_failures = 0;
    let mut correct_so_far = (0.0, 0usize);
    let batch_size = opts.batch_size.max(1);
    let order: Vec<(usize, usize)> = selection.iter().copied().enumerate().collect();
    'batches: for chunk in order.chunks(batch_size) {
        let batch: Vec<(usize, &Sample, Vec<Sample>)> = chunk
            .iter()
            .map(|&(index, sample_index)| {
                let examples: Vec<Sample> = few_shot
                    .examples(&dataset.samples, sample_index, ready.few_shot)
                    .into_iter()
                    .map(|i| dataset.samples[i].clone())
                    .collect();
                (index, &dataset.samples[sample_index], examples)
            })
            .collect();
        let mut probes = SampleProbes {
            prompt: &opts.prompt,
            think: think.as_ref(),
            trace: trace.as_mut().map(|(_, recorder)| recorder),
            gpu: gpu.as_mut(),
            peak_scope: None,
        };
        let batch_records = run_batch(&batch, &mut ready, &mut engine, &settings, &mut probes);
        // One sample the kernel refused the reset makes the run's peaks cumulative.
        if summary.memory.peak_scope != Some(memory::PeakScope::Cumulative) {
            summary.memory.peak_scope = probes.peak_scope;
        }
        for record in batch_records {
            writer.append(&record)?;
            if let Some(error) = &record.error {
                consecutive_failures += 1;
                bar.suspend(|| {
                    eprintln!(
                        "Sample {} ({}) failed during {:?}: {}",
                        record.index, record.id, error.stage, error.message
                    )
                });
            } else {
                consecutive_failures = 0;
            }
            if let Some(first) = meta.metrics.first().and_then(|m| record.metrics.get(&m.name)) {
                correct_so_far = (correct_so_far.0 + first, correct_so_far.1 + 1);
            }
            let tps = record.timings.decode_tokens_per_s.map_or(String::new(), |t| format!(" | {t:.0} tok/s"));
            if let Some(first) = meta.metrics.first().filter(|_| correct_so_far.1 > 0) {
                bar.set_message(format!("{} {:.3}{tps}", first.name, correct_so_far.0 / correct_so_far.1 as f64));
            }
            bar.inc(1);
            records.push(record);
            if consecutive_failures >= opts.max_consecutive_failures {
                summary.status = RunStatus::Aborted;
                summary.abort_reason = Some(format!(
                    "{consecutive_failures} samples failed in a row (the limit is --max-consecutive-failures {}); \
                     the last error: {}",
                    opts.max_consecutive_failures,
                    records.last().and_then(|r| r.error.as_ref()).map_or("", |e| e.message.as_str())
                ));
                break 'batches;
            }
        }
    }
    bar.finish_and_clear();

    if summary.status == RunStatus::Running {
        summary.status = RunStatus::Complete;
    }
    summary.results = Aggregates::from_records(&records, &specs);
    match scenario_aggregate(&mut ready, &records) {
        Ok(metrics) => summary.results.scenario_metrics = metrics,
        Err(e) => {
            eprintln!("The scenario's own aggregate failed: {e}");
            summary.results.warnings.push(format!("the scenario's `aggregate` failed: {e}"));
        }
    }
    // The run's peak includes loading the model, which can briefly need more than any sample.
    summary.results.peak_rss_bytes = summary.results.peak_rss_bytes.max(summary.memory.peak_after_load_bytes);
    summary.gpu = gpu.and_then(GpuMonitor::finish);
    summary.finished_at = Some(timestamp(SystemTime::now()));
    summary.wall_seconds = started.elapsed().as_secs_f64();
    summary.load_average_end = provenance::load_average();
    summary.background_cpu = cpu_start.zip(provenance::CpuTimes::now()).and_then(|(s, e)| e.background_share_since(&s));
    writer.write_summary(&summary)?;
    writer.write_markdown(&crate::results::table::render_markdown(&summary)?)?;
    crate::baseline::register_finished_run(writer.dir(), &summary);
    let trace = match trace {
        Some((path, recorder)) => Some((path.clone(), write_trace(path, recorder, &mut engine)?)),
        None => None,
    };
    Ok(RunOutcome { dir: writer.dir().to_path_buf(), summary, trace })
}

/// Where ONNX Runtime writes its profile for `--trace FILE`: beside FILE, merged into it and removed at the end.
fn ort_profile_prefix(trace: &Path) -> PathBuf {
    let name = trace.file_name().map_or("trace".into(), |n| n.to_string_lossy().into_owned());
    trace.with_file_name(format!(".{name}.onnxruntime"))
}

fn write_trace(path: &Path, recorder: TraceRecorder, engine: &mut Engine) -> Result<TraceSummary> {
    let (file, start_ns) = engine.end_profiling().context("cannot end ONNX Runtime's profiling")?;
    // ONNX Runtime names the file relative to the working directory, as the prefix was given.
    let profile = OrtProfile { file, start_ns };
    recorder.write(path, Some(&profile)).with_context(|| format!("cannot write the trace {}", path.display()))
}

/// NVML monitoring of the GPU the execution provider runs on; `None` on CPU runs, when turned off, or
/// without an NVIDIA GPU (then results carry no GPU fields, and the reason is logged).
fn start_gpu_monitor(opts: &ExecOptions, execution_provider: &str) -> Option<GpuMonitor> {
    let interval = opts.gpu_sample_interval?;
    if execution_provider == "cpu" {
        return None;
    }
    match GpuMonitor::start_nvml(opts.gpu_device, interval) {
        Ok(monitor) => Some(monitor),
        Err(reason) => {
            eprintln!("GPU monitoring is unavailable, so results carry no GPU fields: {reason}");
            None
        }
    }
}

/// The model file the folder holds: the precision is measured there, not in an optimized-model cache copy.
fn folder_model_file(record: &crate::engine::SessionRecord, model_dir: &Path) -> PathBuf {
    match &record.optimized_model_cache {
        Some(cache) if cache.hit => model_dir.join(crate::engine::model::MODEL_FILE),
        _ => record.model_file.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_is_seeded_and_bounded() {
        assert_eq!(select_samples(5, None, None), [0, 1, 2, 3, 4]);
        assert_eq!(select_samples(5, None, Some(2)), [0, 1]);
        let a = select_samples(100, Some(7), Some(10));
        assert_eq!(a, select_samples(100, Some(7), Some(10)));
        assert_ne!(a, select_samples(100, Some(8), Some(10)));
        assert_ne!(a, (0..10).collect::<Vec<_>>());
        let mut all = select_samples(100, Some(7), None);
        all.sort();
        assert_eq!(all, (0..100).collect::<Vec<_>>());
    }

    #[test]
    fn default_out_dir_names_time_scenario_and_model() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000);
        let dir =
            default_out_dir(t, "gsm8k", Path::new("/home/u/.local/share/runner/models/SmolLM2-135M-Instruct/int4"));
        assert_eq!(dir, PathBuf::from("results/20261118T110640Z-gsm8k-SmolLM2-135M-Instruct-int4"));
    }
}
